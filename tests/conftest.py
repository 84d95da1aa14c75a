"""Shared fixtures: real databases (SQLite file and the machine's PostgreSQL), a real
SMTP server on loopback, and config builders.  Nothing here mocks our own code."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "POLICYWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parent.parent


def _pg_schema_url(*, migrate: bool = True) -> Iterator[str]:
    schema = f"pw_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    try:
        if migrate:
            from monitor.db.session import make_engine, upgrade

            engine = make_engine(url)
            upgrade(engine)  # what IT does with `policywatch db upgrade`
            engine.dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL schema with no tables, as before the first `db upgrade`."""
    yield from _pg_schema_url(migrate=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend the service supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'policywatch.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    from tests.smtpd_support import CapturingSMTPServer

    with CapturingSMTPServer() as server:
        yield server


def base_config(
    tmp_path: Path,
    *,
    db_url: str | None = None,
    replay_file: Path | None = None,
    smtp_port: int | None = None,
    **schedule: Any,
) -> dict[str, Any]:
    """A two-school config as a dict (the TOML shape), with replay accounts."""
    mail: dict[str, Any] = {"sender": "policywatch@board.example"}
    if smtp_port is None:
        mail["outbox_dir"] = str(tmp_path / "outbox")
    else:
        mail.update(host="127.0.0.1", port=smtp_port, security="none", timeout="5s")
    events = str(replay_file or tmp_path / "events.jsonl")
    return {
        "state_dir": str(tmp_path / "state"),
        "database": {"url": db_url or f"sqlite:///{tmp_path / 'pw.db'}"},
        "mail": mail,
        "schedule": {
            "timezone": "America/Toronto",
            "poll_interval": "5m",
            "digest_time": "07:00",
            **schedule,
        },
        "schools": [
            {
                "id": "central",
                "name": "Central Public School",
                "language": "en",
                "principal": "principal@central.example",
                "escalation": ["vp@central.example"],
                "staff": ["owner@central.example", "office@central.example"],
            },
            {
                "id": "north",
                "name": "North Secondary",
                "language": "en",
                "principal": "principal@north.example",
                "staff": ["owner@north.example"],
            },
        ],
        "accounts": [
            {
                "id": "central-a",
                "platform": "replay",
                "handle": "CentralA",
                "external_id": "1",
                "school": "central",
                "kind": "classroom",
                "owners": ["owner@central.example"],
                "replay_file": events,
            },
            {
                "id": "north-a",
                "platform": "replay",
                "handle": "NorthA",
                "external_id": "2",
                "school": "north",
                "kind": "school",
                "owners": ["owner@north.example"],
                "replay_file": events,
            },
        ],
    }


@pytest.fixture
def smtp_server_factory() -> Any:
    """Start an SMTP server later in the test, e.g. on a port that was closed before."""
    from tests.smtpd_support import CapturingSMTPServer

    return CapturingSMTPServer
