"""Evidence records and legal holds for findings.

Section 8 asks that inappropriate posts be documented before they are removed, and
section 4 reminds that social media can be evidence in criminal and civil
proceedings.  `export` writes one finding's documentation record twice: JSON for
systems and a printable HTML page for people.  It carries the item as captured
(text, author, URL, capture time), the raw platform payload with its SHA-256, every
finding on the same item and every action taken, read from the hash-chained audit
log.  `hold` keeps a finding and its item past retention until `release`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.db.tables import Finding, LegalHold, Notification, NotificationFinding
from monitor.timeutil import as_utc, utcnow

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "web_templates"),
    autoescape=True,  # every value comes from the platform or the database
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


class EvidenceError(LookupError):
    """No such finding, or a hold that cannot be placed or released; says which."""


def payload_sha256(raw: Any) -> str:
    """SHA-256 over the canonical JSON of a raw payload, as stated in the record."""
    return hashlib.sha256(audit.canonical_json(raw).encode("utf-8")).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def evidence_record(session: Session, finding_id: int, now: datetime) -> dict[str, Any]:
    """The documentation record of a finding's subject, as a JSON-ready dict."""
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise EvidenceError(f"no finding with id {finding_id}")
    subject: dict[str, Any]
    if finding.item is not None:
        item = finding.item
        related = select(Finding).where(Finding.item_id == item.id)
        subject = {
            "type": "item",
            "id": item.id,
            "platform": item.platform,
            "account": item.account_id,
            "external_id": item.external_id,
            "kind": item.kind,
            "parent_external_id": item.parent_external_id,
            "author": {
                "id": item.author_id,
                "handle": item.author_handle,
                "name": item.author_name,
            },
            "text": item.text,
            "url": item.url,
            "created_at": _iso(item.created_at),
            "captured_at": _iso(item.first_seen_at),
            "content_hash": item.content_hash,
            "raw": item.raw,
            "raw_sha256": payload_sha256(item.raw),
        }
    elif finding.snapshot is not None:
        snap = finding.snapshot
        related = select(Finding).where(Finding.snapshot_id == snap.id)
        subject = {
            "type": "settings_snapshot",
            "id": snap.id,
            "account": snap.account_id,
            "captured_at": _iso(snap.taken_at),
            "audience": snap.audience,
            "fields": snap.fields,
            "role_holders": snap.role_holders,
            "raw": snap.raw,
            "raw_sha256": payload_sha256(snap.raw),
        }
    else:
        related = select(Finding).where(Finding.id == finding.id)
        subject = {"type": finding.subject_kind, "summary": finding.summary}
    findings = list(session.scalars(related.order_by(Finding.id)))
    ids = [f.id for f in findings]
    holds = session.scalars(
        select(LegalHold).where(LegalHold.finding_id.in_(ids)).order_by(LegalHold.id)
    )
    return {
        "finding_id": finding.id,
        "school": finding.school_id,
        "exported_at": as_utc(now).isoformat(),
        "subject": subject,
        "findings": [_finding(f) for f in findings],
        "notifications": _notifications(session, ids),
        "actions": [_action(e) for e in audit.entries_for(session, ids)],
        "holds": [_hold(h) for h in holds],
        "audit_chain_ok": not audit.verify(session),
    }


def export(
    session: Session, finding_id: int, out_dir: Path, *, now: datetime | None = None
) -> tuple[Path, Path]:
    """Write `finding-<id>.json` and `.html` into `out_dir`; return both paths.

    Records an `evidence_exported` audit entry with the JSON file's SHA-256, so a
    copy produced later can be matched to this export; the caller commits.
    """
    now = now or utcnow()
    data = evidence_record(session, finding_id, now)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"finding-{finding_id}.json"
    html_path = out_dir / f"finding-{finding_id}.html"
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    json_path.write_text(text, encoding="utf-8")
    pretty_raw = json.dumps(data["subject"].get("raw"), ensure_ascii=False, indent=2)
    html = _TEMPLATES.get_template("evidence.html").render(record=data, raw_json=pretty_raw)
    html_path.write_text(html, encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    audit.record(
        session, "evidence_exported", f"finding:{finding_id}", {"json_sha256": digest}, now
    )
    return json_path, html_path


def active_hold(session: Session, finding_id: int) -> LegalHold | None:
    return session.scalars(
        select(LegalHold).where(LegalHold.finding_id == finding_id, LegalHold.released_at.is_(None))
    ).first()


def hold(
    session: Session, finding_id: int, by: str, note: str, *, now: datetime | None = None
) -> LegalHold:
    """Keep a finding (and its item) past retention, e.g. for a police request."""
    now = now or utcnow()
    if session.get(Finding, finding_id) is None:
        raise EvidenceError(f"no finding with id {finding_id}")
    existing = active_hold(session, finding_id)
    if existing is not None:
        return existing
    row = LegalHold(finding_id=finding_id, held_at=now, held_by=by.lower(), note=note[:2000])
    session.add(row)
    session.flush()
    audit.record(session, "hold", f"finding:{finding_id}", {"by": by.lower()}, now)
    return row


def release(
    session: Session, finding_id: int, by: str | None = None, *, now: datetime | None = None
) -> LegalHold:
    """End the hold: retention applies again from the finding's own age."""
    now = now or utcnow()
    row = active_hold(session, finding_id)
    if row is None:
        raise EvidenceError(f"finding {finding_id} is not on hold")
    row.released_at, row.released_by = now, (by or "").lower() or None
    audit.record(session, "release", f"finding:{finding_id}", {"by": row.released_by}, now)
    return row


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "rule": f.rule_id,
        "section": f.section,
        "category": f.category,
        "severity": f.severity,
        "detector": f.detector,
        "score": f.score,
        "message": f.message,
        "action": f.action,
        "evidence_text": f.evidence_text,
        "created_at": _iso(f.created_at),
        "status": f.status,
        "acknowledged_at": _iso(f.acknowledged_at),
        "acknowledged_by": f.acknowledged_by,
        "resolved_at": _iso(f.resolved_at),
        "resolution": f.resolution,
        "resolution_note": f.resolution_note,
    }


def _notifications(session: Session, finding_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Notification)
        .join(NotificationFinding, NotificationFinding.notification_id == Notification.id)
        .where(NotificationFinding.finding_id.in_(finding_ids))
        .distinct()
        .order_by(Notification.id)
    )
    return [
        {
            "id": n.id,
            "kind": n.kind,
            "recipient": n.recipient,
            "escalation_step": n.escalation_step,
            "status": n.status,
            "created_at": _iso(n.created_at),
            "sent_at": _iso(n.sent_at),
            "message_id": n.message_id,
        }
        for n in rows
    ]


def _action(entry: Any) -> dict[str, Any]:
    return {
        "audit_id": entry.id,
        "at": _iso(entry.at),
        "kind": entry.kind,
        "subject": entry.subject,
        "data": entry.data,
        "hash": entry.hash,
    }


def _hold(h: LegalHold) -> dict[str, Any]:
    return {
        "finding_id": h.finding_id,
        "held_at": _iso(h.held_at),
        "held_by": h.held_by,
        "note": h.note,
        "released_at": _iso(h.released_at),
        "released_by": h.released_by,
    }
