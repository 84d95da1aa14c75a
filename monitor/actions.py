"""What people do about findings: acknowledge (stops escalation) and resolve.

An acknowledgement covers the whole incident: every finding carried by the alerts
of the same incident (one comment can fire several urgent rules), so one click is
enough to stop the ladder.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.db.tables import Finding, Notification, NotificationFinding

RESOLUTIONS = ("removed", "hidden", "reported", "no-action")


class ActionError(ValueError):
    """The action cannot be taken; the message says why."""


def incident_findings(session: Session, finding: Finding) -> list[Finding]:
    incidents = set(
        session.scalars(
            select(Notification.incident)
            .join(NotificationFinding, NotificationFinding.notification_id == Notification.id)
            .where(NotificationFinding.finding_id == finding.id, Notification.incident.is_not(None))
        )
    )
    if not incidents:
        return [finding]
    ids = set(
        session.scalars(
            select(NotificationFinding.finding_id)
            .join(Notification, NotificationFinding.notification_id == Notification.id)
            .where(Notification.incident.in_(incidents))
        )
    )
    ids.add(finding.id)
    return list(session.scalars(select(Finding).where(Finding.id.in_(ids)).order_by(Finding.id)))


def acknowledge(session: Session, finding_id: int, by: str, now: datetime) -> list[Finding]:
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise ActionError(f"no finding with id {finding_id}")
    changed = []
    for f in incident_findings(session, finding):
        if f.status == "open":
            f.status, f.acknowledged_at, f.acknowledged_by = "acknowledged", now, by.lower()
            changed.append(f)
    audit.record_acknowledged(session, finding_id, by, changed, now)
    return changed


def resolve(
    session: Session, finding_id: int, action: str, note: str, by: str | None, now: datetime
) -> Finding:
    if action not in RESOLUTIONS:
        raise ActionError(f"unknown action {action!r}; expected one of {', '.join(RESOLUTIONS)}")
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise ActionError(f"no finding with id {finding_id}")
    if finding.acknowledged_at is None:
        finding.acknowledged_at = now
        finding.acknowledged_by = (by or "").lower() or None
    finding.status, finding.resolved_at = "resolved", now
    finding.resolution, finding.resolution_note = action, note[:2000]
    audit.record_resolved(session, finding, by, now)
    return finding
