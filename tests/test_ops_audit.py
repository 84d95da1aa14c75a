"""The audit log: every step of a finding's life is chained; tampering is found.

Runs on SQLite and PostgreSQL.  Entries are created by the real pipeline (poll,
alert, send, acknowledge, resolve), then edited and deleted with plain SQL, the
way someone with database access would.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from monitor import audit
from monitor.db.session import make_engine, session_factory, upgrade
from monitor.db.tables import AuditEntry, Finding
from tests.test_pipeline import SCENARIO, T0, Clock, make_service, write_events

NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)


def _sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    upgrade(engine)
    return engine, session_factory(engine)


def test_pipeline_steps_are_chained_without_student_text(tmp_path: Path, db_url: str) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    clock = Clock(T0 + timedelta(hours=1))
    service = make_service(tmp_path, db_url, clock)
    service.poll_once(force=True)
    with service.sessions() as s:
        urgent = s.scalars(select(Finding).where(Finding.severity == "urgent")).first()
        other = s.scalars(select(Finding).where(Finding.severity != "urgent")).first()
        assert urgent is not None and other is not None
    clock.now += timedelta(minutes=3)
    service.acknowledge(urgent.id, "Principal@Central.example")
    service.resolve(
        other.id, "removed", "deleted the comment 705-555-0143", by="owner@central.example"
    )
    with service.sessions() as s:
        assert audit.verify(s) == []
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    service.close()
    assert [e.id for e in entries] == list(range(1, len(entries) + 1))
    kinds = {e.kind for e in entries}
    assert {"finding", "notification", "notification_sent", "acknowledged", "resolved"} <= kinds
    ack = next(e for e in entries if e.kind == "acknowledged")
    assert ack.subject == f"finding:{urgent.id}" and ack.data["by"] == "principal@central.example"
    sent = next(e for e in entries if e.kind == "notification_sent")
    assert (
        sent.data["recipient"] == "principal@central.example" and urgent.id in sent.data["findings"]
    )
    dumped = " ".join(audit.canonical_json(e.data) + e.subject for e in entries)
    for ev in SCENARIO:
        assert ev["text"] not in dumped
    assert "705-555" not in dumped and "kid.north" not in dumped


def test_verify_finds_edited_and_deleted_entries(db_url: str) -> None:
    engine, sessions = _sessions(db_url)
    with sessions.begin() as s:
        for i in range(5):
            audit.record(s, "finding", f"finding:{i}", {"rule": f"r{i}", "section": "5.0"}, NOW)
    with sessions() as s:
        assert audit.verify(s) == []

    with sessions.begin() as s:  # edit an entry's data
        s.execute(update(AuditEntry).where(AuditEntry.id == 2).values(data={"rule": "other"}))
    with sessions() as s:
        problems = audit.verify(s)
    assert [(p.entry_id, "edited" in p.problem) for p in problems] == [(2, True)]

    with sessions.begin() as s:  # a careful forger re-hashes the edited entry: the next link breaks
        s.execute(update(AuditEntry).where(AuditEntry.id == 2).values(kind="resolved"))
        e2 = s.get_one(AuditEntry, 2)
        e2.hash = audit.entry_hash(e2.prev_hash, 2, e2.at, e2.kind, e2.subject, e2.data)
    with sessions() as s:
        problems = audit.verify(s)
    assert [p.entry_id for p in problems] == [3]
    assert "previous entry" in problems[0].problem

    with sessions.begin() as s:  # delete from the middle
        s.execute(delete(AuditEntry).where(AuditEntry.id.in_([2, 3])))
    with sessions() as s:
        messages = [str(p) for p in audit.verify(s)]
    assert any("entry 4" in m and "2-3 are missing" in m for m in messages)
    engine.dispose()


def test_verify_finds_entries_deleted_from_the_end(db_url: str) -> None:
    engine, sessions = _sessions(db_url)
    with sessions.begin() as s:
        for i in range(3):
            audit.record(s, "notification", f"notification:{i}", {"recipient": "a@b.example"}, NOW)
    with sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id == 3))
    with sessions() as s:
        problems = audit.verify(s)
    assert len(problems) == 1 and problems[0].entry_id is None
    assert "ends at entry 2" in problems[0].problem
    engine.dispose()


def test_concurrent_appenders_keep_one_chain(db_url: str) -> None:
    """Separate connections appending at once (as two processes would) never fork it."""
    engine, sessions = _sessions(db_url)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(8):
                with sessions.begin() as s:
                    audit.record(s, "finding", f"finding:{worker}-{i}", {"w": worker}, NOW)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with sessions() as s:
        assert audit.verify(s) == []
        assert list(s.scalars(select(AuditEntry.id).order_by(AuditEntry.id))) == list(range(1, 33))
    engine.dispose()
