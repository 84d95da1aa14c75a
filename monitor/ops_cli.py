"""Operations commands, mounted on `policywatch` by monitor.cli.

`evidence export|hold|release` (section 8: document before removal; section 4:
evidence in proceedings), `audit verify`, and the bodies of `status` and `doctor`.
The configuration comes from the global `--config` option (`monitor.cli.state`),
read lazily inside each command so importing this module does not import the CLI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from monitor.config import Config

if TYPE_CHECKING:
    from monitor.service import Service

evidence_app = typer.Typer(
    help="Evidence records and legal holds for findings.", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)


def _load_config() -> Config:
    from monitor.cli import _config  # lazy: monitor.cli mounts these apps

    return _config()


@contextmanager
def _transaction(config: Config) -> Iterator[Session]:
    """One committed transaction on the configured database (schema checked first)."""
    from monitor.db.session import SchemaError, ensure_schema, make_engine, session_factory

    engine = make_engine(config.database.url)
    try:
        try:
            ensure_schema(engine)
        except SchemaError as exc:
            err.print(str(exc), markup=False)
            raise typer.Exit(2) from None
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


@evidence_app.command("export")
def evidence_export(
    finding_id: Annotated[int, typer.Argument(help="Finding id (see `findings list`).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory (default: <state_dir>/evidence).")
    ] = None,
) -> None:
    """Write the finding's documentation record as JSON and printable HTML."""
    from monitor.evidence import EvidenceError, export

    config = _load_config()
    out_dir = out or Path(config.state_dir) / "evidence"
    try:
        with _transaction(config) as session:
            json_path, html_path = export(session, finding_id, out_dir)
    except EvidenceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    console.print(f"{json_path}\n{html_path}", markup=False, highlight=False)


@evidence_app.command("hold")
def evidence_hold(
    finding_id: Annotated[int, typer.Argument(help="Finding id.")],
    by: Annotated[str, typer.Option("--by", help="Who asked for the hold (email).")],
    note: Annotated[str, typer.Option("--note", help="Why, e.g. the request reference.")],
) -> None:
    """Keep a finding and its item past retention until released."""
    from monitor.evidence import EvidenceError, hold

    config = _load_config()
    try:
        with _transaction(config) as session:
            hold(session, finding_id, by, note)
    except EvidenceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    console.print(f"finding {finding_id} is on legal hold", markup=False)


@evidence_app.command("release")
def evidence_release(
    finding_id: Annotated[int, typer.Argument(help="Finding id.")],
    by: Annotated[str | None, typer.Option("--by", help="Who released it (email).")] = None,
) -> None:
    """Release a legal hold: retention applies again."""
    from monitor.evidence import EvidenceError, release

    config = _load_config()
    try:
        with _transaction(config) as session:
            release(session, finding_id, by)
    except EvidenceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    console.print(f"finding {finding_id} released from legal hold", markup=False)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 if any entry was edited or deleted."""
    from sqlalchemy import func, select

    from monitor.audit import verify
    from monitor.db.tables import AuditEntry

    config = _load_config()
    with _transaction(config) as session:
        problems = verify(session)
        count = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False)
        raise typer.Exit(1)
    console.print(f"audit log OK: {count} entries, chain intact")


def status_command(service: Service, as_json: bool) -> None:
    """Body of `policywatch status [--json]`."""
    from monitor.status import collect

    data = collect(service)
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("account", "platform", "health", "last success", "cursor age", "next poll")
    for a in data["accounts"]:
        health = a["health"] + (f" ({a['degraded_reason']})" if a["degraded_reason"] else "")
        cells = [
            a["id"],
            a["platform"],
            health,
            _short(a["last_success_at"]),
            _age(a["cursor_age_seconds"]),
            _short(a["next_poll_due"]) if a["enabled"] else "disabled",
        ]
        table.add_row(*map(escape, cells))  # reasons can hold brackets: not markup
    console.print(table)
    box = data["outbox"]
    console.print(
        f"outbox: {box['depth']} pending, {box['failed']} failed"
        + (f", oldest since {_short(box['oldest_unsent_at'])}" if box["oldest_unsent_at"] else ""),
        markup=False,
    )
    for d in data["digests"]:
        console.print(
            f"next digest {d['school']}: {_short(d['next_at'])}" + (" (due)" if d["due"] else ""),
            markup=False,
        )
    console.print(f"workers: {len(data['workers'])}", markup=False)


def doctor_command(config: Config) -> int:
    """Body of `policywatch doctor`: print every check; 0 when all pass, else 1."""
    from monitor.doctor import run_checks

    checks = run_checks(config)
    table = Table("check", "result", "detail")
    for check in checks:
        table.add_row(escape(check.check), "ok" if check.ok else "FAIL", escape(check.detail))
    console.print(table)
    return 0 if all(c.ok for c in checks) else 1


def _short(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
