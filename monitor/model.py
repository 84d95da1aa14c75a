"""Domain model shared by connectors, the rule engine, storage and reports.

These are plain frozen dataclasses, not ORM rows: a connector builds them from a
platform payload, the engine decides about them, and only storage knows how they
are persisted.  Keeping them free of SQLAlchemy lets connectors and rules be tested
without a database.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

JSON = Any  # a value that json.dumps accepts


class HasId(Protocol):
    """A stored finding, or a light reference to one, where only its id is needed."""

    @property
    def id(self) -> int: ...


class ItemKind(enum.StrEnum):
    """What an item is, as seen from the monitored account."""

    COMMENT = "comment"  # someone commented on one of the account's posts
    REPLY = "reply"  # a reply inside a thread the account started
    MENTION = "mention"  # a post elsewhere that names the account
    TAG = "tag"  # a post or photo the account was tagged in
    OWN_POST = "own_post"  # the account's own post or reply


class SubjectKind(enum.StrEnum):
    """What a rule can be applied to: every item kind plus the non-item events."""

    COMMENT = "comment"
    REPLY = "reply"
    MENTION = "mention"
    TAG = "tag"
    OWN_POST = "own_post"
    SETTINGS_CHANGE = "settings_change"
    ACCOUNT_HEALTH = "account_health"
    REGISTRY = "registry"


class Severity(enum.StrEnum):
    """How fast a human must see a finding."""

    URGENT = "urgent"  # an alert now, to the principal (duty of care, exposure)
    DIGEST = "digest"  # the owner's next daily digest
    INFO = "info"  # recorded, shown in listings, never mailed on its own

    @property
    def rank(self) -> int:
        return {"urgent": 2, "digest": 1, "info": 0}[self.value]


class Audience(enum.IntEnum):
    """Who can see an account, ordered so that a larger value is more public."""

    PRIVATE = 0  # protected / unpublished: only approved followers or admins
    RESTRICTED = 1  # visible with limits (age or country gates, followers only)
    PUBLIC = 2


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote an item, as the platform names them."""

    id: str
    handle: str = ""
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """One comment, reply, mention, tag or own post, normalised across platforms.

    `external_id` is the platform's id and is unique per account; seeing the same
    id again never creates a second item.
    """

    platform: str
    account_id: str
    kind: ItemKind
    external_id: str
    author: Author
    text: str
    created_at: datetime
    url: str | None = None
    parent_id: str | None = None
    raw: Mapping[str, JSON] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """SHA-256 of what was said and by whom: the documentation record's fingerprint."""
        h = hashlib.sha256()
        for part in (self.platform, self.author.id, self.text):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class RoleHolder:
    """Someone who can run the account on the platform (page role, business user)."""

    platform_user_id: str
    name: str = ""
    role: str = ""
    email: str | None = None


@dataclass(frozen=True, slots=True)
class SettingsSnapshot:
    """The account's privacy-relevant settings at one moment.

    `fields` holds the monitored platform fields as JSON values, `audience` is the
    connector's reading of how public the account is, so the engine can tell an
    exposure (private to public) from any other change without platform knowledge.
    """

    taken_at: datetime
    audience: Audience
    fields: Mapping[str, JSON] = field(default_factory=dict)
    role_holders: tuple[RoleHolder, ...] = ()
    raw: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one account returned.

    `new_cursors` replaces the stored cursors for the streams it names; it is saved
    in the same transaction as the items so a crash resumes exactly where it stopped.
    """

    items: list[Item] = field(default_factory=list)
    settings_snapshot: SettingsSnapshot | None = None
    # snapshots older than `settings_snapshot` read in the same poll (a replay of
    # history), oldest first: each is diffed against the one before it
    earlier_snapshots: list[SettingsSnapshot] = field(default_factory=list)
    new_cursors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """One monitored setting that differs between two snapshots."""

    field: str
    old: JSON
    new: JSON


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rule engine looks at: an item, a settings diff, or an account event.

    Exactly one of `item`, `changes` or `event` is the point; `text` is what text
    detectors read (an item's text, a description of the change or event).
    """

    kind: SubjectKind
    account_id: str
    school_id: str
    language: str
    text: str
    item: Item | None = None
    changes: tuple[SettingsChange, ...] = ()
    audience_before: Audience | None = None
    audience_after: Audience | None = None
    event: Mapping[str, JSON] = field(default_factory=dict)
    account_kind: str = ""  # school | classroom | department
    within_office_hours: bool | None = None  # for own posts: None when no office_hours set


@dataclass(frozen=True, slots=True)
class Detection:
    """A rule's verdict on a subject, before it is stored as a finding."""

    rule_id: str
    section: str
    category: str
    severity: Severity
    detector: str
    score: float
    message: str
    action: str
    evidence_start: int | None = None
    evidence_end: int | None = None
    notify_owner_now: bool = False
    # a burst of the same spam from one author: the store records one finding per key
    # and window, across restarts and workers (a hash; no author id or text in it)
    group_key: str | None = None

    def evidence(self, text: str) -> str:
        if self.evidence_start is None or self.evidence_end is None:
            return ""
        return text[self.evidence_start : self.evidence_end]
