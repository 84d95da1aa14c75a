"""The audit log: an append-only, hash-chained record of what was found and done.

Section 8 asks that inappropriate content be documented before removal and
section 4 that it may become evidence in proceedings, so the history of a finding
(recorded, alerted, sent, acknowledged, resolved, held) must be provable later.
Each entry's `hash` is SHA-256 over the previous entry's hash followed by the
canonical JSON of the entry, so editing or deleting any entry breaks the chain
from there on and `verify` names it.

Entries hold ids, rule, section, recipient and action only, never platform text:
the log outlives retention of the items it talks about.

Concurrency: `record` runs inside the caller's transaction and first UPDATEs the
single `audit_head` row.  On PostgreSQL that takes a row lock held until commit,
so a second appender (another thread or process) waits and then reads the head
the first one committed (READ COMMITTED re-reads the updated row); on SQLite the
UPDATE takes the database's single write lock.  Either way ids are contiguous and
the chain cannot fork.  The price is that appends serialise from the first audit
call to commit; a transaction that also waits on another lock can be chosen as a
deadlock victim by PostgreSQL, which the engine treats like any storage failure
(the account is polled again next cycle).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from monitor.db.tables import AuditEntry, AuditHead, Finding, Notification, NotificationFinding
from monitor.model import HasId
from monitor.timeutil import as_utc

GENESIS = "0" * 64
HEAD_ID = 1


@dataclass(frozen=True)
class AuditProblem:
    """Something `verify` found wrong; `entry_id` is None for problems of the head."""

    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "audit head"
        return f"{where}: {self.problem}"


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces) so a hash does not depend on key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _timestamp(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str, entry_id: int, at: datetime, kind: str, subject: str, data: Any
) -> str:
    body = {"id": entry_id, "at": _timestamp(at), "kind": kind, "subject": subject, "data": data}
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def record(
    session: Session, kind: str, subject: str, data: dict[str, Any], now: datetime
) -> AuditEntry:
    """Append one entry inside the caller's transaction (see the module doc on locking)."""
    session.flush()
    bumped = session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(last_id=AuditHead.last_id + 1)
        .execution_options(synchronize_session=False)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]  # a schema built without migrations
        session.add(AuditHead(id=HEAD_ID, last_id=1, last_hash=GENESIS))
        session.flush()
    entry_id, prev_hash = session.execute(
        select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).one()
    data = json.loads(canonical_json(data))  # what the database will hand back
    at = as_utc(now)
    digest = entry_hash(prev_hash, entry_id, at, kind, subject, data)
    entry = AuditEntry(
        id=entry_id, at=at, kind=kind, subject=subject, data=data, prev_hash=prev_hash, hash=digest
    )
    session.add(entry)
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(last_hash=digest)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return entry


def verify(session: Session) -> list[AuditProblem]:
    """Recompute the chain; report edited entries, deleted ones (gaps) and a cut tail."""
    problems: list[AuditProblem] = []
    expected_id, prev_hash = 1, GENESIS
    rows = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=500)
    )
    for entry in rows:
        if entry.id != expected_id:
            missing = (
                f"{expected_id}" if entry.id == expected_id + 1 else f"{expected_id}-{entry.id - 1}"
            )
            problems.append(AuditProblem(entry.id, f"entries {missing} are missing (deleted)"))
        if entry.prev_hash != prev_hash:
            problems.append(AuditProblem(entry.id, "does not follow the previous entry's hash"))
        recomputed = entry_hash(
            entry.prev_hash, entry.id, entry.at, entry.kind, entry.subject, entry.data
        )
        if recomputed != entry.hash:
            problems.append(AuditProblem(entry.id, "content does not match its hash (edited)"))
        expected_id, prev_hash = entry.id + 1, entry.hash
    head = session.get(AuditHead, HEAD_ID)
    last_id = expected_id - 1
    if head is not None and (head.last_id != last_id or head.last_hash != prev_hash):
        problems.append(
            AuditProblem(
                None,
                f"log ends at entry {last_id} but the head names entry {head.last_id} "
                "(entries deleted from the end, or the head edited)",
            )
        )
    return problems


def entries_for(session: Session, finding_ids: Iterable[int]) -> list[AuditEntry]:
    """Entries about these findings or the notifications that carried them, in order."""
    ids = sorted(set(finding_ids))
    notes = session.scalars(
        select(NotificationFinding.notification_id).where(NotificationFinding.finding_id.in_(ids))
    )
    subjects = [f"finding:{i}" for i in ids] + [f"notification:{n}" for n in set(notes)]
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.subject.in_(subjects)).order_by(AuditEntry.id)
        )
    )


# One-line hooks for the call sites (store, actions, outbox): what each entry holds.


def record_finding(session: Session, f: Finding, now: datetime) -> None:
    record(session, "finding", f"finding:{f.id}", _finding_data(f), now)


def record_notification(
    session: Session, note: Notification, findings: Sequence[HasId], now: datetime
) -> None:
    data = _notification_data(note) | {"findings": sorted(f.id for f in findings)}
    record(session, "notification", f"notification:{note.id}", data, now)


def record_sent(
    session: Session, note: Notification, finding_ids: Sequence[int] | None = None
) -> None:
    if finding_ids is None:
        finding_ids = [f.id for f in note.findings]
    data = _notification_data(note) | {"findings": sorted(finding_ids)}
    data["attempts"] = note.attempts
    record(
        session,
        "notification_sent",
        f"notification:{note.id}",
        data,
        note.sent_at or note.created_at,
    )


def record_acknowledged(
    session: Session, finding_id: int, by: str, changed: Sequence[Finding], now: datetime
) -> None:
    if changed:
        data = {"by": by.lower(), "findings": sorted(f.id for f in changed)}
        record(session, "acknowledged", f"finding:{finding_id}", data, now)


def record_resolved(session: Session, f: Finding, by: str | None, now: datetime) -> None:
    # the free-text note stays on the finding (retention applies to it), not in the log
    data = {"action": f.resolution, "by": (by or "").lower() or None, "rule": f.rule_id}
    record(session, "resolved", f"finding:{f.id}", data, now)


def _finding_data(f: Finding) -> dict[str, Any]:
    return {
        "account": f.account_id,
        "school": f.school_id,
        "rule": f.rule_id,
        "section": f.section,
        "severity": f.severity,
        "subject_kind": f.subject_kind,
        "item_id": f.item_id,
        "snapshot_id": f.snapshot_id,
    }


def _notification_data(note: Notification) -> dict[str, Any]:
    return {
        "kind": note.kind,
        "recipient": note.recipient,
        "school": note.school_id,
        "escalation_step": note.escalation_step,
    }
