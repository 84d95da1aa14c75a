"""`policywatch poll --once` on X, Facebook and Instagram accounts, through the real
tweepy and facebook-sdk clients, against loopback fakes of the two APIs.

The first poll stores the items and their findings; the second makes only
incremental requests and stores nothing twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.graph_api import TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.x_api import BEARER, FakeXApi

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")
ME, PAGE, IG = "1234567890", "100200300", "17841400000000001"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeXApi, FakeGraphAPI]]:
    now = datetime.now(UTC)
    epoch = int(time.time())
    with FakeXApi() as x:
        x.add_user(ME, "grade5central", "Grade 5 Central", protected=False)
        x.add_user("200", "sam", "Sam Parent")
        x.add_tweet("1001", ME, "Our science fair is Friday!", now - timedelta(hours=3))
        x.add_tweet(
            "1002",
            "200",
            "@grade5central i want to kill myself",
            now - timedelta(hours=2),
            conversation_id="1001",
            replied_to="1001",
            in_reply_to_user_id=ME,
        )
        x.add_tweet(
            "1003",
            "200",
            "Proud of @grade5central for the food drive",
            now - timedelta(hours=1),
            mentions=(ME,),
        )
        graph = FakeGraphAPI().start()
        try:
            graph.add_page(PAGE, name="Central Public School")
            graph.add_post(PAGE, f"{PAGE}_1", epoch - 7200, "Picture day is Thursday")
            graph.add_comment(
                PAGE,
                f"{PAGE}_1",
                "c1",
                epoch - 3600,
                "call me at 705-555-0143 for the carpool",
                {"id": "901", "name": "Dana K."},
            )
            graph.add_tagged(
                PAGE,
                "t1",
                epoch - 1800,
                "Great game vs Central",
                {"id": "902", "name": "Northside"},
            )
            graph.add_ig_user(IG, "centralps")
            graph.add_media(IG, "m1", epoch - 7200, "Art show")
            graph.add_ig_comment(
                IG, "m1", "ic1", epoch - 600, "this is fucking stupid", "kid_23", from_id="903"
            )
            yield x, graph
        finally:
            graph.stop()


def write_config(tmp_path: Path, x: FakeXApi, graph: FakeGraphAPI) -> Path:
    fast = "{ retry_attempts = 1 }"
    config = tmp_path / "policywatch.toml"
    config.write_text(f"""
state_dir = "{tmp_path / "state"}"
[database]
url = "sqlite:///{tmp_path / "pw.db"}"
[mail]
sender = "policywatch@board.example"
outbox_dir = "{tmp_path / "outbox"}"
[[schools]]
id = "central"
name = "Central Public School"
principal = "principal@central.example"
staff = ["owner@central.example"]
[[accounts]]
id = "grade5-x"
platform = "x"
handle = "grade5central"
external_id = "{ME}"
school = "central"
kind = "classroom"
owners = ["owner@central.example"]
credentials = {{ bearer_token_env = "E2E_X_TOKEN" }}
api_base_url = "{x.url}"
options = {fast}
[[accounts]]
id = "central-fb"
platform = "facebook"
handle = "CentralPublicSchool"
external_id = "{PAGE}"
school = "central"
kind = "school"
owners = ["owner@central.example"]
credentials = {{ page_token_env = "E2E_FB_TOKEN" }}
api_base_url = "{graph.base_url}"
moderation = "hide"
[[accounts]]
id = "central-ig"
platform = "instagram"
handle = "centralps"
external_id = "{IG}"
school = "central"
kind = "school"
owners = ["owner@central.example"]
credentials = {{ access_token_env = "E2E_FB_TOKEN" }}
api_base_url = "{graph.base_url}"
""")
    return config


def policywatch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "E2E_X_TOKEN": BEARER, "E2E_FB_TOKEN": GRAPH_TOKEN, "COLUMNS": "200"}
    return subprocess.run(
        [POLICYWATCH, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_poll_once_on_three_platforms_then_only_incremental(
    tmp_path: Path, fakes: tuple[FakeXApi, FakeGraphAPI]
) -> None:
    x, graph = fakes
    config = write_config(tmp_path, x, graph)
    first = policywatch(config, "poll", "--once")
    assert first.returncode == 0, first.stderr
    listed = policywatch(config, "findings", "list", "--json")
    findings = [json.loads(line) for line in listed.stdout.splitlines()]
    by_account = {(f["account"], f["section"], f["severity"]) for f in findings}
    assert ("grade5-x", "9.0", "urgent") in by_account  # the crisis reply on X
    assert ("central-fb", "5.0", "digest") in by_account  # phone number on Facebook
    assert ("central-ig", "8.0", "digest") in by_account  # language on Instagram
    assert any(f["account"] == "central-fb" and f["category"] == "tag" for f in findings)
    hidden = [r for r in graph.requests if r.method == "POST" and r.path.endswith("/c1")]
    assert len(hidden) == 1 and hidden[0].body.get("is_hidden") == "true"  # hidden, not deleted
    assert graph.comments["c1"]["is_hidden"] is True
    phone = next(f for f in findings if f["account"] == "central-fb" and f["section"] == "5.0")
    assert phone["status"] == "resolved"  # recorded as the finding's resolution
    assert not [r for r in graph.requests if r.method == "DELETE"]
    alerts = list((tmp_path / "outbox").glob("*principal*.eml"))
    assert len(alerts) == 1
    assert "BEARER" not in first.stderr and BEARER not in first.stderr
    assert GRAPH_TOKEN not in first.stderr

    x.requests.clear()
    graph.reset_log()
    second = policywatch(config, "poll", "--once")
    assert second.returncode == 0, second.stderr
    assert "new items: 0" in second.stdout
    mentions = x.requests_to(r"/2/users/\d+/mentions")
    assert mentions and all("since_id" in r.query for r in mentions)
    timeline_reads = [
        r
        for r in [*graph.requests, *graph.batch_items]
        if r.path.rstrip("/").endswith(("/feed", "/media"))
    ]
    assert timeline_reads, "the second poll read the feed and the media again"
    assert all("since" in r.query for r in timeline_reads)  # time-based, incremental
    again = policywatch(config, "findings", "list", "--json")
    assert len(again.stdout.splitlines()) == len(findings)
    assert len(list((tmp_path / "outbox").glob("*principal*.eml"))) == 1
