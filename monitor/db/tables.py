"""The tables.  Same schema on SQLite and PostgreSQL; Alembic owns every change to it.

Timestamps are stored as UTC; SQLite hands them back naive, so read them through
`monitor.timeutil.as_utc`.  Raw platform payloads are kept as JSON for evidence
(section 8 "document ... before removal"); retention purges them with the item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class School(Base):
    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))


class Account(Base):
    """A monitored account, its health and when it may next be polled."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    health: Mapped[str] = mapped_column(String(32), default="new")
    health_reason: Mapped[str | None] = mapped_column(Text)
    health_since: Mapped[datetime | None]
    last_poll_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    not_before: Mapped[datetime | None]
    settings_polled_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]

    cursors: Mapped[list[Cursor]] = relationship(
        back_populates="account", cascade="all, delete-orphan"
    )


class Cursor(Base):
    """Where each stream of an account was read up to; advanced with the items it covers."""

    __tablename__ = "cursors"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]

    account: Mapped[Account] = relationship(back_populates="cursors")


class StoredItem(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("account_id", "external_id", name="uq_items_account_external"),
        Index("ix_items_first_seen", "first_seen_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    parent_external_id: Mapped[str | None] = mapped_column(String(128))
    author_id: Mapped[str] = mapped_column(String(128))
    author_handle: Mapped[str] = mapped_column(String(200))
    author_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    first_seen_at: Mapped[datetime]
    raw: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))


class StoredSnapshot(Base):
    __tablename__ = "settings_snapshots"
    __table_args__ = (Index("ix_snapshots_account_taken", "account_id", "taken_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    taken_at: Mapped[datetime]
    audience: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]]
    role_holders: Mapped[list[Any]]
    raw: Mapped[dict[str, Any]]


class Finding(Base):
    """A rule that fired on an item, a settings change or an account event.

    `dedupe_key` names the subject ("item:42", "snapshot:7", "event:...") so the
    same rule on the same subject is recorded once, whatever happens to retries;
    `group_key` names a burst of the same spam from one author, so it is recorded once
    per window even when the burst spans a restart or two workers.
    """

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("account_id", "rule_id", "dedupe_key", name="uq_findings_subject"),
        Index("ix_findings_account_created", "account_id", "created_at"),
        Index("ix_findings_group", "account_id", "rule_id", "group_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"))
    snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("settings_snapshots.id", ondelete="SET NULL")
    )
    dedupe_key: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(100))
    section: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    detector: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    evidence_start: Mapped[int | None]
    evidence_end: Mapped[int | None]
    evidence_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(254))
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # spam bursts (Detection.group_key): one finding per key within the repeat window,
    # counted from when its first comment was posted (`observed_at`)
    group_key: Mapped[str | None] = mapped_column(String(32))
    observed_at: Mapped[datetime | None]

    item: Mapped[StoredItem | None] = relationship()
    snapshot: Mapped[StoredSnapshot | None] = relationship()


class Notification(Base):
    """The outbox: written with the findings it covers, sent after commit, retried."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(254))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    # urgent alerts: the incident (account + subject) they are about, and the rung of
    # the escalation ladder (0 = the first alert to the principal)
    incident: Mapped[str | None] = mapped_column(String(200), index=True)
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)

    findings: Mapped[list[Finding]] = relationship(secondary="notification_findings")


class NotificationFinding(Base):
    __tablename__ = "notification_findings"

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True
    )
    recipient: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("recipient", "kind", "finding_id", name="uq_notification_findings_once"),
    )


class JobRun(Base):
    """A once-only job occurrence (a school's digest for one day): the row is the lock.

    Inserting the row claims the run; a second process or a restart that tries the
    same (job, key) fails the unique constraint and skips it.  This is what makes
    catch-up after downtime send a digest once, and not twice.
    """

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    ran_at: Mapped[datetime]
    worker: Mapped[str | None] = mapped_column(String(128))


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (monitor.audit).

    `id` is assigned by `monitor.audit.record` from `audit_head`, not by a sequence,
    so ids are contiguous and a missing id is a deleted entry.  `data` holds ids,
    rule, section, recipient and action only: never platform (student) text, so the
    log outlives retention.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row (id 1) naming the last audit entry: the lock appends take.

    Updating it first serialises appenders (a row lock on PostgreSQL, the write lock
    on SQLite), and it lets `verify` notice entries deleted from the end of the log.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Id)
    last_hash: Mapped[str] = mapped_column(String(64))


class LegalHold(Base):
    """A finding kept past retention (section 4: evidence in proceedings).

    Active while `released_at` is null; a released hold stays as the record of it.
    """

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), index=True
    )
    held_at: Mapped[datetime]
    held_by: Mapped[str] = mapped_column(String(254))
    note: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(254))
