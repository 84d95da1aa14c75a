"""`policywatch rules ...`: lint packs, try a text, list detectors, shadow-run history.

Mounted by the main CLI as `policywatch rules`; usable alone as `python -m
monitor.rules.cli`.  These commands never touch the database or send mail, so a board
can edit and test its packs on a laptop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor.model import Subject, SubjectKind
from monitor.rules.detectors import registered_detectors
from monitor.rules.engine import RuleEngine
from monitor.rules.examples import run_examples
from monitor.rules.pack import SHIPPED_PACKS, PackError, RulePack, load_pack, load_shipped_pack

app = typer.Typer(help="Rule packs: lint, try a text, list detectors, shadow-run history.",
                  no_args_is_help=True)
console = Console()

PackOption = Annotated[
    list[Path] | None,
    typer.Option("--pack", "-p", help="A board pack to add after the shipped ones."),
]


def _packs(extra: list[Path] | None) -> list[RulePack]:
    packs = [load_shipped_pack(n) for n in SHIPPED_PACKS]
    packs += [load_pack(p) for p in extra or []]
    return packs


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]", markup=True, highlight=False)
    return typer.Exit(1)


@app.command()
def lint(
    packs: Annotated[list[Path] | None, typer.Argument(help="Board packs to check.")] = None,
) -> None:
    """Validate the shipped packs and PACKs, and run every rule's examples."""
    problems: list[str] = []
    loaded: list[RulePack] = []
    for name in SHIPPED_PACKS:
        try:
            loaded.append(load_shipped_pack(name))
        except PackError as exc:
            problems.append(str(exc))
    for path in packs or []:
        try:
            loaded.append(load_pack(path))
        except PackError as exc:
            problems.append(str(exc))
    examples = 0
    for pack in loaded:
        examples += sum(len(r.examples.match) + len(r.examples.no_match) for r in pack.rules)
        problems += [str(f) for f in run_examples(pack)]
    for problem in problems:
        console.print(problem, markup=False, highlight=False)
    rules = sum(len(p.rules) for p in loaded)
    if problems:
        raise _fail(f"{len(problems)} problem(s) in {len(loaded)} pack(s)")
    console.print(f"ok: {len(loaded)} packs, {rules} rules, {examples} examples pass",
                  markup=False, highlight=False)


@app.command("test")
def test_text(
    text: Annotated[str, typer.Argument(help="The comment to try.")],
    lang: Annotated[str, typer.Option("--lang", help="Subject language (en, fr).")] = "en",
    kind: Annotated[
        SubjectKind, typer.Option("--kind", help="Subject kind.")
    ] = SubjectKind.COMMENT,
    pack: PackOption = None,
) -> None:
    """Show every rule that fires on TEXT, with section, severity, score and evidence."""
    try:
        engine = RuleEngine(_packs(pack))
    except PackError as exc:
        raise _fail(str(exc)) from None
    subject = Subject(kind=kind, account_id="cli", school_id="cli", language=lang, text=text,
                      account_kind="school")
    detections = engine.evaluate(subject)
    if not detections:
        console.print("no rule fires", markup=False, highlight=False)
        return
    table = Table(title=f"{len(detections)} rule(s) fire")
    for column in ("rule", "section", "severity", "category", "score", "evidence"):
        table.add_column(column)
    for d in sorted(detections, key=lambda d: (-d.severity.rank, d.rule_id)):
        style = "bold red" if d.severity.value == "urgent" else ""
        table.add_row(d.rule_id, d.section, d.severity.value, d.category, f"{d.score:.2f}",
                      d.evidence(text), style=style)
    console.print(table)


@app.command()
def detectors() -> None:
    """List the detectors rules can use, with their help."""
    table = Table(title="detectors")
    table.add_column("type")
    table.add_column("help")
    table.add_column("params")
    for name, cls in registered_detectors().items():
        params = ", ".join(cls.Params.model_fields) or "-"
        table.add_row(name, cls.help(), params)
    console.print(table)


@app.command("shadow")
def shadow_cmd(
    replay: Annotated[Path, typer.Option("--replay", help="JSON Lines history (replay format).",
                                         exists=True, dir_okay=False)],
    lang: Annotated[str, typer.Option("--lang", help="Language of the history.")] = "en",
    pack: PackOption = None,
) -> None:
    """Count what the packs would have found in REPLAY, per ISO week, section and severity."""
    from monitor.rules.shadow import shadow

    try:
        engine = RuleEngine(_packs(pack))
    except PackError as exc:
        raise _fail(str(exc)) from None
    report = shadow(engine, replay, lang)
    table = Table(title=f"shadow run: {report.subjects} subjects from {replay.name}")
    for column in ("week", "section", "severity", "findings"):
        table.add_column(column, justify="right" if column == "findings" else "left")
    for (week, section, severity), count in sorted(report.by_week.items()):
        table.add_row(week, section, severity, str(count))
    console.print(table)
    rules = Table(title="findings by rule")
    rules.add_column("rule")
    rules.add_column("findings", justify="right")
    for rule_id, count in report.by_rule.most_common():
        rules.add_row(rule_id, str(count))
    console.print(rules)
    for line in report.skipped[:20]:
        console.print(f"skipped {line}", markup=False, highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
