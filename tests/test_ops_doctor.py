"""`policywatch doctor`, and the planted-token check: no secret reaches logs or tables."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, select

from monitor.config import Config, parse_config
from monitor.db.session import make_engine, upgrade
from monitor.db.tables import Base
from monitor.doctor import check_clock, run_checks
from monitor.ops_cli import doctor_command
from monitor.service import Service
from tests.conftest import base_config
from tests.smtpd_support import CapturingSMTPServer, free_port
from tests.test_pipeline import T0, Clock

TOKEN_ENV = "PW_DOCTOR_X_TOKEN"


def _config(tmp_path: Path, db_url: str, smtp_port: int, **mail: Any) -> Config:
    data = base_config(tmp_path, db_url=db_url, smtp_port=smtp_port)
    data["accounts"][0]["credentials"] = {"bearer_token_env": TOKEN_ENV}
    data["mail"].update(mail)
    return parse_config(data)


def _migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()


def test_doctor_fails_on_closed_smtp_and_missing_credential(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    _migrated(db_url)
    config = _config(tmp_path, db_url, free_port())
    results = {c.check: c for c in run_checks(config)}
    assert results["database"].ok and results["config"].ok and results["clock"].ok
    assert not results["smtp"].ok and "not reachable" in results["smtp"].detail
    creds = results["credentials:central-a"]
    assert not creds.ok and TOKEN_ENV in creds.detail
    assert results["credentials:north-a"].ok
    assert doctor_command(config) == 1
    assert "FAIL" in capsys.readouterr().out


def test_doctor_passes_with_smtp_server_and_credentials(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "a-real-looking-token-value")
    _migrated(db_url)
    with CapturingSMTPServer() as server:
        config = _config(tmp_path, db_url, server.port)
        checks = run_checks(config)
        assert all(c.ok for c in checks), checks
        assert doctor_command(config) == 0
    assert server.messages == []  # a probe, not a message


def test_doctor_flags_unmigrated_database_and_absurd_clock(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}", free_port())
    database = {c.check: c for c in run_checks(config)}["database"]
    assert not database.ok and "db upgrade" in database.detail
    assert not check_clock(config, lambda: datetime(2001, 1, 1, tzinfo=UTC)).ok


def test_planted_token_never_reaches_logs_or_tables(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = f"planted-{uuid.uuid4().hex}"
    monkeypatch.setenv(TOKEN_ENV, token)
    monkeypatch.setenv("PW_DOCTOR_SMTP_PASSWORD", token)
    caplog.set_level(logging.DEBUG)
    # the replay file is missing: every poll fails; SMTP is closed: every send fails
    config = _config(
        tmp_path,
        db_url,
        free_port(),
        username_env="PW_DOCTOR_SMTP_USER",
        password_env="PW_DOCTOR_SMTP_PASSWORD",
    )
    monkeypatch.setenv("PW_DOCTOR_SMTP_USER", "policywatch")
    clock = Clock(T0)
    service = Service(config, clock=clock)
    for _ in range(2):
        service.poll_once(force=True)
        clock.now += timedelta(minutes=10)
    checks = run_checks(config)
    assert not all(c.ok for c in checks)
    assert doctor_command(config) == 1

    texts = [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    texts += [c.detail for c in checks]
    assert any("poll failed" in t for t in texts)  # the failure was logged at all
    for text in texts:
        assert token not in text
    searched = 0
    with service.sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
            for row in session.execute(select(*columns)) if columns else []:
                for value in row:
                    searched += 1
                    assert token not in str(value), f"token found in {table.name}"
    service.close()
    assert searched > 0


def test_doctor_reports_classifier_weights_that_do_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.doctor import check_rules
    from monitor.rules import text_model

    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", free_port())
    assert check_rules(config).ok
    assert "classifier weights loaded" in check_rules(config).detail
    monkeypatch.setattr(text_model, "_model", None)
    monkeypatch.setattr(text_model, "WEIGHTS_FILE", "missing.npz")
    failed = check_rules(config)
    assert not failed.ok and "missing.npz" in failed.detail
