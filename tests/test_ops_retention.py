"""Retention: student content is kept only as long as a duty needs it (section 5).

Explicit `now` values stand in for the calendar: the scenario is polled at T0 and
purged 29, 31 and 366 days later.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from monitor import audit
from monitor.db.tables import AuditEntry, Finding, Notification, StoredItem, StoredSnapshot
from monitor.evidence import hold
from monitor.retention import RetentionSettings, purge
from tests.test_pipeline import SCENARIO, T0, Clock, event, make_service, write_events


def _count(session, table) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(table)) or 0


def test_items_without_findings_go_after_30_days_findings_after_365(
    tmp_path: Path, db_url: str
) -> None:
    settings_events = [
        event(10 + i, "north-a", "settings", f"s{i}", audience="private", fields={"v": i})
        for i in range(3)
    ]
    write_events(tmp_path / "events.jsonl", [*SCENARIO, *settings_events])
    service = make_service(tmp_path, db_url, Clock(T0 + timedelta(hours=1)))
    service.poll_once(force=True)
    settings = RetentionSettings()
    with service.sessions() as s:
        flagged = set(s.scalars(select(Finding.item_id).where(Finding.item_id.is_not(None))))
        items = set(s.scalars(select(StoredItem.id)))
        held = s.scalars(select(Finding).where(Finding.severity == "urgent")).first()
        assert held is not None and flagged and items - flagged
        snapshots = _count(s, StoredSnapshot)
        audit_entries = _count(s, AuditEntry)

    with service.sessions.begin() as s:
        assert sum(purge(s, settings, T0 + timedelta(days=29)).values()) == 0
    with service.sessions.begin() as s:
        counts = purge(s, settings, T0 + timedelta(days=31))
        assert counts["items"] == len(items - flagged) and counts["findings"] == 0
        assert set(s.scalars(select(StoredItem.id))) == flagged
        # the account's latest snapshot stays for the next comparison
        assert snapshots == 3 and _count(s, StoredSnapshot) == 2  # the unreferenced old one
        hold(s, held.id, "legal@board.example", "request", now=T0 + timedelta(days=40))

    with service.sessions.begin() as s:
        counts = purge(s, settings, T0 + timedelta(days=366))
        assert counts["findings"] > 0
        remaining = list(s.scalars(select(Finding)))
        assert {f.item_id for f in remaining} == {held.item_id}
        assert set(s.scalars(select(StoredItem.id))) == {held.item_id}
        assert _count(s, StoredSnapshot) == 1  # its finding went; the latest stays
        # notifications that only covered purged findings are gone
        for note in s.scalars(select(Notification)):
            assert note.findings
    with service.sessions() as s:
        assert _count(s, AuditEntry) > audit_entries  # nothing removed, the purge recorded
        assert audit.verify(s) == []
    service.close()


def test_retention_settings_are_strict() -> None:
    assert RetentionSettings().model_dump() == {"items_days": 30, "findings_days": 365}
    with pytest.raises(ValidationError):
        RetentionSettings.model_validate({"item_days": 10})
    with pytest.raises(ValidationError):
        RetentionSettings(items_days=60, findings_days=30)
    with pytest.raises(ValidationError):
        RetentionSettings(items_days=0)
