"""Evidence records (section 8 "documented before removal", section 4) and legal holds.

The record is built from a real poll: a comment carrying markup that also fires
the section 9 rule, alerted and sent, then acknowledged.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from monitor import audit
from monitor.db.tables import AuditEntry, Finding, StoredItem
from monitor.evidence import EvidenceError, active_hold, export, hold, release
from monitor.ops_cli import audit_app, evidence_app
from monitor.retention import RetentionSettings, purge
from monitor.service import Service
from tests.conftest import base_config
from tests.test_pipeline import SCENARIO, T0, Clock, event, make_service, write_events

EVIL = event(
    6,
    "central-a",
    "reply",
    "7",
    "<script>alert(1)</script> i want to kill myself",
    author={"id": "u7", "handle": "x", "name": "<b>Evil</b>"},
)


def _urgent_finding(service: Service) -> Finding:
    with service.sessions() as s:
        item = s.scalars(select(StoredItem).where(StoredItem.external_id == "7")).one()
        return s.scalars(select(Finding).where(Finding.item_id == item.id)).first()  # type: ignore[return-value]


def _polled(tmp_path: Path, db_url: str) -> tuple[Service, Clock, Finding]:
    write_events(tmp_path / "events.jsonl", [*SCENARIO, EVIL])
    clock = Clock(T0 + timedelta(hours=1))
    service = make_service(tmp_path, db_url, clock)
    service.poll_once(force=True)
    finding = _urgent_finding(service)
    clock.now += timedelta(minutes=4)
    service.acknowledge(finding.id, "principal@central.example")
    return service, clock, finding


def test_export_documents_item_payload_and_every_action(tmp_path: Path, db_url: str) -> None:
    service, clock, finding = _polled(tmp_path, db_url)
    out = tmp_path / "evidence"
    with service.sessions.begin() as s:
        json_path, html_path = export(s, finding.id, out, now=clock())
    with service.sessions() as s:
        item = s.get_one(StoredItem, finding.item_id)
        raw, first_seen = item.raw, item.first_seen_at
        assert audit.verify(s) == []
        exported = s.scalars(select(AuditEntry).where(AuditEntry.kind == "evidence_exported")).one()
    service.close()

    record = json.loads(json_path.read_text(encoding="utf-8"))
    subject = record["subject"]
    assert subject["text"] == EVIL["text"] and subject["url"] == EVIL["url"]
    assert subject["author"] == {"id": "u7", "handle": "x", "name": "<b>Evil</b>"}
    assert subject["captured_at"].startswith(first_seen.isoformat()[:19])
    assert subject["raw"] == raw
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert subject["raw_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert finding.id in [f["id"] for f in record["findings"]]
    assert all(f["section"] for f in record["findings"])
    kinds = [a["kind"] for a in record["actions"]]
    assert {"finding", "notification", "notification_sent", "acknowledged"} <= set(kinds)
    sent = [n for n in record["notifications"] if n["recipient"] == "principal@central.example"]
    assert sent and sent[0]["sent_at"] is not None
    assert record["audit_chain_ok"] is True
    # the audit log names the exact file that was produced
    assert exported.data["json_sha256"] == hashlib.sha256(json_path.read_bytes()).hexdigest()

    html = html_path.read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>Evil" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert subject["raw_sha256"] in html and "notification_sent" in html


def test_hold_keeps_finding_and_item_past_retention(tmp_path: Path, db_url: str) -> None:
    service, _clock, finding = _polled(tmp_path, db_url)
    later = T0 + timedelta(days=400)
    with service.sessions.begin() as s:
        hold(s, finding.id, "Legal@Board.example", "police request 2026-118", now=T0)
        assert (
            hold(s, finding.id, "x@board.example", "again", now=T0).held_by == "legal@board.example"
        )
        counts = purge(s, RetentionSettings(), later)
    assert counts["findings"] > 0  # the other findings went
    with service.sessions() as s:
        kept = s.get(Finding, finding.id)
        assert kept is not None and s.get(StoredItem, kept.item_id) is not None
        assert {f.id for f in s.scalars(select(Finding))} == {
            f.id for f in s.scalars(select(Finding).where(Finding.item_id == kept.item_id))
        }
    with service.sessions.begin() as s:
        release(s, finding.id, "legal@board.example", now=later)
        assert active_hold(s, finding.id) is None
        with pytest.raises(EvidenceError):
            release(s, finding.id, now=later)
        purge(s, RetentionSettings(), later)
    with service.sessions() as s:
        assert s.get(Finding, finding.id) is None
        kinds = [e.kind for e in s.scalars(select(AuditEntry))]
        assert {"hold", "release", "retention_purge"} <= set(kinds)
        assert audit.verify(s) == []  # audit entries outlive the purged findings
    service.close()


def _toml(data: dict[str, Any]) -> str:
    """Just enough TOML for base_config(): scalars, tables and arrays of tables."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{a} = {value(b)}" for a, b in v.items())]
        elif isinstance(v, list):
            for row in v:
                lines += [f"[[{k}]]", *(f"{a} = {value(b)}" for a, b in row.items())]
    return "\n".join(lines) + "\n"


def test_cli_export_hold_release_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor import cli

    db_url = f"sqlite:///{tmp_path / 'pw.db'}"
    service, _clock, finding = _polled(tmp_path, db_url)
    service.close()
    config_path = tmp_path / "policywatch.toml"
    config_path.write_text(_toml(base_config(tmp_path, db_url=db_url)), encoding="utf-8")
    monkeypatch.setattr(cli.state, "config_path", config_path)
    app = typer.Typer()
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(audit_app, name="audit")
    runner = CliRunner()

    result = runner.invoke(
        app, ["evidence", "export", str(finding.id), "--out", str(tmp_path / "ev")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ev" / f"finding-{finding.id}.html").exists()
    result = runner.invoke(
        app,
        ["evidence", "hold", str(finding.id), "--by", "legal@board.example", "--note", "case 7"],
    )
    assert result.exit_code == 0 and "legal hold" in result.output
    assert runner.invoke(app, ["evidence", "release", str(finding.id)]).exit_code == 0
    assert runner.invoke(app, ["evidence", "release", str(finding.id)]).exit_code == 1
    assert runner.invoke(app, ["evidence", "export", "999999"]).exit_code == 1
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0 and "chain intact" in result.output

    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET subject = 'finding:0' WHERE id = 1"))
    engine.dispose()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "entry 1" in result.output
