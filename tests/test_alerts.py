"""Urgent path, acknowledgement, escalation ladder and digest timing (issue: alerts).

Time is moved with time-machine; the service reads the real clock (`utcnow`).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import time_machine
from sqlalchemy import select

from monitor.acklinks import AckSigner, InvalidLinkError
from monitor.actions import ActionError
from monitor.config import parse_config
from monitor.db.tables import Finding
from monitor.service import Service
from monitor.web import WebServer
from tests.conftest import base_config
from tests.smtpd_support import free_port
from tests.test_pipeline import SCENARIO, T0, write_events

CRISIS = [e for e in SCENARIO if e["id"] == "3"]


def make(tmp_path: Path, db_url: str | None = None, **extra: Any) -> Service:
    data = base_config(tmp_path, db_url=db_url)
    data["board"] = {"safety_contacts": ["safety@board.example", "sso@board.example"]}
    data.update(extra)
    return Service(parse_config(data))


def outbox(tmp_path: Path) -> list[email.message.EmailMessage]:
    out = []
    for p in sorted((tmp_path / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        m = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        assert isinstance(m, email.message.EmailMessage)
        out.append(m)
    return out


def recipients(tmp_path: Path) -> list[str]:
    return [str(m["To"]) for m in outbox(tmp_path)]


def poll_urgent_findings(tmp_path: Path) -> list[Finding]:
    """One forced poll an hour after T0; the urgent findings it stored."""
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        service = make(tmp_path)
        service.poll_once(force=True)
        with service.sessions() as s:
            urgent = list(s.scalars(select(Finding).where(Finding.severity == "urgent")))
        service.close()
    return urgent


def urgent_finding_id(service: Service) -> int:
    with service.sessions() as s:
        ids = s.scalars(select(Finding.id).where(Finding.severity == "urgent")).all()
    assert ids
    return ids[0]


def test_escalation_climbs_one_rung_at_a_time_until_acknowledged(
    tmp_path: Path, db_url: str
) -> None:
    write_events(tmp_path / "events.jsonl", CRISIS)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False) as traveller:
        service = make(tmp_path, db_url)
        service.poll_once(force=True)
        assert recipients(tmp_path) == ["principal@central.example"]
        traveller.shift(timedelta(minutes=29))
        service.escalate()
        assert len(recipients(tmp_path)) == 1  # not yet: 30 minutes
        traveller.shift(timedelta(minutes=2))
        service.escalate()
        assert recipients(tmp_path)[1:] == ["vp@central.example"]
        service.escalate()
        assert len(recipients(tmp_path)) == 2  # one rung per interval
        traveller.shift(timedelta(minutes=31))
        service.escalate()
        assert sorted(recipients(tmp_path)[2:]) == ["safety@board.example", "sso@board.example"]
        escalated = outbox(tmp_path)[1]
        assert "not acknowledged" in escalated.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        traveller.shift(timedelta(hours=3))
        service.escalate()
        assert len(recipients(tmp_path)) == 4  # the ladder has no more rungs
        service.close()


def test_acknowledging_stops_the_ladder(tmp_path: Path, db_url: str) -> None:
    write_events(tmp_path / "events.jsonl", CRISIS)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False) as traveller:
        service = make(tmp_path, db_url)
        service.poll_once(force=True)
        finding = urgent_finding_id(service)
        assert service.acknowledge(finding, "Principal@Central.example") == [finding]
        assert service.acknowledge(finding, "principal@central.example") == []  # idempotent
        traveller.shift(timedelta(hours=2))
        service.escalate()
        assert recipients(tmp_path) == ["principal@central.example"]
        with service.sessions() as s:
            row = s.get_one(Finding, finding)
            assert (
                row.status == "acknowledged" and row.acknowledged_by == "principal@central.example"
            )
        service.resolve(finding, "reported", "called the family; CAS informed")
        with service.sessions() as s:
            assert s.get_one(Finding, finding).resolution == "reported"
        with pytest.raises(ActionError, match="unknown action"):
            service.resolve(finding, "deleted", "")
        with pytest.raises(ActionError, match="no finding"):
            service.acknowledge(999_999, "x@y.example")
        service.close()


def test_urgent_email_carries_a_working_signed_link(tmp_path: Path) -> None:
    write_events(tmp_path / "events.jsonl", CRISIS)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        service = make(tmp_path, web={"base_url": "https://pw.board.example"})
        service.poll_once(force=True)
        (alert,) = outbox(tmp_path)
        text = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        match = re.search(r"https://pw\.board\.example/ack/(\S+)", text)
        assert match, text
        token = match.group(1)
        with running_web(service) as base:
            page = requests.get(f"{base}/ack/{token}", timeout=10)
            assert page.status_code == 200 and "acknowledge" in page.text.lower()
            assert page.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in page.text
            with service.sessions() as s:  # a GET (a link preview) changes nothing
                assert set(s.scalars(select(Finding.status))) == {"open"}
            posted = requests.post(f"{base}/ack/{token}", allow_redirects=False, timeout=10)
            assert posted.status_code == 303
            with service.sessions() as s:
                row = s.scalars(select(Finding).where(Finding.severity == "urgent")).one()
                assert row.status == "acknowledged"
                assert row.acknowledged_by == "principal@central.example"
            shown = requests.get(f"{base}/ack/{token}", timeout=10).text
            assert "Acknowledged by principal@central.example" in shown
            tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
            assert requests.post(f"{base}/ack/{tampered}", timeout=10).status_code == 400
        service.close()


@contextmanager
def running_web(service: Service) -> Iterator[str]:
    """The real web endpoint (uvicorn) on a free loopback port."""
    server = WebServer(service, port=free_port())
    server.start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_signed_links_refuse_tampering_expiry_and_other_keys() -> None:
    signer = AckSigner(b"k" * 32)
    now = datetime(2026, 11, 28, tzinfo=UTC)
    token = signer.sign(7, "principal@central.example", now + timedelta(days=1))
    claim = signer.verify(token, now)
    assert (claim.finding_id, claim.recipient) == (7, "principal@central.example")
    with pytest.raises(InvalidLinkError, match="expired"):
        signer.verify(token, now + timedelta(days=2))
    with pytest.raises(InvalidLinkError, match="altered"):
        AckSigner(b"other-key-000000").verify(token, now)
    payload, mac = token.split(".")
    forged = payload.replace(payload[5], "A" if payload[5] != "A" else "B", 1) + "." + mac
    with pytest.raises(InvalidLinkError):
        signer.verify(forged, now)
    with pytest.raises(InvalidLinkError):
        signer.verify("garbage", now)


def test_one_email_per_incident_even_when_several_urgent_rules_fire(tmp_path: Path) -> None:
    both = [{**CRISIS[0], "text": "i want to kill myself and I'm going to shoot everyone"}]
    write_events(tmp_path / "events.jsonl", both)
    urgent = poll_urgent_findings(tmp_path)
    assert len(urgent) >= 2
    assert recipients(tmp_path) == ["principal@central.example"]


TORONTO_0659 = datetime(2026, 11, 23, 11, 59, tzinfo=UTC)  # 06:59 in Toronto (EST)


def test_digest_at_digest_time_once_per_day(tmp_path: Path) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    with time_machine.travel(TORONTO_0659, tick=False) as traveller:
        service = make(tmp_path)
        service.poll_once(force=True)
        before = len(recipients(tmp_path))
        assert service.digest_due().sent == []
        traveller.shift(timedelta(minutes=1))
        sent = service.digest_due().sent
        digests = sorted(to for kind, to, _ in sent if kind == "digest")
        assert digests == ["owner@central.example", "owner@north.example"]
        summaries = sorted(to for kind, to, _ in sent if kind == "summary")
        assert summaries == ["principal@central.example", "principal@north.example"]
        traveller.shift(timedelta(minutes=30))
        assert service.digest_due().sent == []
        assert len(recipients(tmp_path)) == before + 4
        service.close()


def test_digest_catches_up_once_after_downtime(tmp_path: Path) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    with time_machine.travel(TORONTO_0659 - timedelta(hours=2), tick=False) as traveller:
        service = make(tmp_path)
        service.poll_once(force=True)
        service.close()  # down from 04:59 to 09:30
        traveller.shift(timedelta(hours=4, minutes=31))
        restarted = make(tmp_path)
        assert [k for k, _, _ in restarted.digest_due().sent].count("digest") == 2
        restarted.close()
        again = make(tmp_path)  # a second restart the same day sends nothing
        assert again.digest_due().sent == []
        again.close()


def test_principal_gets_a_daily_school_summary(tmp_path: Path) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    with time_machine.travel(TORONTO_0659 - timedelta(minutes=30), tick=False) as traveller:
        service = make(tmp_path)
        service.poll_once(force=True)
        traveller.shift(timedelta(minutes=31))
        service.digest_due()
        service.close()
    summaries = {str(m["To"]): m for m in outbox(tmp_path) if "summary" in str(m["Subject"])}
    assert set(summaries) == {"principal@central.example", "principal@north.example"}
    central = summaries["principal@central.example"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "9.0 Duty of Care (urgent): 1" in central
    assert "findings ack" in central  # the crisis is still unacknowledged
    assert "urgent open" in str(summaries["principal@central.example"]["Subject"])
    north = summaries["principal@north.example"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "None: every urgent alert has been acknowledged." in north


def test_no_content_of_one_school_reaches_another_through_any_template(tmp_path: Path) -> None:
    """Every mail kind (urgent, escalation, digest, summary) with school-unique markers."""
    events = []
    for school, account in (("central", "central-a"), ("north", "north-a")):
        marker = f"ZQ{school.upper()}MARK"
        for i, text in enumerate(
            [
                f"i want to kill myself {marker}",
                f"call me at 705-555-0139 {marker}",
                f"this is fucking stupid {marker}",
                f"lovely concert {marker}",
            ]
        ):
            events.append(
                {
                    "at": (T0 + timedelta(minutes=i)).isoformat(),
                    "account": account,
                    "type": "comment",
                    "id": f"{school}-{i}",
                    "text": text,
                    "author": {"id": f"a{i}", "handle": f"{school}h", "name": f"{marker}N"},
                    "url": f"https://x.com/{school}/status/{i}",
                }
            )
    write_events(tmp_path / "events.jsonl", events)
    with time_machine.travel(TORONTO_0659 + timedelta(minutes=1), tick=False) as traveller:
        service = make(tmp_path)
        service.poll_once(force=True)
        traveller.shift(timedelta(hours=2))
        service.escalate()
        service.digest_due()
        service.close()
    messages = outbox(tmp_path)
    kinds = {str(m["Subject"]).split(" — ")[0].split(":")[0] for m in messages}
    assert len(kinds) >= 3  # urgent, digest and summary were all produced
    for msg in messages:
        to = str(msg["To"])
        school = "central" if "central" in to else "north" if "north" in to else "board"
        raw = msg.as_string()
        for other in ("central", "north"):
            if other != school and school != "board":
                assert f"ZQ{other.upper()}MARK" not in raw, (to, msg["Subject"])
                assert f"https://x.com/{other}/" not in raw


def test_a_burst_of_crisis_replies_on_one_thread_is_one_alert(tmp_path: Path) -> None:
    burst = [
        {
            **CRISIS[0],
            "id": f"b{i}",
            "parent": "1",
            "text": text,
            "at": (T0 + timedelta(minutes=10 + i)).isoformat(),
        }
        for i, text in enumerate(
            ["i want to kill myself", "me too i want to die", "i'm going to shoot everyone"]
        )
    ]
    other = {
        **CRISIS[0],
        "id": "lone",
        "parent": "99",
        "text": "i want to kill myself",
        "at": (T0 + timedelta(minutes=20)).isoformat(),
    }
    write_events(tmp_path / "events.jsonl", [*burst, other])
    urgent = poll_urgent_findings(tmp_path)
    assert len(urgent) >= 4  # every comment is still its own documented finding
    alerts = outbox(tmp_path)
    assert recipients(tmp_path) == ["principal@central.example"] * 2  # thread 1, thread 99
    texts = [m.get_body(("plain",)).get_content() for m in alerts]  # type: ignore[union-attr]
    assert sum("me too i want to die" in t and "shoot everyone" in t for t in texts) == 1
