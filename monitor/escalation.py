"""The escalation ladder: an urgent alert nobody acknowledged goes one rung up.

Rungs: the principal (step 0, sent when the finding was recorded), then each
address of the school's `escalation` list in turn, then all of the board's
`safety_contacts` together.  A rung is climbed when `escalate_after` has passed
since the previous rung was queued and no finding of the incident has been
acknowledged or resolved; it stops the moment anyone acknowledges.  State lives
only in the notifications table, so a restart neither skips nor repeats a rung.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.db.tables import Finding, Notification, NotificationFinding
from monitor.locks import try_job_lock
from monitor.store import Planner, queue_notification
from monitor.timeutil import as_utc
from reports.render import message_id_for

log = logging.getLogger(__name__)


def ladder(config: Config, school_id: str) -> list[list[str]]:
    """Rungs above the principal, each a list of recipients."""
    school = config.school(school_id)
    rungs = [[address] for address in school.escalation]
    if config.board.safety_contacts:
        rungs.append(list(config.board.safety_contacts))
    return rungs


class Escalator(Planner):
    """Climbs the escalation ladder of unacknowledged urgent alerts."""

    def run(self) -> int:
        """Queue the next rung for every unacknowledged incident that is due; return how many."""
        now = self.clock()
        queued = 0
        with self.sessions.begin() as session:
            if not try_job_lock(session, "escalation"):
                return 0  # another worker is climbing the ladders right now
            still_open = (
                select(Notification.incident)
                .join(NotificationFinding, NotificationFinding.notification_id == Notification.id)
                .join(Finding, Finding.id == NotificationFinding.finding_id)
                .where(Notification.kind == "urgent", Finding.status == "open")
                .where(Notification.incident.is_not(None))
                .distinct()
            )
            alerts = session.scalars(
                select(Notification)
                .where(Notification.kind == "urgent", Notification.incident.in_(still_open))
                .order_by(Notification.incident, Notification.escalation_step)
            ).all()
            incidents: dict[str, list[Notification]] = {}
            for note in alerts:
                assert note.incident is not None
                incidents.setdefault(note.incident, []).append(note)
            for incident, notes in incidents.items():
                queued += self._climb(session, incident, notes, now)
        return queued

    def _climb(
        self, session: Session, incident: str, notes: list[Notification], now: datetime
    ) -> int:
        findings = {f.id: f for n in notes for f in n.findings}
        if not findings or any(f.status != "open" for f in findings.values()):
            return 0  # acknowledged or resolved: the ladder stops
        school_id = notes[0].school_id
        rungs = ladder(self.config, school_id)
        top = max(n.escalation_step for n in notes)
        if top >= len(rungs):
            return 0
        last_queued = max(as_utc(n.created_at) for n in notes if n.escalation_step == top)
        if last_queued + self.config.alerts.escalate_after > now:
            return 0
        step = top + 1
        queued = 0
        for recipient in rungs[step - 1]:
            key = f"escalate:{incident}:{step}:{recipient}"
            row = queue_notification(
                session,
                key=key,
                kind="urgent",
                recipient=recipient,
                school_id=school_id,
                findings=list(findings.values()),
                now=now,
                message_id=message_id_for(key, self.mail_domain),
                incident=incident,
                escalation_step=step,
            )
            queued += row is not None
        log.warning(
            "incident %s not acknowledged within %s: escalated to step %d (%s)",
            incident,
            self.config.alerts.escalate_after,
            step,
            ", ".join(rungs[step - 1]),
        )
        return queued
