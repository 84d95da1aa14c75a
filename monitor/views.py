"""Build the reports' view models from stored findings, scoped to one school.

Scoping is enforced here, once: every view is built for a (recipient, school)
pair and a finding from another school is refused with an error, so no template
can ever be handed another school's content.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from monitor.config import Config
from monitor.db.tables import Account, Finding, StoredItem
from monitor.model import Severity
from monitor.timeutil import as_utc
from reports.render import section_title
from reports.views import (
    AccountDigest,
    AccountHealthView,
    DigestView,
    FindingView,
    SectionCount,
    SectionGroup,
    SummaryView,
    UrgentView,
)


class ScopeError(RuntimeError):
    """A finding of one school was about to reach a recipient of another."""


def finding_view(finding: Finding, account: Account) -> FindingView:
    item = finding.item
    if item is not None:
        author = " ".join(
            p
            for p in (item.author_name, f"@{item.author_handle}" if item.author_handle else "")
            if p
        )
        text, url, created = item.text, item.url, as_utc(item.created_at)
    else:
        author, text, url, created = "", finding.summary, None, as_utc(finding.created_at)
    return FindingView(
        id=finding.id,
        account_id=account.id,
        account_handle=account.handle,
        platform=account.platform,
        subject_kind=finding.subject_kind,
        section=finding.section,
        category=finding.category,
        severity=finding.severity,
        rule_id=finding.rule_id,
        message=finding.message,
        action=finding.action,
        text=text,
        evidence_start=finding.evidence_start,
        evidence_end=finding.evidence_end,
        author=author or "(unknown)",
        url=url,
        created_at=created,
        # an item's finding is described by the item itself (kind, author, excerpt)
        summary=finding.summary if item is None else "",
    )


def health_view(row: Account, health: str) -> AccountHealthView:
    return AccountHealthView(
        account_id=row.id,
        handle=row.handle,
        platform=row.platform,
        health=health,
        reason=row.health_reason,
        last_success_at=as_utc(row.last_success_at) if row.last_success_at else None,
    )


def _load_items(session: Session, findings: Sequence[Finding]) -> list[StoredItem]:
    """Load the shown findings' items in one query (without the raw payloads), so that
    `finding.item` reads them from the session instead of one query each.  The caller
    keeps the returned list: the session only holds weak references."""
    ids = [f.item_id for f in findings if f.item_id is not None]
    items: list[StoredItem] = []
    for start in range(0, len(ids), 500):
        items.extend(
            session.scalars(
                select(StoredItem)
                .where(StoredItem.id.in_(ids[start : start + 500]))
                .options(defer(StoredItem.raw))
            )
        )
    return items


def _check_scope(findings: Sequence[Finding], school_id: str) -> None:
    for f in findings:
        if f.school_id != school_id:
            raise ScopeError(
                f"finding {f.id} of school {f.school_id} is not for school {school_id}"
            )


def urgent_view(
    session: Session,
    config: Config,
    recipient: str,
    school_id: str,
    findings: Sequence[Finding],
    *,
    ack_url: str | None = None,
    escalation_step: int = 0,
) -> UrgentView:
    _check_scope(findings, school_id)
    school = config.school(school_id)
    views = [finding_view(f, session.get_one(Account, f.account_id)) for f in findings]
    return UrgentView(
        recipient=recipient,
        school_id=school.id,
        school_name=school.name,
        language=school.language,
        findings=views,
        ack_url=ack_url,
        escalation_step=escalation_step,
        timezone=str(config.school_timezone(school)),
    )


def digest_view(
    session: Session,
    config: Config,
    recipient: str,
    school_id: str,
    findings: Sequence[Finding],
    now: datetime,
) -> DigestView:
    _check_scope(findings, school_id)
    school = config.school(school_id)
    owned = [a for a in config.accounts if a.school == school_id and recipient in a.owners]
    grouped: dict[str, dict[str, list[FindingView]]] = defaultdict(lambda: defaultdict(list))
    rows = {a.id: session.get_one(Account, a.id) for a in owned}
    for f in findings:
        if f.account_id not in rows:
            raise ScopeError(
                f"finding {f.id} is on account {f.account_id}, not owned by the recipient"
            )
    # Nobody reads 200 findings in an email: list the most serious, count the rest.
    listed = sorted(findings, key=lambda f: (-Severity(f.severity).rank, f.section, f.id))
    listed = listed[: config.digest.max_listed]
    items = _load_items(session, listed)  # noqa: F841 - held while the views are built
    for f in sorted(listed, key=lambda f: (f.account_id, f.section, f.id)):
        grouped[f.account_id][f.section].append(finding_view(f, rows[f.account_id]))
    accounts = [
        AccountDigest(
            account_id=account_id,
            handle=rows[account_id].handle,
            platform=rows[account_id].platform,
            sections=[
                SectionGroup(section, section_title(section, school.language), views)
                for section, views in sorted(sections.items())
            ],
        )
        for account_id, sections in grouped.items()
    ]
    health = [health_view(row, row.health) for row in rows.values() if row.health != "ok"]
    return DigestView(
        recipient=recipient,
        school_id=school.id,
        school_name=school.name,
        language=school.language,
        period_end=now,
        accounts=accounts,
        health=health,
        timezone=str(config.school_timezone(school)),
        total_findings=len(findings),
    )


def summary_view(
    session: Session,
    config: Config,
    recipient: str,
    school_id: str,
    now: datetime,
    stale_after: timedelta,
) -> SummaryView:
    """The principal's daily summary; every query is filtered to this one school."""
    school = config.school(school_id)
    since = now - timedelta(days=1)
    counts = session.execute(
        select(Finding.section, Finding.severity, func.count())
        .where(
            Finding.school_id == school_id, Finding.created_at > since, Finding.created_at <= now
        )
        .group_by(Finding.section, Finding.severity)
        .order_by(Finding.section, Finding.severity)
    ).all()
    open_urgent = session.scalars(
        select(Finding)
        .where(
            Finding.school_id == school_id, Finding.severity == "urgent", Finding.status == "open"
        )
        .order_by(Finding.id)
        .limit(50)
    ).all()
    accounts = [a for a in config.accounts if a.school == school_id and a.enabled]
    rows = {a.id: session.get_one(Account, a.id) for a in accounts}
    not_polled = []
    for row in rows.values():
        last = as_utc(row.last_success_at) if row.last_success_at else None
        stale = last is None or last + stale_after < now
        if row.health != "ok" or stale:
            not_polled.append(health_view(row, row.health if row.health != "ok" else "stale"))
    return SummaryView(
        recipient=recipient,
        school_id=school.id,
        school_name=school.name,
        language=school.language,
        period_end=now,
        counts=[
            SectionCount(section, section_title(section, school.language), severity, n)
            for section, severity, n in counts
        ],
        unacknowledged=[
            finding_view(f, rows.get(f.account_id) or session.get_one(Account, f.account_id))
            for f in open_urgent
        ],
        not_polled=not_polled,
        accounts_total=len(accounts),
        timezone=str(config.school_timezone(school)),
    )
