"""Turn what one poll returned into findings and urgent alerts, inside its transaction.

This is where the monitoring duties meet storage: new items become subjects for
the rule engine, a settings snapshot is diffed against the last one (section 5),
role holders who are not staff become registry events (section 8), and every
urgent finding queues an alert to the principal in the same transaction, so a
crash can never record a crisis without also recording the alert for it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import AccountConfig, Config, SchoolConfig
from monitor.db.tables import Finding, StoredItem, StoredSnapshot
from monitor.hours import parse_office_hours, within
from monitor.model import (
    Audience,
    Author,
    Detection,
    Item,
    ItemKind,
    SettingsChange,
    SettingsSnapshot,
    Severity,
    Subject,
    SubjectKind,
)
from monitor.rules import RuleEngine
from monitor.store import previous_snapshot, queue_notification, record_finding, store_snapshot
from reports.render import message_id_for

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    findings: list[Finding] = field(default_factory=list)
    notifications: int = 0


def account_subject(
    kind: SubjectKind, account: AccountConfig, school: SchoolConfig, text: str, **extra: Any
) -> Subject:
    """A subject about one account of one school; `extra` sets the kind-specific fields."""
    return Subject(
        kind=kind,
        account_id=account.id,
        school_id=school.id,
        language=school.language,
        text=text,
        account_kind=account.kind,
        **extra,
    )


def item_subject(
    item: Item, account: AccountConfig, school: SchoolConfig, config: Config
) -> Subject:
    in_hours: bool | None = None
    if item.kind is ItemKind.OWN_POST and account.office_hours:
        local = item.created_at.astimezone(config.school_timezone(school))
        in_hours = within(parse_office_hours(account.office_hours), local)
    return account_subject(
        SubjectKind(item.kind.value),
        account,
        school,
        item.text,
        item=item,
        within_office_hours=in_hours,
    )


def settings_changes(old: StoredSnapshot, new: SettingsSnapshot) -> list[SettingsChange]:
    changes = []
    for key in sorted(set(old.fields) | set(new.fields)):
        before, after = old.fields.get(key), new.fields.get(key)
        if before != after:
            changes.append(SettingsChange(key, before, after))
    if int(old.audience) != int(new.audience):
        changes.append(
            SettingsChange(
                "audience", Audience(old.audience).name.lower(), new.audience.name.lower()
            )
        )
    return changes


def describe_changes(changes: Sequence[SettingsChange]) -> str:
    return "; ".join(f"{c.field}: {_show(c.old)} → {_show(c.new)}" for c in changes)


def _show(value: Any) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 80 else text[:79] + "…"


class Evaluator:
    """Applies the rule engine to one account's poll and queues its urgent alerts."""

    def __init__(self, config: Config, rules: RuleEngine, mail_domain: str) -> None:
        self.config = config
        self.rules = rules
        self.mail_domain = mail_domain

    def remember_recent(self, session: Session, now: datetime,
                        after: Mapping[str, int]) -> dict[str, int]:
        """Replay the stored comments of the last repeat window of `after`'s accounts
        into the rule engine, those stored after each account's id; return each
        account's highest stored-item id read (its id in `after` when none).

        A restart or a configuration reload starts a new engine with an empty
        repetition window, and another worker stores the comments of the accounts it
        polls; without this, "the same comment again" would go unnoticed when its
        first copy came before the restart or through another worker.  The poll engine
        calls it for the accounts of each claim while it holds their leases, so every
        copy another worker stored before is already stored (a lease is released only
        after the store commits).  At most `repeat_capacity` of the newest, oldest
        first; accounts no longer configured are skipped.  Replaying an item twice is
        harmless: the window counts each item once.
        """
        cursors = dict(after)
        remember = getattr(self.rules, "remember", None)
        if remember is None or not cursors:
            return cursors
        window = timedelta(minutes=self.config.rules.repeat_window_minutes)
        query = (select(StoredItem)
                 .where(StoredItem.account_id.in_(cursors),  # uq_items_account_external
                        StoredItem.id > min(cursors.values()),
                        StoredItem.created_at >= now - window)
                 .order_by(StoredItem.created_at.desc(), StoredItem.id.desc())
                 .limit(self.config.rules.repeat_capacity))
        rows = [row for row in session.scalars(query) if row.id > after[row.account_id]]
        accounts = {a.id: a for a in self.config.accounts}
        subjects = []
        for row in reversed(rows):
            cursors[row.account_id] = max(cursors[row.account_id], row.id)
            account = accounts.get(row.account_id)
            if account is None:
                continue
            item = Item(
                platform=row.platform,
                account_id=row.account_id,
                kind=ItemKind(row.kind),
                external_id=row.external_id,
                author=Author(row.author_id, row.author_handle, row.author_name),
                text=row.text,
                created_at=row.created_at,
            )
            school = self.config.school(account.school)
            subjects.append(item_subject(item, account, school, self.config))
        remember(subjects)
        return cursors

    def evaluate_items(
        self,
        session: Session,
        account: AccountConfig,
        new: Sequence[tuple[Item, StoredItem]],
        now: datetime,
        precomputed: Mapping[tuple[str, str], list[Detection]] | None = None,
    ) -> Evaluation:
        school = self.config.school(account.school)
        known = precomputed or {}
        missing = [item for item, _ in new if (account.id, item.external_id) not in known]
        evaluated = dict(
            zip(
                [i.external_id for i in missing],
                self._evaluate([item_subject(i, account, school, self.config) for i in missing]),
                strict=True,
            )
        )
        verdicts = [
            known.get((account.id, item.external_id)) or evaluated.get(item.external_id, [])
            for item, _ in new
        ]
        out = Evaluation()
        # One urgent email per incident: urgent findings of this poll are grouped by
        # thread, so a burst of crisis replies under one post is one alert, not ten.
        incidents: dict[str, list[tuple[Finding, Detection]]] = defaultdict(list)
        first_item: dict[str, int] = {}
        for (item, row), detections in zip(new, verdicts, strict=True):
            summary = f"{item.kind.value} by {item.author.display_name or item.author.handle}"
            urgent = self._record(
                session,
                out,
                account,
                SubjectKind(item.kind.value),
                f"item:{row.id}",
                detections,
                item.text,
                summary,
                now,
                item_id=row.id,
                observed_at=item.created_at,
                queue_urgent=False,
            )
            if urgent:
                thread = item.parent_id or item.external_id
                incidents[thread].extend(urgent)
                first_item.setdefault(thread, row.id)
        for thread, urgent in incidents.items():
            key = f"item:{first_item[thread]}"  # the incident is named by its first item
            out.notifications += self._queue_urgent(session, account, key, urgent, now)
        return out

    def pre_evaluate(
        self, pairs: Sequence[tuple[AccountConfig, Item]]
    ) -> dict[tuple[str, str], list[Detection]]:
        """Evaluate many accounts' items in one batch, keyed by (account, external id)."""
        subjects = [
            item_subject(item, account, self.config.school(account.school), self.config)
            for account, item in pairs
        ]
        verdicts = self._evaluate(subjects)
        return {
            (account.id, item.external_id): v
            for (account, item), v in zip(pairs, verdicts, strict=True)
        }

    def evaluate_snapshot(
        self, session: Session, account: AccountConfig, snap: SettingsSnapshot, now: datetime
    ) -> Evaluation:
        school = self.config.school(account.school)
        before = previous_snapshot(session, account.id)
        row = store_snapshot(session, account.id, snap)
        out = Evaluation()
        if before is not None:
            changes = settings_changes(before, snap)
            if changes:
                text = describe_changes(changes)
                subject = account_subject(
                    SubjectKind.SETTINGS_CHANGE,
                    account,
                    school,
                    text,
                    changes=tuple(changes),
                    audience_before=Audience(before.audience),
                    audience_after=snap.audience,
                )
                self._record(
                    session,
                    out,
                    account,
                    SubjectKind.SETTINGS_CHANGE,
                    f"snapshot:{row.id}",
                    self._evaluate([subject])[0],
                    text,
                    text,
                    now,
                    snapshot_id=row.id,
                )
        for holder in snap.role_holders:
            email = holder.email or account.role_holders.get(holder.platform_user_id)
            if school.is_staff(email):
                continue
            who = holder.name or holder.platform_user_id
            text = f"{who} holds the role {holder.role or 'unknown'} but is not registered staff"
            subject = account_subject(
                SubjectKind.REGISTRY,
                account,
                school,
                text,
                event={"role_holder": who, "role": holder.role, "reason": "not registered staff"},
            )
            self._record(
                session,
                out,
                account,
                SubjectKind.REGISTRY,
                f"role:{holder.platform_user_id}",
                self._evaluate([subject])[0],
                text,
                text,
                now,
                snapshot_id=row.id,
            )
        return out

    def evaluate_health(
        self, session: Session, account: AccountConfig, key: str, text: str, now: datetime
    ) -> Evaluation:
        school = self.config.school(account.school)
        subject = account_subject(
            SubjectKind.ACCOUNT_HEALTH, account, school, text, event={"reason": text}
        )
        out = Evaluation()
        self._record(
            session,
            out,
            account,
            SubjectKind.ACCOUNT_HEALTH,
            key,
            self._evaluate([subject])[0],
            text,
            text,
            now,
        )
        return out

    def _evaluate(self, subjects: Sequence[Subject]) -> list[list[Detection]]:
        if not subjects:
            return []
        batch = getattr(self.rules, "evaluate_batch", None)
        if batch is not None:
            return list(batch(subjects))
        return [self.rules.evaluate(s) for s in subjects]

    def _record(
        self,
        session: Session,
        out: Evaluation,
        account: AccountConfig,
        kind: SubjectKind,
        dedupe_key: str,
        detections: Sequence[Detection],
        text: str,
        summary: str,
        now: datetime,
        *,
        item_id: int | None = None,
        snapshot_id: int | None = None,
        observed_at: datetime | None = None,
        queue_urgent: bool = True,
    ) -> list[tuple[Finding, Detection]]:
        """Store the detections as findings; return the urgent ones (queued unless told)."""
        urgent: list[tuple[Finding, Detection]] = []
        window = timedelta(minutes=self.config.rules.repeat_window_minutes)
        for detection in detections:
            finding = record_finding(
                session,
                account=account,
                subject_kind=kind,
                dedupe_key=dedupe_key,
                detection=detection,
                text=text,
                summary=summary,
                now=now,
                item_id=item_id,
                snapshot_id=snapshot_id,
                observed_at=observed_at,
                group_window=window,
            )
            if finding is None:
                continue
            out.findings.append(finding)
            if detection.severity is Severity.URGENT:
                urgent.append((finding, detection))
        if urgent and queue_urgent:
            out.notifications += self._queue_urgent(session, account, dedupe_key, urgent, now)
        return urgent

    def _queue_urgent(
        self,
        session: Session,
        account: AccountConfig,
        dedupe_key: str,
        urgent: Sequence[tuple[Finding, Detection]],
        now: datetime,
    ) -> int:
        """One alert per recipient per subject, however many urgent rules fired on it."""
        school = self.config.school(account.school)
        recipients: dict[str, list[Finding]] = defaultdict(list)
        for finding, detection in urgent:
            recipients[school.principal].append(finding)
            if detection.notify_owner_now:
                for owner in account.owners:
                    recipients[owner].append(finding)
        queued = 0
        for recipient, findings in recipients.items():
            key = f"urgent:{account.id}:{dedupe_key}:{recipient}"
            row = queue_notification(
                session,
                key=key,
                kind="urgent",
                recipient=recipient,
                school_id=school.id,
                findings=findings,
                now=now,
                message_id=message_id_for(key, self.mail_domain),
                incident=f"{account.id}:{dedupe_key}",
            )
            queued += row is not None
        return queued
