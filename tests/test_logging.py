"""Logs: JSON lines when asked, and configured secrets never printed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.logsetup import configure_logging
from tests.conftest import base_config


def test_json_lines_with_secrets_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "tok-9f8e7d6c5b4a-secret"
    monkeypatch.setenv("CENTRAL_X_TOKEN", token)
    data = base_config(tmp_path)
    data["log"] = {"format": "json", "level": "info"}
    data["accounts"][0]["credentials"] = {"bearer_token_env": "CENTRAL_X_TOKEN"}
    configure_logging(parse_config(data))
    try:
        log = logging.getLogger("monitor.test")
        log.info("calling https://api.example/2/x?access_token=%s with %s", "abc123", token)
        log.debug("not shown at info level")
        try:
            raise RuntimeError(f"failed with {token}")
        except RuntimeError:
            log.exception("request failed")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["level"] for e in lines] == ["info", "error"]
    assert all(e["logger"] == "monitor.test" and e["time"].endswith("+00:00") for e in lines)
    assert "access_token=***" in lines[0]["message"] and "abc123" not in lines[0]["message"]
    text = json.dumps(lines)
    assert token not in text and "***" in lines[1]["exception"]
