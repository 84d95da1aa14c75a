"""Event detectors: subjects that are facts about the account rather than text.

Tags, mentions, registry events and health problems always deserve a look (the rule's
`applies_to` selects them); settings changes and off-hours posts need a condition.
"""

from __future__ import annotations

from pydantic import Field

from monitor.model import Audience, SubjectKind
from monitor.rules.detectors import Context, Detector, Match, Params


class AlwaysDetector(Detector, name="always"):
    """Fires on every subject the rule applies to (new tags and mentions, health events)."""

    def detect(self, ctx: Context) -> list[Match]:
        return [Match(1.0)]


class SettingsParams(Params):
    direction: str = Field(default="any", pattern="^(any|more_public)$")


class SettingsChangeDetector(Detector, name="settings_change"):
    """A monitored setting changed; with direction=more_public only when exposure grew."""

    Params = SettingsParams

    def detect(self, ctx: Context) -> list[Match]:
        assert isinstance(self.params, SettingsParams)
        subject = ctx.subject
        if subject.kind is not SubjectKind.SETTINGS_CHANGE:
            return []
        if self.params.direction == "more_public":
            before = subject.audience_before
            after = subject.audience_after
            if before is None or after is None or after <= before:
                return []
            return [Match(1.0 if after is Audience.PUBLIC else 0.8)]
        return [Match(1.0)] if subject.changes else []


class OfficeHoursDetector(Detector, name="outside_office_hours"):
    """An own post published outside the account's office hours (within_office_hours False)."""

    def detect(self, ctx: Context) -> list[Match]:
        return [Match(1.0)] if ctx.subject.within_office_hours is False else []


class RegistryParams(Params):
    reasons: list[str] = []


class RegistryDetector(Detector, name="registry_event"):
    """A registry event (someone not registered as staff holds a role); optional reason filter."""

    Params = RegistryParams

    def detect(self, ctx: Context) -> list[Match]:
        assert isinstance(self.params, RegistryParams)
        reason = str(ctx.subject.event.get("reason", ""))
        if self.params.reasons and reason not in self.params.reasons:
            return []
        return [Match(1.0)]
