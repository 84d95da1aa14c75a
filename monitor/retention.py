"""Retention: keep student content only as long as a duty needs it.

Section 5 asks that student information be protected; storing every comment
forever would do the opposite.  What a duty needs:

- an item no rule fired on is only needed for de-duplication while it may still
  be returned by the platform: deleted after `items_days` (default 30);
- a finding, its item, its settings snapshot and their raw payloads document what
  was done (section 8) and may be evidence (section 4): kept `findings_days`
  (default 365), longer while any finding on the same item is on legal hold;
- notifications whose findings are gone are deleted with them (their subject
  line can quote platform text);
- the latest settings snapshot of each account is always kept (the next poll
  compares against it);
- the audit log stays: it holds ids, rules and actions, no student text.

Every purge is itself written to the audit log with its counts.  Mail already
delivered, and `.eml` files in `mail.outbox_dir`, are outside this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select, delete, exists, select
from sqlalchemy.orm import Session, aliased

from monitor import audit
from monitor.db.tables import (
    Finding,
    LegalHold,
    Notification,
    NotificationFinding,
    StoredItem,
    StoredSnapshot,
)

_CHUNK = 500


class RetentionSettings(BaseModel):
    """`[retention]` in the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items_days: int = Field(default=30, ge=1)
    findings_days: int = Field(default=365, ge=1)

    @model_validator(mode="after")
    def _findings_outlive_items(self) -> RetentionSettings:
        if self.findings_days < self.items_days:
            raise ValueError("findings_days must be at least items_days")
        return self


def purge(session: Session, settings: RetentionSettings, now: datetime) -> dict[str, int]:
    """Delete what retention allows, inside the caller's transaction; return the counts."""
    items_cutoff = now - timedelta(days=settings.items_days)
    findings_cutoff = now - timedelta(days=settings.findings_days)
    counts = {"items": 0, "findings": 0, "snapshots": 0, "notifications": 0}

    # items no finding points at
    unflagged = select(StoredItem.id).where(
        StoredItem.first_seen_at < items_cutoff,
        ~exists().where(Finding.item_id == StoredItem.id),
    )
    counts["items"] += _delete(session, StoredItem, _ids(session, unflagged))

    # findings past retention, grouped by subject: a subject goes only when all its
    # findings are old and none is held
    other = aliased(Finding)
    kept = (other.created_at >= findings_cutoff) | _held(other)
    keep_item = select(other.item_id).where(other.item_id.is_not(None), kept)
    keep_snapshot = select(other.snapshot_id).where(other.snapshot_id.is_not(None), kept)
    old = select(Finding.id, Finding.item_id).where(
        Finding.created_at < findings_cutoff,
        ~_held(Finding),
        Finding.item_id.is_(None) | Finding.item_id.not_in(keep_item),
        Finding.snapshot_id.is_(None) | Finding.snapshot_id.not_in(keep_snapshot),
    )
    rows = session.execute(old).all()
    finding_ids = [r.id for r in rows]
    item_ids = sorted({r.item_id for r in rows if r.item_id is not None})
    note_ids = _ids(
        session,
        select(NotificationFinding.notification_id).where(
            NotificationFinding.finding_id.in_(finding_ids)
        ),
    )
    counts["findings"] += _delete(session, Finding, finding_ids)  # links cascade
    counts["items"] += _delete(session, StoredItem, item_ids)
    orphaned = select(Notification.id).where(
        Notification.id.in_(note_ids),
        ~exists().where(NotificationFinding.notification_id == Notification.id),
    )
    counts["notifications"] += _delete(session, Notification, _ids(session, orphaned))

    # snapshots: unreferenced, older than items_days, and not the account's latest
    newer = aliased(StoredSnapshot)
    stale = select(StoredSnapshot.id).where(
        StoredSnapshot.taken_at < items_cutoff,
        ~exists().where(Finding.snapshot_id == StoredSnapshot.id),
        exists().where(
            newer.account_id == StoredSnapshot.account_id,
            (newer.taken_at > StoredSnapshot.taken_at)
            | ((newer.taken_at == StoredSnapshot.taken_at) & (newer.id > StoredSnapshot.id)),
        ),
    )
    counts["snapshots"] += _delete(session, StoredSnapshot, _ids(session, stale))

    if any(counts.values()):
        audit.record(session, "retention_purge", "retention", dict(counts), now)
    return counts


def _held(finding: Any) -> Any:
    """An active legal hold exists on `finding` (the table or an alias of it)."""
    return exists().where(LegalHold.finding_id == finding.id, LegalHold.released_at.is_(None))


def _ids(session: Session, query: Select[Any]) -> list[int]:
    return sorted(set(session.scalars(query)))


def _delete(session: Session, table: Any, ids: Sequence[int]) -> int:
    """Bulk delete by id in chunks (a long IN list is slow on both backends)."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(
            delete(table).where(table.id.in_(chunk)).execution_options(synchronize_session=False)
        )
    return len(ids)
