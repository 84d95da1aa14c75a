"""`policywatch rules` commands, through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from monitor.rules.cli import app

runner = CliRunner()


def test_acceptance_je_veux_mourir() -> None:
    result = runner.invoke(app, ["test", "je veux mourir", "--lang", "fr"])
    assert result.exit_code == 0, result.output
    assert "crisis.self-harm.fr" in result.output
    assert "9.0" in result.output and "urgent" in result.output
    assert "je veux mourir" in result.output


def test_acceptance_homework_is_not_urgent() -> None:
    result = runner.invoke(app, ["test", "this homework is killing me"])
    assert result.exit_code == 0, result.output
    assert "urgent" not in result.output


def test_test_shows_original_span_and_kind() -> None:
    result = runner.invoke(app, ["test", "Call me: 705-555-0143", "--kind", "own_post"])
    assert result.exit_code == 0
    assert "privacy.phone" in result.output and "705-555-0143" in result.output


def test_lint_shipped_and_board_packs(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["lint"])
    assert ok.exit_code == 0, ok.output
    assert "examples pass" in ok.output
    board = tmp_path / "board.yaml"
    board.write_text(
        "pack: board\nrules:\n  - id: board.x\n    section: '8.0'\n    category: spam\n"
        "    severity: digest\n    applies_to: [comment]\n"
        "    detector: {type: phrases, params: {patterns: ['\\bbuy now\\b']}}\n"
        "    message: m\n    action: a\n    examples: {match: ['please buy later']}\n",
        encoding="utf-8")
    bad = runner.invoke(app, ["lint", str(board)])
    assert bad.exit_code == 1
    assert "board.x" in bad.output and "please buy later" in bad.output
    board.write_text("pack: board\nrules:\n  - id: board.x\n    sectoin: '8.0'\n",
                     encoding="utf-8")
    typo = runner.invoke(app, ["lint", str(board)])
    assert typo.exit_code == 1 and "sectoin" in typo.output and "board.x" in typo.output


def test_detectors_lists_help() -> None:
    result = runner.invoke(app, ["detectors"])
    assert result.exit_code == 0
    for name in ("phrases", "profanity", "phone_number", "protected_student", "targeted"):
        assert name in result.output


def test_shadow_counts_by_week_section_severity(tmp_path: Path) -> None:
    events = [
        {"at": "2026-11-16T10:00:00Z", "type": "comment", "id": "1",
         "author": {"id": "a"}, "text": "i want to kill myself"},
        {"at": "2026-11-17T10:00:00Z", "type": "comment", "id": "2",
         "author": {"id": "b"}, "text": "call 705-555-0143"},
        {"at": "2026-11-24T10:00:00Z", "type": "comment", "id": "3",
         "author": {"id": "c"}, "text": "lovely concert"},
        {"at": "2026-11-24T11:00:00Z", "type": "settings", "audience": "private"},
        {"at": "2026-11-25T11:00:00Z", "type": "settings", "audience": "public"},
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["shadow", "--replay", str(path)])
    assert result.exit_code == 0, result.output
    assert "2026-W47" in result.output and "2026-W48" in result.output
    assert "9.0" in result.output and "5.0" in result.output
    assert "privacy.more-public" in result.output
    assert "skipped" in result.output
