"""The monitoring cycle end to end: replay connector -> storage -> rules -> outbox -> mail.

Runs on SQLite and on the machine's PostgreSQL (the `db_url` fixture), with real
.eml files or a real SMTP server on loopback.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.db.tables import Account, Finding, Notification, StoredItem
from monitor.service import Service
from tests.conftest import base_config

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def event(
    minutes: int, account: str, kind: str, ident: str, text: str = "", **extra: Any
) -> dict[str, Any]:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    e: dict[str, Any] = {
        "at": at,
        "account": account,
        "type": kind,
        "id": ident,
        "text": text,
        "author": {"id": f"u-{ident}", "handle": f"h{ident}", "name": f"Name {ident}"},
        "url": f"https://x.com/h/status/{ident}",
    }
    e.update(extra)
    return e


def write_events(
    path: Path, events: list[dict[str, Any]], raw_lines: dict[int, str] | None = None
) -> None:
    lines = [json.dumps(e) for e in events]
    for index, line in sorted((raw_lines or {}).items()):
        lines.insert(index, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


SCENARIO = [
    event(0, "central-a", "comment", "1", "Thank you for the lovely concert!"),
    event(1, "central-a", "comment", "2", "call me at 705-555-0143 about the carpool"),
    event(2, "central-a", "reply", "3", "i want to kill myself, nobody would care", parent="1"),
    event(3, "central-a", "tag", "4", "Great game vs Central tonight"),
    event(4, "north-a", "comment", "5", "North rocks, see you at the game"),
    event(5, "north-a", "comment", "6", "email me at kid.north@gmail.com"),
]


def make_service(tmp_path: Path, db_url: str, clock: Clock, **kw: Any) -> Service:
    data = base_config(tmp_path, db_url=db_url, **kw)
    return Service(parse_config(data), clock=clock)


def counts(service: Service) -> dict[str, int]:
    with service.sessions() as s:
        return {
            "items": s.scalar(select(func.count()).select_from(StoredItem)) or 0,
            "findings": s.scalar(select(func.count()).select_from(Finding)) or 0,
            "notifications": s.scalar(select(func.count()).select_from(Notification)) or 0,
        }


def eml_files(tmp_path: Path) -> list[email.message.EmailMessage]:
    out = []
    for path in sorted((tmp_path / "outbox").glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        out.append(msg)
    return out


def body(msg: email.message.EmailMessage, subtype: str = "plain") -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_poll_twice_stores_and_reports_nothing_twice(tmp_path: Path, db_url: str) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    clock = Clock(T0 + timedelta(hours=1))
    service = make_service(tmp_path, db_url, clock)
    report, sent = service.poll_once(force=True)
    assert report.new_items == 6
    first = counts(service)
    sections = {(o.account_id, s, sev) for o in report.outcomes for s, sev in o.findings}
    assert ("central-a", "9.0", "urgent") in sections
    assert ("central-a", "5.0", "digest") in sections  # phone number
    assert ("north-a", "5.0", "digest") in sections  # email address
    assert [(k, to) for k, to, _ in sent.sent] == [("urgent", "principal@central.example")]

    clock.now += timedelta(minutes=10)
    report, sent = service.poll_once(force=True)
    assert report.new_items == 0 and sent.sent == []
    assert counts(service) == first
    service.close()

    # a restart (new process, same database) sees nothing new either
    again = make_service(tmp_path, db_url, clock)
    report, sent = again.poll_once(force=True)
    assert report.new_items == 0 and sent.sent == [] and counts(again) == first
    again.close()


def test_urgent_alert_names_section_9_and_escapes_content(tmp_path: Path) -> None:
    evil = event(
        6,
        "central-a",
        "reply",
        "7",
        "<script>alert(1)</script> i want to kill myself",
        author={"id": "u7", "handle": "x", "name": "Evil\r\nBcc: leak@evil.example"},
    )
    write_events(tmp_path / "events.jsonl", [*SCENARIO, evil])
    service = make_service(
        tmp_path, f"sqlite:///{tmp_path / 'pw.db'}", Clock(T0 + timedelta(hours=1))
    )
    service.poll_once(force=True)
    service.close()
    alerts = [m for m in eml_files(tmp_path) if m["To"] == "principal@central.example"]
    assert len(alerts) == 2  # one per incident (two different comments)
    for msg in alerts:
        assert "9.0" in msg["Subject"]
        assert msg["Bcc"] is None and "leak@evil.example" not in str(msg["To"])
        html = body(msg, "html")
        assert "<script>" not in html
    assert any("&lt;script&gt;" in body(m, "html") for m in alerts)
    # the other school's principal got nothing about Central
    assert not [m for m in eml_files(tmp_path) if "north" in m["To"]]


def test_digest_goes_once_to_each_owner_and_stays_in_its_school(
    tmp_path: Path, db_url: str
) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    service = make_service(tmp_path, db_url, Clock(T0 + timedelta(hours=1)))
    service.poll_once(force=True)
    sent = service.digest_now()
    assert sorted(to for k, to, _ in sent.sent) == ["owner@central.example", "owner@north.example"]
    assert service.digest_now().sent == []  # run twice: nothing the second time
    service.close()
    digests = {m["To"]: m for m in eml_files(tmp_path) if "digest" in m["Subject"].lower()}
    central = body(digests["owner@central.example"])
    north = body(digests["owner@north.example"])
    assert "5.0" in central and "8.0" in central  # personal information, tag
    assert "kid.north" not in central and "North rocks" not in central
    assert "Thank you for the lovely concert" not in north and "CentralA" not in north
    assert "705-555-0143" not in central  # excerpts mask personal information


def test_malformed_replay_line_is_reported_and_the_rest_processed(tmp_path: Path) -> None:
    write_events(
        tmp_path / "events.jsonl", SCENARIO, raw_lines={2: '{"at": "2026-11-20T15:01:30Z", "id": '}
    )
    service = make_service(
        tmp_path, f"sqlite:///{tmp_path / 'pw.db'}", Clock(T0 + timedelta(hours=1))
    )
    report, _ = service.poll_once(force=True)
    service.close()
    warnings = [w for o in report.outcomes for w in o.warnings]
    assert any("events.jsonl:3:" in w and "malformed" in w for w in warnings)
    assert report.new_items == 6


def test_resume_after_restart_sees_only_later_events(tmp_path: Path, db_url: str) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    clock = Clock(T0 + timedelta(minutes=2, seconds=30))  # events 1-3 published
    service = make_service(tmp_path, db_url, clock)
    report, _ = service.poll_once(force=True)
    assert report.new_items == 3
    service.close()
    clock.now = T0 + timedelta(hours=2)
    restarted = make_service(tmp_path, db_url, clock)
    report, _ = restarted.poll_once(force=True)
    assert report.new_items == 3
    with restarted.sessions() as s:
        ids = sorted(s.scalars(select(StoredItem.external_id)))
    assert ids == ["1", "2", "3", "4", "5", "6"]
    restarted.close()


def test_a_spam_burst_spanning_a_restart_is_one_finding(tmp_path: Path, db_url: str) -> None:
    spammer = {"id": "bot-1", "handle": "crypto_kev", "name": "Kev"}
    spam = "WIN a free iPhone, click the link in my bio!!"
    burst = [event(m, "central-a", "comment", f"s{m}", spam, author=spammer)
             for m in (10, 20, 30, 200)]
    write_events(tmp_path / "events.jsonl", burst)

    def scam_findings(minutes: int) -> list[str]:
        # a fresh service each time: the engine's in-memory window starts empty
        service = make_service(tmp_path, db_url, Clock(T0 + timedelta(minutes=minutes)))
        service.poll_once(force=True)
        with service.sessions() as s:
            found = sorted(s.scalars(
                select(StoredItem.external_id).join(Finding, Finding.item_id == StoredItem.id)
                .where(Finding.rule_id == "spam.scam.en")))
        service.close()
        return found

    assert scam_findings(15) == ["s10"]
    assert scam_findings(25) == ["s10"]  # s20: same author, same text, within the hour
    assert scam_findings(35) == ["s10"]
    assert scam_findings(205) == ["s10", "s200"]  # hours later: a new burst


def write_same_comment_twice(tmp_path: Path) -> None:
    """A parent's comment at minute 10 and the same comment again at minute 20."""
    parent = {"id": "p-9", "handle": "worried_mom", "name": "Pat"}
    text = "Is the bake sale still happening on friday or not???"
    write_events(tmp_path / "events.jsonl",
                 [event(m, "central-a", "comment", f"r{m}", text, author=parent)
                  for m in (10, 20)])


def repeated_items(service: Service) -> list[str]:
    """External ids of the items the repetition rule reported."""
    with service.sessions() as s:
        return list(s.scalars(
            select(StoredItem.external_id).join(Finding, Finding.item_id == StoredItem.id)
            .where(Finding.rule_id == "spam.repeated")))


def test_a_repeat_after_a_restart_is_still_noticed(tmp_path: Path, db_url: str) -> None:
    write_same_comment_twice(tmp_path)
    first = make_service(tmp_path, db_url, Clock(T0 + timedelta(minutes=15)))
    first.poll_once(force=True)  # sees r10 only
    first.close()
    restarted = make_service(tmp_path, db_url, Clock(T0 + timedelta(minutes=25)))
    restarted.poll_once(force=True)  # sees r20, the same comment again
    repeated = repeated_items(restarted)
    restarted.close()
    assert repeated == ["r20"]


def two_workers(tmp_path: Path, db_url: str) -> tuple[Clock, Service, Service]:
    """Two live services on one database, the same comment posted twice; `second` has
    run one cycle before anything was posted (so it has nothing to replay)."""
    write_same_comment_twice(tmp_path)
    clock = Clock(T0 + timedelta(minutes=5))
    second = make_service(tmp_path, db_url, clock)
    second.poll_once(force=True)
    return clock, make_service(tmp_path, db_url, clock), second


def test_a_repeat_whose_first_copy_another_worker_stored_is_noticed(
    tmp_path: Path, db_url: str
) -> None:
    # two live workers on one database: the account's first comment is polled by one,
    # the same comment again by the other (as when a lease moves between them)
    clock, first, second = two_workers(tmp_path, db_url)
    clock.now = T0 + timedelta(minutes=15)
    first.poll_once(force=True)  # stores and evaluates r10
    clock.now = T0 + timedelta(minutes=25)
    second.poll_once(force=True)  # catches up on r10, then sees r20: the same comment again
    repeated = repeated_items(second)
    first.close()
    second.close()
    assert repeated == ["r20"]


def test_a_repeat_whose_first_copy_was_stored_while_the_cycle_ran_is_noticed(
    tmp_path: Path, db_url: str
) -> None:
    # the race a once-per-cycle replay leaves open: the other worker stores the first
    # copy after this worker's cycle has begun but before it claims the account
    clock, first, second = two_workers(tmp_path, db_url)
    claim = second.poller.claim
    interleaved: list[int] = []

    def claim_after_the_other_worker_stored(*args: Any, **kwargs: Any) -> list[Any]:
        if not interleaved:  # once, inside second's cycle, before its first claim
            clock.now = T0 + timedelta(minutes=15)
            interleaved.append(first.poll_once(force=True)[0].new_items)  # stores r10
            clock.now = T0 + timedelta(minutes=25)
        return claim(*args, **kwargs)

    second.poller.claim = claim_after_the_other_worker_stored  # type: ignore[method-assign]
    clock.now = T0 + timedelta(minutes=25)
    second.poll_once(force=True)  # claims the account after r10 was stored; sees r20
    repeated = repeated_items(second)
    first.close()
    second.close()
    assert interleaved == [1]
    assert repeated == ["r20"]


def test_replaying_the_same_comment_twice_counts_it_once() -> None:
    from monitor.rules.recent import RecentWindow

    window = RecentWindow()
    assert window.observe("k", "pat", 0.0, item="x:1") == (1, 1)
    assert window.observe("k", "pat", 1.0, item="x:1") == (1, 1)  # the same comment replayed
    assert window.observe("k", "pat", 2.0, item="x:2") == (2, 1)  # the same text again
    assert window.observe("k", "sam", 3.0) == (1, 2)  # no identity: always counted


def _settings(
    minutes: int, audience: str, protected: bool, roles: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "account": "central-a",
        "type": "settings",
        "audience": audience,
        "fields": {"protected": protected},
        "roles": roles,
    }


def test_privacy_change_to_public_and_non_staff_role_are_urgent(
    tmp_path: Path, db_url: str
) -> None:
    staff = {"id": "9", "name": "Ms Lee", "role": "admin", "email": "owner@central.example"}
    student = {"id": "77", "name": "Student Helper", "role": "editor"}
    write_events(
        tmp_path / "events.jsonl",
        [
            _settings(0, "private", True, [staff]),
            _settings(30, "public", False, [staff, student]),
        ],
    )
    clock = Clock(T0 + timedelta(minutes=10))
    service = make_service(tmp_path, db_url, clock)
    service.poll_once(force=True)
    assert counts(service)["findings"] == 0  # the first snapshot is the baseline
    clock.now = T0 + timedelta(hours=1)
    _, sent = service.poll_once(force=True)
    with service.sessions() as s:
        rules = {(f.rule_id, f.severity, f.section) for f in s.scalars(select(Finding))}
    service.close()
    severities = {(sev, sec) for _, sev, sec in rules}
    assert ("urgent", "5.0") in severities  # made public
    assert ("urgent", "8.0") in severities  # a non-staff role holder
    assert ("digest", "5.0") in severities  # any change
    recipients = sorted(to for _, to, _ in sent.sent)
    assert "principal@central.example" in recipients and "owner@central.example" in recipients


def test_connector_failure_degrades_the_account_once_and_recovers(
    tmp_path: Path, db_url: str
) -> None:
    events = tmp_path / "events.jsonl"
    clock = Clock(T0 + timedelta(hours=1))
    service = make_service(tmp_path, db_url, clock)  # events file does not exist yet
    for _ in range(3):
        report, _ = service.poll_once(force=True)
        clock.now += timedelta(minutes=5)
    errors = {o.account_id: o.error for o in report.outcomes}
    assert errors["central-a"] and "not found" in errors["central-a"]
    with service.sessions() as s:
        health = s.scalars(select(Finding).where(Finding.subject_kind == "account_health")).all()
        assert len(health) == 2  # one per account, not one per poll
        assert s.get_one(Account, "central-a").health == "error"
    write_events(events, SCENARIO)
    report, _ = service.poll_once(force=True)
    assert report.new_items == 6
    with service.sessions() as s:
        assert s.get_one(Account, "central-a").health == "ok"
    service.close()


def test_smtp_down_then_up_delivers_every_alert_exactly_once(
    tmp_path: Path, smtp_server_factory: Callable[..., Any]
) -> None:
    from tests.smtpd_support import free_port

    port = free_port()
    write_events(tmp_path / "events.jsonl", SCENARIO)
    clock = Clock(T0 + timedelta(hours=1))
    service = make_service(tmp_path, f"sqlite:///{tmp_path / 'pw.db'}", clock, smtp_port=port)
    _, sent = service.poll_once(force=True)
    assert sent.sent == [] and len(sent.failed) == 1 and f"127.0.0.1:{port}" in sent.failed[0][2]
    with smtp_server_factory(port=port) as server:
        assert service.outbox.drain().sent == []  # backoff: not due yet
        clock.now += timedelta(minutes=5)
        assert [k for k, _, _ in service.outbox.drain().sent] == ["urgent"]
        clock.now += timedelta(hours=2)
        assert service.outbox.drain().sent == []
        assert len(server.messages) == 1
        _, rcpt, msg = server.messages[0]
        assert rcpt == ["principal@central.example"] and "9.0" in msg["Subject"]
    service.close()
