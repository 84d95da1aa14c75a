"""Alert latency and digest build time (issue: alerts).

1. Latency: from the start of the poll that reads a crisis comment to the moment the
   loopback SMTP server (aiosmtpd) accepts the alert, over 200 alerts; p50 and p99.
   Target: p99 <= 2 s.
2. Digest build: 1,000 owners with 200,000 stored findings: queue, render and write
   every owner's digest (outbox_dir) on SQLite and on PostgreSQL. Target: <= 30 s each.

Run: .venv/bin/python benchmarks/alert_latency.py [--alerts 200] [--owners 1000]
     [--findings 200000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import parse_config
from monitor.db.session import make_engine, upgrade
from monitor.db.tables import Account, Finding, School, StoredItem
from monitor.service import Service
from tests.smtpd_support import CapturingSMTPServer

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def config(tmp: Path, db_url: str, accounts: int, schools: int, **mail: Any) -> dict[str, Any]:
    owners_per_school = accounts // schools
    return {
        "state_dir": str(tmp / "state"),
        "database": {"url": db_url},
        "mail": {"sender": "policywatch@board.example", **mail},
        "schedule": {"timezone": "America/Toronto"},
        "web": {"enabled": False},
        "schools": [
            {
                "id": f"s{s}",
                "name": f"School {s}",
                "principal": f"principal@s{s}.example",
                "staff": [f"owner{s}-{o}@s{s}.example" for o in range(owners_per_school)],
            }
            for s in range(schools)
        ],
        "accounts": [
            {
                "id": f"a{i}",
                "platform": "replay",
                "handle": f"Account{i}",
                "external_id": str(i),
                "school": f"s{i % schools}",
                "kind": "classroom",
                "owners": [f"owner{i % schools}-{i // schools}@s{i % schools}.example"],
                "replay_file": str(tmp / "events.jsonl"),
            }
            for i in range(accounts)
        ],
    }


def latency(alerts: int) -> list[float]:
    with tempfile.TemporaryDirectory() as d, CapturingSMTPServer() as smtp:
        tmp = Path(d)
        events = tmp / "events.jsonl"
        events.write_text("")
        cfg = config(
            tmp,
            f"sqlite:///{tmp / 'pw.db'}",
            accounts=20,
            schools=2,
            host="127.0.0.1",
            port=smtp.port,
            security="none",
        )
        service = Service(parse_config(cfg))
        service.poll_once(force=True)
        arrivals: list[float] = []
        original = smtp._record  # timestamp each accepted message

        def record(*args: Any, **kw: Any) -> None:
            arrivals.append(time.perf_counter())
            original(*args, **kw)

        smtp._record = record  # type: ignore[method-assign]
        out = []
        base = datetime.now(UTC) - timedelta(hours=1)
        for i in range(alerts):
            event = {
                "at": (base + timedelta(seconds=i)).isoformat(),
                "account": f"a{i % 20}",
                "type": "comment",
                "id": f"c{i}",
                "author": {"id": f"u{i}", "name": "Kid"},
                "text": f"i want to kill myself tonight ({i})",
            }
            with events.open("a") as fh:
                fh.write(json.dumps(event) + "\n")
            start = time.perf_counter()
            before = len(arrivals)
            service.poll_once(force=True)
            if len(arrivals) != before + 1:
                raise SystemExit(f"alert {i}: expected one email, got {len(arrivals) - before}")
            out.append(arrivals[-1] - start)
        service.close()
        return out


def seed(db_url: str, tmp: Path, owners: int, findings: int) -> dict[str, Any]:
    cfg = config(tmp, db_url, accounts=owners, schools=10, outbox_dir=str(tmp / "outbox"))
    engine = make_engine(db_url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(School),
            [{"id": s["id"], "name": s["name"], "language": "en"} for s in cfg["schools"]],
        )
        conn.execute(
            sa.insert(Account),
            [
                {
                    "id": a["id"],
                    "school_id": a["school"],
                    "platform": "replay",
                    "handle": a["handle"],
                    "external_id": a["external_id"],
                    "kind": "classroom",
                    "enabled": True,
                    "health": "ok",
                    "last_success_at": now,
                }
                for a in cfg["accounts"]
            ],
        )
        per = findings // owners
        batch_items, batch_findings = [], []
        item_id = 0
        for a in cfg["accounts"]:
            for j in range(per):
                item_id += 1
                batch_items.append(
                    {
                        "id": item_id,
                        "account_id": a["id"],
                        "platform": "replay",
                        "external_id": f"i{j}",
                        "kind": "comment",
                        "author_id": "u",
                        "author_handle": "kid",
                        "author_name": "Kid",
                        "text": f"comment {j} with call me at 705-555-0143 please",
                        "url": f"https://x.com/k/status/{item_id}",
                        "created_at": now,
                        "first_seen_at": now,
                        "raw": {},
                        "content_hash": "0" * 64,
                    }
                )
                batch_findings.append(
                    {
                        "account_id": a["id"],
                        "school_id": a["school"],
                        "item_id": item_id,
                        "dedupe_key": f"item:{item_id}",
                        "subject_kind": "comment",
                        "rule_id": "privacy.phone",
                        "section": "5.0" if j % 2 else "8.0",
                        "category": "personal_information",
                        "severity": "digest",
                        "detector": "phone_number",
                        "score": 1.0,
                        "message": "Personal information: a phone number was posted.",
                        "action": "Document the comment and remove it promptly.",
                        "summary": "comment by Kid",
                        "evidence_start": 23,
                        "evidence_end": 35,
                        "evidence_text": None,
                        "status": "open",
                        "created_at": now,
                    }
                )
            if len(batch_items) >= 20_000:
                conn.execute(sa.insert(StoredItem), batch_items)
                conn.execute(sa.insert(Finding), batch_findings)
                batch_items, batch_findings = [], []
        if batch_items:
            conn.execute(sa.insert(StoredItem), batch_items)
            conn.execute(sa.insert(Finding), batch_findings)
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('items', 'id'), "
                    "(SELECT max(id) FROM items))"
                )
            )
    engine.dispose()
    return cfg


def digest_build(db_url: str, owners: int, findings: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = seed(db_url, tmp, owners, findings)
        service = Service(parse_config(cfg))
        start = time.perf_counter()
        sent = service.digest_now()
        elapsed = time.perf_counter() - start
        service.close()
        digests = sum(1 for kind, _, _ in sent.sent if kind == "digest")
        return elapsed, digests


def pg_schema() -> tuple[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return f"{PG}?options=-csearch_path%3D{schema}", (admin, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--findings", type=int, default=200_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    lat = sorted(latency(args.alerts))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * len(lat)) - 1)]
    print(
        f"alert latency over {len(lat)} alerts (poll start -> SMTP accepted): "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms "
        f"(target p99 <= 2000 ms: {'met' if p99 <= 2 else 'MISSED'})"
    )

    backends = [("sqlite", None)]
    if not args.skip_postgres:
        backends.append(("postgresql", "pg"))
    for name, _ in backends:
        if name == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                elapsed, n = digest_build(f"sqlite:///{d}/bench.db", args.owners, args.findings)
        else:
            url, (admin, schema) = pg_schema()
            try:
                elapsed, n = digest_build(url, args.owners, args.findings)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
        print(
            f"digest build on {name}: {n} digests for {args.owners} owners over "
            f"{args.findings} findings in {elapsed:.1f} s "
            f"(target <= 30 s: {'met' if elapsed <= 30 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
