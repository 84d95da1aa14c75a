"""A process killed between the SMTP server accepting an alert and the outbox
recording it as sent: on restart the alert is re-sent with the same Message-ID, so
mail clients show it once, and it is then recorded and never sent a third time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.smtpd_support import CapturingSMTPServer, ReceivedMessage

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")


class KillingSMTPServer(CapturingSMTPServer):
    """Accepts a message, then SIGKILLs the sender before it hears the 250 reply."""

    victim: int | None = None

    def _record(self, received: ReceivedMessage, raw: bytes, login: str | None) -> None:
        super()._record(received, raw, login)
        if self.victim is not None:
            os.kill(self.victim, signal.SIGKILL)
            self.victim = None


def test_killed_after_send_before_record_resends_with_same_message_id(tmp_path: Path) -> None:
    event = {
        "at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "type": "comment",
        "account": "central-a",
        "id": "c1",
        "text": "i want to kill myself",
        "author": {"id": "u1", "name": "Kid"},
    }
    (tmp_path / "events.jsonl").write_text(json.dumps(event) + "\n")
    with KillingSMTPServer() as smtp:
        config = tmp_path / "policywatch.toml"
        config.write_text(f"""
state_dir = "{tmp_path / "state"}"
[database]
url = "sqlite:///{tmp_path / "pw.db"}"
[mail]
sender = "policywatch@board.example"
host = "127.0.0.1"
port = {smtp.port}
[[schools]]
id = "central"
name = "Central"
principal = "principal@central.example"
staff = ["owner@central.example"]
[[accounts]]
id = "central-a"
platform = "replay"
handle = "CentralA"
external_id = "1"
school = "central"
kind = "classroom"
owners = ["owner@central.example"]
replay_file = "{tmp_path / "events.jsonl"}"
""")
        command = [POLICYWATCH, "--config", str(config), "poll", "--once"]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        smtp.victim = first.pid
        first.communicate(timeout=120)
        assert first.returncode == -signal.SIGKILL
        assert len(smtp.messages) == 1

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'pw.db'}")
        with engine.connect() as conn:  # the finding and its alert survived the kill
            status = conn.execute(sa.text("SELECT status FROM notifications")).scalars().all()
        assert status == ["pending"]

        for _ in range(2):  # restart, then once more
            again = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert again.returncode == 0, again.stderr
        with engine.connect() as conn:
            status = conn.execute(sa.text("SELECT status FROM notifications")).scalars().all()
        engine.dispose()
    assert status == ["sent"]
    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert len(ids) == 2 and ids[0] == ids[1]  # the same message, recognisably
    assert [m.rcpt_tos for m in smtp.messages] == [["principal@central.example"]] * 2
