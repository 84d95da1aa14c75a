"""`policywatch status`: is monitoring actually happening right now?

Section 8 asks for regular monitoring; IT needs one place that says whether every
account is being polled, whether alerts are stuck in the outbox and when the next
digests go out.  `collect` reads the database and the config only: it never polls
or sends, so it is safe to run at any time next to the daemon.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.db.tables import Account, Cursor, JobRun, Notification
from monitor.timeutil import as_utc

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.service import Service


def collect(service: Service) -> dict[str, Any]:
    """A JSON-ready snapshot of accounts, outbox, digests and workers."""
    now = as_utc(service.clock())
    with service.sessions() as session:
        return {
            "now": now.isoformat(),
            "accounts": _accounts(session, service.config, now),
            "outbox": _outbox(session, now),
            "digests": _digests(session, service.config, now),
            "workers": _workers(session, service.config, now),
        }


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def _accounts(session: Session, config: Config, now: datetime) -> list[dict[str, Any]]:
    rows = {a.id: a for a in session.scalars(select(Account))}
    oldest_q = select(Cursor.account_id, func.min(Cursor.updated_at)).group_by(Cursor.account_id)
    oldest = {account_id: at for account_id, at in session.execute(oldest_q)}
    interval = config.schedule.poll_interval
    out = []
    for account in config.accounts:
        row = rows.get(account.id)
        health = row.health if row is not None else "new"
        last_poll = as_utc(row.last_poll_at) if row and row.last_poll_at else None
        cursor_at = as_utc(oldest[account.id]) if oldest.get(account.id) else None
        due: datetime | None = None
        if account.enabled:
            due = last_poll + interval if last_poll else now
            if row is not None and row.not_before is not None:
                due = max(due, as_utc(row.not_before))
        out.append(
            {
                "id": account.id,
                "school": account.school,
                "platform": account.platform,
                "enabled": account.enabled,
                "health": health,
                "degraded_reason": (
                    row.health_reason if row is not None and health not in ("ok", "new") else None
                ),
                "last_poll_at": _iso(last_poll),
                "last_success_at": _iso(row.last_success_at if row else None),
                "oldest_cursor_at": _iso(cursor_at),
                "cursor_age_seconds": (
                    int((now - cursor_at).total_seconds()) if cursor_at is not None else None
                ),
                "next_poll_due": _iso(due),
            }
        )
    return out


def _outbox(session: Session, now: datetime) -> dict[str, Any]:
    pending = Notification.status == "pending"
    depth = session.scalar(select(func.count()).select_from(Notification).where(pending)) or 0
    failed = (
        session.scalar(
            select(func.count()).select_from(Notification).where(Notification.status == "failed")
        )
        or 0
    )
    oldest = session.scalar(select(func.min(Notification.created_at)).where(pending))
    return {
        "depth": depth,
        "failed": failed,
        "oldest_unsent_at": _iso(oldest),
        "oldest_unsent_age_seconds": (
            int((now - as_utc(oldest)).total_seconds()) if oldest is not None else None
        ),
    }


def _digests(session: Session, config: Config, now: datetime) -> list[dict[str, Any]]:
    """Next scheduled digest per school: today's unless already claimed in job_runs."""
    out = []
    for school in config.schools:
        tz = config.school_timezone(school)
        today = now.astimezone(tz).date()
        claimed = session.get(JobRun, (f"digest:{school.id}", today.isoformat())) is not None
        day: date = today + timedelta(days=1) if claimed else today
        at = datetime.combine(day, config.schedule.digest_time, tzinfo=tz)
        out.append(
            {
                "school": school.id,
                "next_at": at.astimezone(now.tzinfo).isoformat(),
                "due": at <= now,
            }
        )
    return out


def _workers(session: Session, config: Config, now: datetime) -> list[dict[str, Any]]:
    """Workers that reported a heartbeat within three poll intervals are alive."""
    window = config.schedule.poll_interval * 3
    rows = session.scalars(select(JobRun).where(JobRun.job == "worker")).all()
    return [
        {"worker": r.key, "last_seen": _iso(r.ran_at), "alive": as_utc(r.ran_at) + window >= now}
        for r in sorted(rows, key=lambda r: r.key)
    ]
