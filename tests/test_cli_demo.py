"""The installed `policywatch` command, run as a user would, in a subprocess."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POLICYWATCH, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def demo_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path


def test_demo_end_to_end_then_nothing_new(tmp_path: Path) -> None:
    cwd = demo_dir(tmp_path)
    first = run(cwd, "demo")
    assert first.returncode == 0, first.stderr
    assert "accounts polled: 3" in first.stdout
    outbox = cwd / "var" / "outbox"
    messages = {
        p.name: email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in outbox.glob("*.eml")
    }
    urgent = [
        m
        for m in messages.values()
        if m["To"] == "principal@central.example" and "9.0" in m["Subject"]
    ]
    assert urgent, "an urgent alert to the principal naming section 9.0"
    french = [m for m in messages.values() if m["To"] == "direction@riviere.example"]
    assert french, "the French school's principal is alerted for 'je veux mourir'"
    digests = {m["To"]: m for m in messages.values() if m["To"] == "office@central.example"}
    text = digests["office@central.example"].get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()  # type: ignore[attr-defined]
    assert "5.0" in content and "8.0" in content  # personal information and language
    assert "replay-file" not in first.stderr
    assert "events.jsonl:" in first.stderr  # the malformed line is reported with its number

    second = run(cwd, "demo")
    assert second.returncode == 0, second.stderr
    assert "new items: 0" in second.stdout and "emails written: 0" in second.stdout
    assert len(list(outbox.glob("*.eml"))) == len(messages)


def test_poll_once_twice_and_findings_json(tmp_path: Path) -> None:
    cwd = demo_dir(tmp_path)
    cfg = "config/demo.toml"
    first = run(cwd, "--config", cfg, "poll", "--once")
    assert first.returncode == 0, first.stderr
    second = run(cwd, "--config", cfg, "poll", "--once")
    assert second.returncode == 0 and "new items: 0" in second.stdout
    listed = run(cwd, "--config", cfg, "findings", "list", "--json")
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["section"] for r in records} >= {"5.0", "8.0", "9.0"}
    assert all("705-555-0143" not in r["excerpt"] for r in records)


def test_check_config_and_connectors(tmp_path: Path) -> None:
    cwd = demo_dir(tmp_path)
    ok = run(cwd, "--config", "config/demo.toml", "check-config")
    assert ok.returncode == 0 and "3 accounts" in ok.stdout
    listed = run(cwd, "connectors")
    assert "replay" in listed.stdout
    missing = run(cwd, "--config", "nope.toml", "check-config")
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
