"""Storage operations the engine needs, each inside a caller-owned transaction.

The engine owns transaction boundaries (one account's poll = one transaction), so
these functions take a `Session` and never commit.  Idempotency lives here: an
item is keyed by (account, external id), a finding by (account, rule, subject),
and a notification by its idempotency key, so replaying any step stores nothing
twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit
from monitor.config import AccountConfig, Config
from monitor.db.tables import (
    Account,
    Cursor,
    Finding,
    Notification,
    NotificationFinding,
    School,
    StoredItem,
    StoredSnapshot,
)
from monitor.model import Detection, HasId, Item, SettingsSnapshot, SubjectKind


@dataclass
class Planner:
    """What the jobs that queue notifications outside a poll (digests, escalation) share."""

    config: Config
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    mail_domain: str


def sync_registry(session: Session, config: Config) -> None:
    """Mirror schools and accounts from the config; accounts dropped from it are disabled.

    Nothing is deleted: findings of a removed account stay as documentation.
    """
    schools = {s.id: s for s in session.scalars(select(School))}
    for sc in config.schools:
        school = schools.get(sc.id) or School(id=sc.id)
        school.name, school.language = sc.name, sc.language
        session.add(school)
    session.flush()
    accounts = {a.id: a for a in session.scalars(select(Account))}
    configured = set()
    for ac in config.accounts:
        configured.add(ac.id)
        row = accounts.get(ac.id)
        if row is None:
            row = Account(id=ac.id, health="new")
            session.add(row)
        row.school_id, row.platform, row.handle = ac.school, ac.platform, ac.handle
        row.external_id, row.kind, row.enabled = ac.external_id, ac.kind, ac.enabled
    for account_id, row in accounts.items():
        if account_id not in configured:
            row.enabled = False


def load_cursors(session: Session, account_id: str) -> dict[str, str]:
    rows = session.scalars(select(Cursor).where(Cursor.account_id == account_id))
    return {c.stream: c.value for c in rows}


def save_cursors(
    session: Session, account_id: str, cursors: Mapping[str, str], now: datetime
) -> None:
    existing = {
        c.stream: c for c in session.scalars(select(Cursor).where(Cursor.account_id == account_id))
    }
    for stream, value in cursors.items():
        row = existing.get(stream)
        if row is None:
            session.add(Cursor(account_id=account_id, stream=stream, value=value, updated_at=now))
        elif row.value != value:
            row.value, row.updated_at = value, now


def known_items(session: Session, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (account, external id) pairs are stored already (one query per 500 keys)."""
    found: set[tuple[str, str]] = set()
    pair = tuple_(StoredItem.account_id, StoredItem.external_id)
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(StoredItem.account_id, StoredItem.external_id).where(
                pair.in_(keys[start : start + 500])
            )
        )
        found.update((a, e) for a, e in rows)
    return found


def store_new_items(
    session: Session, items: Sequence[Item], now: datetime
) -> list[tuple[Item, StoredItem]]:
    """Insert the items not stored before; return only the new ones.

    Duplicates inside one poll (a platform can return an item on two pages) and
    items stored by an earlier poll are both skipped.
    """
    by_account: dict[str, dict[str, Item]] = {}
    for item in items:
        by_account.setdefault(item.account_id, {}).setdefault(item.external_id, item)
    new: list[tuple[Item, StoredItem]] = []
    for account_id, wanted in by_account.items():
        seen = set(
            session.scalars(
                select(StoredItem.external_id).where(
                    StoredItem.account_id == account_id,
                    StoredItem.external_id.in_(list(wanted)),
                )
            )
        )
        for external_id, item in wanted.items():
            if external_id in seen:
                continue
            row = StoredItem(
                account_id=account_id,
                platform=item.platform,
                external_id=external_id,
                kind=item.kind.value,
                parent_external_id=item.parent_id,
                author_id=item.author.id[:128],
                author_handle=item.author.handle[:200],
                author_name=item.author.display_name[:200],
                text=item.text,
                url=item.url,
                created_at=item.created_at,
                first_seen_at=now,
                raw=_jsonable(item.raw),
                content_hash=item.content_hash,
            )
            session.add(row)
            new.append((item, row))
    session.flush()
    return new


def previous_snapshot(session: Session, account_id: str) -> StoredSnapshot | None:
    return session.scalars(
        select(StoredSnapshot)
        .where(StoredSnapshot.account_id == account_id)
        .order_by(StoredSnapshot.taken_at.desc(), StoredSnapshot.id.desc())
        .limit(1)
    ).first()


def store_snapshot(session: Session, account_id: str, snap: SettingsSnapshot) -> StoredSnapshot:
    row = StoredSnapshot(
        account_id=account_id,
        taken_at=snap.taken_at,
        audience=int(snap.audience),
        fields=_jsonable(snap.fields),
        role_holders=[
            {"id": r.platform_user_id, "name": r.name, "role": r.role, "email": r.email}
            for r in snap.role_holders
        ],
        raw=_jsonable(snap.raw),
    )
    session.add(row)
    session.flush()
    return row


def record_finding(
    session: Session,
    *,
    account: AccountConfig,
    subject_kind: SubjectKind,
    dedupe_key: str,
    detection: Detection,
    text: str,
    summary: str,
    now: datetime,
    item_id: int | None = None,
    snapshot_id: int | None = None,
    observed_at: datetime | None = None,
    group_window: timedelta | None = None,
) -> Finding | None:
    """Store a detection unless the same rule already fired on the same subject, or on
    an earlier comment of the same burst (`detection.group_key`) posted within
    `group_window` before `observed_at`."""
    exists = session.scalar(
        select(Finding.id).where(
            Finding.account_id == account.id,
            Finding.rule_id == detection.rule_id,
            Finding.dedupe_key == dedupe_key,
        )
    )
    if exists is not None:
        return None
    if detection.group_key and observed_at is not None and group_window is not None:
        grouped = session.scalar(
            select(Finding.id).where(
                Finding.account_id == account.id,
                Finding.rule_id == detection.rule_id,
                Finding.group_key == detection.group_key,
                Finding.observed_at >= observed_at - group_window,
                Finding.observed_at <= observed_at,
            ).limit(1)
        )
        if grouped is not None:
            return None
    row = Finding(
        account_id=account.id,
        school_id=account.school,
        item_id=item_id,
        snapshot_id=snapshot_id,
        dedupe_key=dedupe_key,
        subject_kind=subject_kind.value,
        rule_id=detection.rule_id,
        section=detection.section,
        category=detection.category,
        severity=detection.severity.value,
        detector=detection.detector,
        score=detection.score,
        message=detection.message,
        action=detection.action,
        summary=summary,
        evidence_start=detection.evidence_start,
        evidence_end=detection.evidence_end,
        evidence_text=detection.evidence(text)[:500] or None,
        status="open",
        created_at=now,
        group_key=detection.group_key,
        observed_at=observed_at,
    )
    session.add(row)
    session.flush()
    audit.record_finding(session, row, now)
    return row


def queue_notification(
    session: Session,
    *,
    key: str,
    kind: str,
    recipient: str,
    school_id: str,
    findings: Iterable[HasId],
    now: datetime,
    message_id: str,
    incident: str | None = None,
    escalation_step: int = 0,
) -> Notification | None:
    """Write one outbox entry covering `findings`, unless the key was queued before.

    A finding already covered for this recipient and kind is not covered again,
    so a recipient never gets the same finding twice in a digest (or an alert).
    """
    if session.scalar(select(Notification.id).where(Notification.idempotency_key == key)):
        return None
    findings = list(findings)
    covered = set(
        session.scalars(
            select(NotificationFinding.finding_id).where(
                NotificationFinding.recipient == recipient,
                NotificationFinding.kind == kind,
                NotificationFinding.finding_id.in_([f.id for f in findings]),
            )
        )
    )
    fresh = [f for f in findings if f.id not in covered]
    if findings and not fresh and escalation_step == 0:
        return None
    if escalation_step:
        fresh = findings  # an escalation re-sends the same incident to a new person
    row = Notification(
        idempotency_key=key,
        kind=kind,
        recipient=recipient,
        school_id=school_id,
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        message_id=message_id,
        incident=incident,
        escalation_step=escalation_step,
    )
    session.add(row)
    session.flush()
    if fresh:  # one multi-row INSERT: a digest can cover hundreds of findings
        session.execute(
            insert(NotificationFinding),
            [
                {
                    "notification_id": row.id,
                    "finding_id": f.id,
                    "recipient": recipient,
                    "kind": kind,
                }
                for f in fresh
            ],
        )
    audit.record_notification(session, row, fresh, now)
    return row


def storable_text(value: str) -> str:
    """Text that both SQLite and PostgreSQL accept, with the same length.

    Lone surrogates cannot be encoded as UTF-8 and PostgreSQL refuses NUL; each is
    replaced one character for one so evidence offsets stay valid.
    """
    if value.isascii() and "\x00" not in value:
        return value
    out = value.replace("\x00", "\ufffd")
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in out)


def _jsonable(value: Any) -> Any:
    """Platform payloads are JSON already; this guards against stray non-JSON values."""
    if isinstance(value, Mapping):
        return {storable_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return storable_text(str(value))
