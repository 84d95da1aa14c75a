"""Daily digests: queue one per account owner per school with what they have not seen.

A finding goes into a recipient's digest once (the notification_findings table
refuses a second time).  The scheduled run for a school's day is claimed through
`job_runs`, so a restart after `digest_time` catches up exactly once, and a second
run the same day sends nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config import Config, SchoolConfig
from monitor.db.tables import Finding, JobRun, NotificationFinding
from monitor.store import Planner, queue_notification
from reports.render import message_id_for

log = logging.getLogger(__name__)

MAILED_SEVERITIES = ("digest", "urgent")


class FindingRef(NamedTuple):
    """A finding known by id only: what linking it to a notification needs."""

    id: int


def owners_of(config: Config, school: SchoolConfig) -> list[str]:
    owners: dict[str, None] = {}
    for account in config.accounts:
        if account.school == school.id:
            for owner in account.owners:
                owners.setdefault(owner)
    return list(owners)


class DigestPlanner(Planner):
    """Queues the owners' digests and the principals' summaries."""

    def queue_due(self) -> int:
        """Queue today's digests for every school whose local digest time has passed."""
        now = self.clock()
        queued = 0
        for school in self.config.schools:
            local = now.astimezone(self.config.school_timezone(school))
            if local.time() < self.config.schedule.digest_time:
                continue
            if not self.claim(f"digest:{school.id}", local.date().isoformat(), now):
                continue
            queued += self.queue_school(school, now)
            if self.config.digest.summary_to_principal:
                queued += self.queue_summary(school, now)
        return queued

    def queue_summary(self, school: SchoolConfig, now: datetime) -> int:
        """The principal's daily school summary (rendered from the database when sent)."""
        local_day = now.astimezone(self.config.school_timezone(school)).date().isoformat()
        key = f"summary:{school.id}:{local_day}"
        with self.sessions.begin() as session:
            row = queue_notification(
                session,
                key=key,
                kind="summary",
                recipient=school.principal,
                school_id=school.id,
                findings=[],
                now=now,
                message_id=message_id_for(key, self.mail_domain),
            )
        return int(row is not None)

    def queue_now(self, recipient: str | None = None) -> int:
        """`digest --now`: queue for every owner (or one) immediately, whatever the time."""
        now = self.clock()
        return sum(self.queue_school(s, now, only=recipient) for s in self.config.schools)

    def queue_school(self, school: SchoolConfig, now: datetime, only: str | None = None) -> int:
        queued = 0
        local_day = now.astimezone(self.config.school_timezone(school)).date().isoformat()
        with self.sessions.begin() as session:
            for owner in owners_of(self.config, school):
                if only is not None and owner != only:
                    continue
                findings = self.unsent_findings(session, school, owner, ids_only=True)
                if findings:
                    key = f"digest:{school.id}:{owner}:{max(f.id for f in findings)}"
                elif self.config.digest.send_empty_digest:
                    key = f"digest:{school.id}:{owner}:empty:{local_day}"
                else:
                    continue
                row = queue_notification(
                    session,
                    key=key,
                    kind="digest",
                    recipient=owner,
                    school_id=school.id,
                    findings=findings,
                    now=now,
                    message_id=message_id_for(key, self.mail_domain),
                )
                queued += row is not None
        return queued

    def unsent_findings(
        self, session: Session, school: SchoolConfig, owner: str, *, ids_only: bool = False
    ) -> list[Any]:
        """The owner's findings not yet in one of their digests; with `ids_only`, light
        rows with just `.id` (queueing a digest needs no more, rendering loads the rest)."""
        accounts = [
            a.id for a in self.config.accounts if a.school == school.id and owner in a.owners
        ]
        if not accounts:
            return []
        already = exists().where(
            NotificationFinding.finding_id == Finding.id,
            NotificationFinding.recipient == owner,
            NotificationFinding.kind == "digest",
        )
        where = (
            Finding.school_id == school.id,
            Finding.account_id.in_(accounts),
            Finding.severity.in_(MAILED_SEVERITIES),
            ~already,
        )
        if ids_only:
            ids = session.scalars(select(Finding.id).where(*where).order_by(Finding.id))
            return [FindingRef(i) for i in ids]
        return list(session.scalars(select(Finding).where(*where).order_by(Finding.id)))

    def claim(self, job: str, key: str, now: datetime) -> bool:
        """Claim a once-only job occurrence; False when it ran (or runs) elsewhere."""
        try:
            with self.sessions.begin() as session:
                if session.get(JobRun, (job, key)) is not None:
                    return False
                session.add(JobRun(job=job, key=key, ran_at=now))
        except IntegrityError:
            return False
        return True
