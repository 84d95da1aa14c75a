"""`policywatch run` as IT runs it: a real process, real signals, the sd_notify socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.smtpd_support import free_port

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")


def toml_config(tmp_path: Path, *, extra_account: bool = False, web_port: int = 0) -> str:
    accounts = ["central-a"] + (["central-b"] if extra_account else [])
    blocks = "".join(
        f"""
[[accounts]]
id = "{a}"
platform = "replay"
handle = "{a}"
external_id = "{i}"
school = "central"
kind = "classroom"
owners = ["owner@central.example"]
replay_file = "{tmp_path / "events.jsonl"}"
"""
        for i, a in enumerate(accounts)
    )
    return f"""
state_dir = "{tmp_path / "state"}"
[database]
url = "sqlite:///{tmp_path / "pw.db"}"
[mail]
sender = "policywatch@board.example"
outbox_dir = "{tmp_path / "outbox"}"
[schedule]
poll_interval = "1s"
[web]
port = {web_port or free_port()}
[[schools]]
id = "central"
name = "Central"
principal = "principal@central.example"
staff = ["owner@central.example"]
{blocks}"""


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, message: str, timeout: float = 30) -> None:
        self.wait_for_count(message, 1, timeout)

    def wait_for_count(self, message: str, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.messages.count(message) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} not received; got {self.messages}")
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], NotifySocket, Path]]:
    now = datetime.now(UTC) - timedelta(minutes=1)
    event = {
        "at": now.isoformat(),
        "account": "central-a",
        "type": "comment",
        "id": "c1",
        "text": "i want to kill myself",
        "author": {"id": "u1", "name": "Kid"},
    }
    (tmp_path / "events.jsonl").write_text(json.dumps(event) + "\n")
    config = tmp_path / "policywatch.toml"
    config.write_text(toml_config(tmp_path))
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    proc = subprocess.Popen(
        [POLICYWATCH, "--config", str(config), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, notify, config
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.sock.close()


def urgent_alerts(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "outbox").glob("*.eml") if b"Subject: URGENT" in p.read_bytes()]


def wait_until(predicate: object, timeout: float = 30) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_daemon_ready_alerts_reloads_and_stops_cleanly(
    daemon: tuple[subprocess.Popen[str], NotifySocket, Path], tmp_path: Path
) -> None:
    proc, notify, config = daemon
    notify.wait_for("READY=1")
    wait_until(lambda: len(urgent_alerts(tmp_path)) == 1)

    second = subprocess.run(
        [POLICYWATCH, "--config", str(config), "run"], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1 and "already running" in second.stderr

    good = config.read_text()
    config.write_text(good.replace('kind = "classroom"', 'kind = "classroom"\nhandel = "x"', 1))
    proc.send_signal(signal.SIGHUP)
    notify.wait_for_count("READY=1", 2)  # the refused reload is over
    config.write_text(toml_config(tmp_path, extra_account=True))
    proc.send_signal(signal.SIGHUP)
    notify.wait_for_count("READY=1", 3)
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - start < 30
    notify.wait_for("STOPPING=1")
    assert "configuration NOT reloaded" in err and "accounts[0].handel" in err
    assert "configuration reloaded: 1 schools, 2 accounts" in err
    assert len(urgent_alerts(tmp_path)) == 1  # nothing sent twice
