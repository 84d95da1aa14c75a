"""The outbox: queued notifications are rendered and sent after their transaction commits.

A notification row is written in the same transaction as the findings it covers;
this module sends it later, with retries and backoff while the mail server is
down, and marks it sent.  Its Message-ID is derived from the idempotency key, so a
send repeated after a crash (sent, then killed before marking) is recognisable as
the same message by every mail client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit, metrics
from monitor.acklinks import AckSigner
from monitor.config import Config
from monitor.db.tables import Finding, Notification, NotificationFinding
from monitor.timeutil import as_utc
from monitor.views import digest_view, summary_view, urgent_view
from reports.mailer import Mailer, MailError
from reports.render import render_digest, render_summary, render_urgent
from reports.views import OutgoingMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
MAX_BACKOFF = timedelta(hours=1)


@dataclass
class SendReport:
    sent: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, to, path)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, to, error)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min ... capped at an hour: SMTP outages are usually short."""
    return min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


class Outbox:
    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        mailer: Mailer,
        clock: Callable[[], datetime],
        signer: AckSigner | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.mailer = mailer
        self.clock = clock
        self.signer = signer
        self.template_dir = config.reports.template_dir

    @staticmethod
    def covered(session: Session, note: Notification) -> list[Finding]:
        """The findings a notification carries (items are loaded only for those shown)."""
        return list(
            session.scalars(
                select(Finding)
                .join(NotificationFinding, NotificationFinding.finding_id == Finding.id)
                .where(NotificationFinding.notification_id == note.id)
                .order_by(Finding.id)
            )
        )

    def render(
        self, session: Session, note: Notification, findings: list[Finding] | None = None
    ) -> OutgoingMessage:
        if findings is None:
            findings = self.covered(session, note)
        if note.kind == "summary":
            rendered = render_summary(
                summary_view(
                    session,
                    self.config,
                    note.recipient,
                    note.school_id,
                    as_utc(note.created_at),
                    self.config.schedule.stale_after,
                ),
                template_dir=self.template_dir,
            )
        elif note.kind == "digest":
            rendered = render_digest(
                digest_view(
                    session,
                    self.config,
                    note.recipient,
                    note.school_id,
                    findings,
                    as_utc(note.created_at),
                ),
                template_dir=self.template_dir,
            )
        else:
            ack_url = None
            if self.signer is not None and findings:
                ack_url = self.signer.url(self.config, findings[0].id, note.recipient, self.clock())
            rendered = render_urgent(
                urgent_view(
                    session,
                    self.config,
                    note.recipient,
                    note.school_id,
                    findings,
                    ack_url=ack_url,
                    escalation_step=note.escalation_step,
                ),
                template_dir=self.template_dir,
            )
        return OutgoingMessage(
            to=note.recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=note.message_id,
        )

    def drain(self, *, batch: int = 500) -> SendReport:
        """Send every due notification, urgent ones first, reading the queue in batches."""
        report = SendReport()
        now = self.clock()
        last_id = 0
        for urgent_pass in (True, False):
            last_id = 0
            while True:
                with self.sessions() as session:
                    kind = (
                        Notification.kind == "urgent"
                        if urgent_pass
                        else (Notification.kind != "urgent")
                    )
                    due = list(
                        session.scalars(
                            select(Notification.id)
                            .where(Notification.status == "pending", kind)
                            .where(Notification.next_attempt_at <= now, Notification.id > last_id)
                            .order_by(Notification.id)
                            .limit(batch)
                        )
                    )
                for note_id in due:
                    self._send_one(note_id, report)
                if len(due) < batch:
                    break
                last_id = due[-1]
        with self.sessions() as session:
            metrics.refresh_outbox_depth(session)
        return report

    def _send_one(self, note_id: int, report: SendReport) -> None:
        with self.sessions.begin() as session:
            # SKIP LOCKED: another worker sending this very notification holds its row
            note = session.get(Notification, note_id, with_for_update={"skip_locked": True})
            if note is None or note.status != "pending":
                return
            findings = self.covered(session, note)
            try:
                message = self.render(session, note, findings)
                path = self.mailer.send(message)
            except MailError as exc:
                self._retry_later(note, str(exc))
                report.failed.append((note.kind, note.recipient, str(exc)))
                return
            except Exception as exc:  # a rendering bug: keep the row, retry later, log
                log.exception("notification %s could not be rendered", note_id)
                self._retry_later(note, f"render failure: {type(exc).__name__}")
                report.failed.append((note.kind, note.recipient, type(exc).__name__))
                return
            note.status, note.sent_at, note.subject, note.path = (
                "sent",
                self.clock(),
                message.subject,
                path,
            )
            note.attempts += 1
            note.last_error = None
            audit.record_sent(session, note, [f.id for f in findings])
            if note.kind == "urgent" and findings and findings[0].item is not None:
                metrics.observe_alert_latency(findings[0].item.first_seen_at, note.sent_at)
            report.sent.append((note.kind, note.recipient, path))

    def _retry_later(self, note: Notification, error: str) -> None:
        note.attempts += 1
        note.last_error = error[:1000]
        if note.attempts >= MAX_ATTEMPTS:
            note.status = "failed"
            log.error(
                "giving up on %s notification %s to %s after %d attempts: %s",
                note.kind,
                note.id,
                note.recipient,
                note.attempts,
                error,
            )
        else:
            note.next_attempt_at = self.clock() + backoff(note.attempts)
            log.warning(
                "%s notification %s to %s not sent (attempt %d): %s",
                note.kind,
                note.id,
                note.recipient,
                note.attempts,
                error,
            )
