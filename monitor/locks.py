"""Exactly-once jobs across workers, decided by the database rather than by each process.

On PostgreSQL a transaction-scoped advisory lock names the job; a second worker that
asks for the same lock while the first holds it skips the job for this tick.  SQLite
needs nothing: one daemon per SQLite file is enforced by a lock file at start.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


class AlreadyRunningError(RuntimeError):
    """Another daemon already works on this SQLite database."""


def try_job_lock(session: Session, job: str) -> bool:
    """Hold `job` for the rest of this transaction; False when another worker holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"policywatch:{job}".encode())
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def wait_job_lock(session: Session, job: str) -> None:
    """Wait for `job`'s lock (held to the end of this transaction); SQLite needs none."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"policywatch:{job}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def sqlite_daemon_lock(db_url: str) -> IO[str] | None:
    """Refuse a second daemon on the same SQLite file; keep the returned handle open."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database + ".daemon.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise AlreadyRunningError(
            f"another policywatch daemon ({holder}) is already running on {url.database}; "
            "one daemon per SQLite database (use PostgreSQL to run several workers)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle
