"""`policywatch status`: accounts, outbox, digests, workers, as JSON for monitoring."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.ops_cli import status_command
from monitor.status import collect
from tests.smtpd_support import free_port
from tests.test_pipeline import SCENARIO, T0, Clock, make_service, write_events


def test_status_json_shape(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    write_events(tmp_path / "events.jsonl", SCENARIO)
    clock = Clock(T0 + timedelta(hours=1))
    # SMTP port closed: the urgent alert stays in the outbox
    service = make_service(tmp_path, db_url, clock, smtp_port=free_port())
    service.poll_once(force=True)
    clock.now += timedelta(minutes=2)
    data = collect(service)

    assert set(data) == {"now", "accounts", "outbox", "digests", "workers"}
    assert data["workers"] == []
    accounts = {a["id"]: a for a in data["accounts"]}
    assert set(accounts) == {"central-a", "north-a"}
    a = accounts["central-a"]
    assert a["platform"] == "replay" and a["health"] in ("ok", "new")
    assert a["degraded_reason"] is None and a["last_success_at"].startswith("2026-11-20T16:00")
    assert a["cursor_age_seconds"] == 120
    assert a["next_poll_due"].startswith("2026-11-20T16:05")
    assert data["outbox"]["depth"] >= 1 and data["outbox"]["oldest_unsent_age_seconds"] == 120
    digests = {d["school"]: d for d in data["digests"]}
    # 11:02 in Toronto: today's 07:00 digest has not been claimed yet, so it is due
    assert digests["central"]["due"] is True
    assert digests["central"]["next_at"].startswith("2026-11-20T12:00")

    service.digest_due()
    digests = {d["school"]: d for d in collect(service)["digests"]}
    assert digests["central"]["due"] is False
    assert digests["central"]["next_at"].startswith("2026-11-21T12:00")

    status_command(service, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed["accounts"][0]["id"] == "central-a"
    status_command(service, as_json=False)
    assert "central-a" in capsys.readouterr().out
    service.close()


def test_status_names_the_degraded_reason(tmp_path: Path) -> None:
    clock = Clock(T0)
    service = make_service(tmp_path, f"sqlite:///{tmp_path / 'pw.db'}", clock)  # no replay file
    service.poll_once(force=True)
    a = {x["id"]: x for x in collect(service)["accounts"]}["north-a"]
    assert a["health"] == "error" and "not found" in a["degraded_reason"]
    assert a["last_success_at"] is None and a["cursor_age_seconds"] is None
    service.close()
