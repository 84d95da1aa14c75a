"""What the templates are given: plain, already-scoped data, built by the engine.

The engine decides *who* sees *which* findings (scoping is enforced there, by
school and ownership); reports only decides *how* it looks.  Everything here that
came from a platform (text, author, url, handle) is untrusted: templates autoescape
it, excerpts mask personal information, and headers never carry it except through
`reports.safety.header_fragment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FindingView:
    id: int
    account_id: str
    account_handle: str
    platform: str
    subject_kind: str  # comment | reply | mention | tag | own_post | settings_change | ...
    section: str  # policy section, e.g. "9.0"
    category: str
    severity: str  # urgent | digest | info
    rule_id: str
    message: str  # what was found, in the school's language
    action: str  # what the policy asks the recipient to do
    text: str  # the item's full text (untrusted); the template shows an excerpt only
    evidence_start: int | None
    evidence_end: int | None
    author: str  # display name and/or handle (untrusted)
    url: str | None  # link to the item on the platform (untrusted; host-checked)
    created_at: datetime
    summary: str = ""  # for settings/registry/health findings: what changed


@dataclass(frozen=True, slots=True)
class SectionGroup:
    section: str
    title: str  # e.g. "9.0 Duty of Care"
    findings: list[FindingView]


@dataclass(frozen=True, slots=True)
class AccountDigest:
    account_id: str
    handle: str
    platform: str
    sections: list[SectionGroup]


@dataclass(frozen=True, slots=True)
class AccountHealthView:
    account_id: str
    handle: str
    platform: str
    health: str  # ok | auth | permission | rate_limited | transient | malformed | stale | new
    reason: str | None
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class DigestView:
    """The daily digest to one account owner."""

    recipient: str
    school_id: str
    school_name: str
    language: str  # en | fr
    period_end: datetime
    accounts: list[AccountDigest]
    health: list[AccountHealthView] = field(default_factory=list)
    total_findings: int = 0  # covered by this digest; more than shown when it was capped
    timezone: str = "UTC"  # IANA zone the reader's times are shown in (the school's)

    @property
    def finding_count(self) -> int:
        return sum(len(g.findings) for a in self.accounts for g in a.sections)


@dataclass(frozen=True, slots=True)
class UrgentView:
    """One urgent alert (one incident, possibly several findings) to one recipient."""

    recipient: str
    school_id: str
    school_name: str
    language: str
    findings: list[FindingView]
    ack_url: str | None = None
    escalation_step: int = 0  # 0: first alert; n: n-th step up the ladder
    timezone: str = "UTC"  # IANA zone the reader's times are shown in (the school's)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    to: str
    subject: str
    text: str
    html: str
    message_id: str  # "<key@policywatch>", stable per idempotency key


@dataclass(frozen=True, slots=True)
class SectionCount:
    section: str
    title: str
    severity: str
    count: int


@dataclass(frozen=True, slots=True)
class SummaryView:
    """The principal's daily school summary: counts, what is still open, what is not watched."""

    recipient: str
    school_id: str
    school_name: str
    language: str
    period_end: datetime
    counts: list[SectionCount]
    unacknowledged: list[FindingView]
    not_polled: list[AccountHealthView]
    accounts_total: int
    timezone: str = "UTC"
