"""`policywatch`: the command line for IT and for the demo.

Every command loads and validates the configuration first; a configuration error
prints what is wrong and where, exits 2 and writes nothing.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from monitor.actions import ActionError
from monitor.config import Config, ConfigError, load_config
from monitor.db.session import SchemaError, make_engine, upgrade
from monitor.db.tables import Account, Finding
from monitor.logsetup import configure_logging
from monitor.ops_cli import audit_app, doctor_command, evidence_app, status_command
from monitor.timeutil import as_utc

if TYPE_CHECKING:  # imported lazily at run time: `policywatch --help` stays fast
    from monitor.engine import CycleReport
    from monitor.outbox import SendReport
    from monitor.service import Service

app = typer.Typer(
    help="Watches a school board's social media accounts the way Procedure 1.2.1 requires.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
findings_app = typer.Typer(help="List and manage findings.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(findings_app, name="findings")
app.add_typer(db_app, name="db")
app.add_typer(evidence_app, name="evidence", help="Documentation records and legal holds.")
app.add_typer(audit_app, name="audit", help="The tamper-evident audit log.")

try:  # the rules commands live with the rule engine
    from monitor.rules.cli import app as rules_app

    app.add_typer(rules_app, name="rules")
except ImportError:  # pragma: no cover - rule engine without a CLI
    pass

console = Console(soft_wrap=True)  # paths and commands must stay copy-pasteable
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config (default: $POLICYWATCH_CONFIG, then config/policywatch.toml)",
        show_default=False,
    ),
]


class _State:
    config_path: Path | None = None
    verbose: bool = False


state = _State()


@app.callback()
def _main(
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    state.config_path = config
    state.verbose = verbose


def _config(path: Path | None = None) -> Config:
    try:
        config = load_config(path or state.config_path)
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    configure_logging(config, verbose=state.verbose)
    return config


def _service(config: Config) -> Service:
    from monitor.rules.pack import PackError
    from monitor.rules.protected import ProtectedListError
    from monitor.service import Service

    try:
        return Service(config)
    except (SchemaError, PackError, ProtectedListError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config() -> None:
    """Validate the configuration and print what it declares."""
    config = _config()
    console.print(
        f"{config.source}: OK — {len(config.schools)} schools, {len(config.accounts)} accounts",
        markup=False,
    )


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Accounts' health and cursors, the outbox, next digests and live workers."""
    service = _service(_config())
    try:
        status_command(service, as_json)
    finally:
        service.close()


@app.command()
def doctor() -> None:
    """Check config, database, mail server, credentials and clock; non-zero on failure."""
    raise typer.Exit(doctor_command(_config()))


@app.command()
def connectors() -> None:
    """List the platforms this installation can monitor."""
    from connectors.base import registered_platforms

    table = Table("platform", "description")
    for name, cls in registered_platforms().items():
        table.add_row(name, cls.help())
    console.print(table)


@app.command()
def poll(
    once: Annotated[
        bool, typer.Option("--once", help="Poll every account once now and exit.")
    ] = False,
) -> None:
    """Poll the accounts, store what is new, evaluate the rules and send urgent alerts."""
    if not once:
        err.print("use `policywatch poll --once`, or `policywatch run` for the daemon")
        raise typer.Exit(2)
    service = _service(_config())
    try:
        report, sent = service.poll_once(force=True)
    finally:
        service.close()
    _print_cycle(report, sent)


@app.command()
def digest(
    now: Annotated[bool, typer.Option("--now", help="Queue and send digests now.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print, do not queue or send.")
    ] = False,
    to: Annotated[str | None, typer.Option("--to", help="Only this recipient.")] = None,
) -> None:
    """Send the daily digests to account owners (or print them with --dry-run)."""
    if not (now or dry_run):
        err.print("use --now to send digests now, or --dry-run to print them")
        raise typer.Exit(2)
    service = _service(_config())
    try:
        if dry_run:
            _print_digest_preview(service, to)
            return
        sent = service.digest_now(to.lower() if to else None)
    finally:
        service.close()
    for kind, recipient, path in sent.sent:
        console.print(f"sent {kind} to {recipient}" + (f" ({path})" if path else ""), markup=False)
    for kind, recipient, error in sent.failed:
        err.print(f"not sent: {kind} to {recipient}: {error}", markup=False)
    if not sent.sent and not sent.failed:
        console.print("nothing to send")


def _print_digest_preview(service: Service, to: str | None) -> None:
    from monitor.digest import owners_of
    from monitor.views import digest_view
    from reports.render import render_digest

    shown = 0
    with service.sessions() as session:
        for school in service.config.schools:
            for owner in owners_of(service.config, school):
                if to and owner != to.lower():
                    continue
                findings = service.digests.unsent_findings(session, school, owner)
                if not findings and not service.config.digest.send_empty_digest:
                    continue
                view = digest_view(
                    session, service.config, owner, school.id, findings, service.clock()
                )
                message = render_digest(view)
                console.print(f"To: {owner}\nSubject: {message.subject}\n", markup=False)
                console.print(message.text, markup=False, highlight=False)
                shown += 1
    if not shown:
        console.print("no digest would be sent")


@app.command()
def run() -> None:
    """Run the monitoring daemon (poll, send alerts, daily digests) until SIGTERM."""
    from monitor.locks import AlreadyRunningError
    from monitor.scheduler import Daemon

    try:
        Daemon(_service(_config()), state.config_path).run()
    except AlreadyRunningError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None


@findings_app.command("list")
def findings_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one finding each.")] = False,
    limit: Annotated[int, typer.Option(help="Most recent N.")] = 200,
) -> None:
    """List recorded findings, most recent first."""
    config = _config()
    service = _service(config)
    with service.sessions() as session:
        rows = list(session.scalars(select(Finding).order_by(Finding.id.desc()).limit(limit)))
        records = [_finding_record(f) for f in rows]
    service.close()
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    table = Table("id", "created", "account", "section", "severity", "rule", "status", "summary")
    for r in records:
        table.add_row(
            str(r["id"]),
            r["created_at"][:16],
            r["account"],
            r["section"],
            r["severity"],
            r["rule"],
            r["status"],
            r["summary"][:60],
        )
    console.print(table)


def _finding_record(f: Finding) -> dict[str, Any]:
    from reports.safety import excerpt

    text = f.item.text if f.item is not None else f.summary
    return {
        "id": f.id,
        "created_at": as_utc(f.created_at).isoformat(),
        "school": f.school_id,
        "account": f.account_id,
        "section": f.section,
        "severity": f.severity,
        "category": f.category,
        "rule": f.rule_id,
        "score": f.score,
        "status": f.status,
        "summary": f.summary,
        "excerpt": excerpt(text, f.evidence_start or 0, f.evidence_end or 0),
        "url": f.item.url if f.item is not None else None,
    }


@findings_app.command("ack")
def findings_ack(
    finding_id: Annotated[int, typer.Argument(help="Finding id (see `findings list`).")],
    by: Annotated[str, typer.Option("--by", help="Who is handling it (email).")],
) -> None:
    """Acknowledge an urgent finding: stops its escalation."""
    service = _service(_config())
    try:
        changed = service.acknowledge(finding_id, by)
    except ActionError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    finally:
        service.close()
    if changed:
        console.print(
            f"acknowledged findings {', '.join(map(str, changed))} for {by}", markup=False
        )
    else:
        console.print(f"finding {finding_id} was already acknowledged", markup=False)


@findings_app.command("resolve")
def findings_resolve(
    finding_id: Annotated[int, typer.Argument(help="Finding id.")],
    action: Annotated[
        str, typer.Option("--action", help="removed | hidden | reported | no-action")
    ],
    note: Annotated[str, typer.Option("--note", help="What was done and why.")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who resolved it (email).")] = None,
) -> None:
    """Record what was done about a finding (section 8: document, then remove)."""
    service = _service(_config())
    try:
        service.resolve(finding_id, action, note, by)
    except ActionError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    finally:
        service.close()
    console.print(f"finding {finding_id} resolved: {action}", markup=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (needed once per release on PostgreSQL)."""
    config = _config()
    engine = make_engine(config.database.url)
    upgrade(engine)
    engine.dispose()
    console.print("database is at the latest schema")


@app.command()
def demo(
    config_path: Annotated[Path, typer.Option("--demo-config", help="Demo config.")] = Path(
        "config/demo.toml"
    ),
) -> None:
    """Run the bundled two-school scenario: poll, alert, digest, and print a summary."""
    config = _config(state.config_path or config_path)
    service = _service(config)
    try:
        report, sent = service.poll_once(force=True)
        digests = service.digest_now()
        with service.sessions() as session:
            accounts = list(session.scalars(select(Account).order_by(Account.id)))
            health = {a.id: a.health for a in accounts}
            open_urgent = list(
                session.scalars(
                    select(Finding).where(Finding.severity == "urgent", Finding.status == "open")
                )
            )
            principals = {f.id: config.school(f.school_id).principal for f in open_urgent}
    finally:
        service.close()
    _print_cycle(report, sent, health)
    for kind, recipient, path in digests.sent:
        console.print(f"  {kind:7} → {recipient}: {path or 'sent'}", markup=False)
    total = len(sent.sent) + len(digests.sent)
    console.print(
        f"emails written: {total}" + ("" if total else " (nothing new since the last run)")
    )
    if principals:
        console.print(
            f"\nUrgent alerts waiting for acknowledgement (escalated after "
            f"{config.alerts.escalate_after}). Each email's link opens {config.web.base_url}/ack/… "
            f"while `policywatch --config {config.source} run` serves it; or acknowledge here:",
            markup=False,
        )
        for finding_id, principal in sorted(principals.items()):
            command = f"policywatch --config {config.source} findings ack {finding_id}"
            console.print(f"  {command} --by {principal}", markup=False)


def _print_cycle(
    report: CycleReport, sent: SendReport, health: dict[str, str] | None = None
) -> None:
    table = Table("account", "platform", "new items", "findings", "status", title="Poll")
    by_section: Counter[tuple[str, str]] = Counter()
    for o in report.outcomes:
        by_section.update(o.findings)
        status = o.error or (health or {}).get(o.account_id, "ok")
        table.add_row(o.account_id, o.platform, str(o.new_items), str(len(o.findings)), status)
    console.print(table)
    console.print(f"accounts polled: {len(report.outcomes)}, new items: {report.new_items}")
    if by_section:
        t = Table("section", "severity", "findings", title="Findings by section")
        for (section, severity), n in sorted(by_section.items()):
            t.add_row(section, severity, str(n))
        console.print(t)
    for kind, recipient, path in sent.sent:
        console.print(f"  {kind:7} → {recipient}: {path or 'sent'}", markup=False)
    for kind, recipient, error in sent.failed:
        err.print(f"  not sent: {kind} → {recipient}: {error}", markup=False)


def main() -> None:
    app()
