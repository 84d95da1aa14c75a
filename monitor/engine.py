"""The poll cycle: poll each due account, store what is new, evaluate, alert.

One account's result is stored in one transaction: its new items, findings,
settings snapshot, urgent alerts (outbox rows) and advanced cursors commit
together or not at all.  So a crash between two polls resumes exactly where the
last commit left off, and an item seen again is never stored or reported twice.
Mail is sent after commit by the outbox, never inside the transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AccountPoll, Connector, ConnectorError, connector_class
from monitor import metrics
from monitor.actions import resolve
from monitor.config import AccountConfig, Config
from monitor.db.tables import Account, JobRun, StoredItem
from monitor.evaluate import Evaluation, Evaluator
from monitor.locks import try_job_lock, wait_job_lock
from monitor.model import Author, Detection, Item, ItemKind, PollResult
from monitor.store import (
    known_items,
    load_cursors,
    save_cursors,
    storable_text,
    store_new_items,
    sync_registry,
)
from monitor.timeutil import as_utc

log = logging.getLogger(__name__)

CLAIM_BATCH = 200  # most accounts leased at a time (Graph batches hold 50 pages)
MIN_CLAIM = 10


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Health states after which the owner is told (once) that monitoring stopped.
_NOTIFY_HEALTH = {"auth", "permission", "malformed", "error"}


@dataclass
class AccountOutcome:
    account_id: str
    platform: str
    new_items: int = 0
    findings: list[tuple[str, str]] = field(default_factory=list)  # (section, severity)
    notifications: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    to_hide: dict[str, list[int]] = field(default_factory=dict)  # external id -> finding ids


@dataclass
class CycleReport:
    outcomes: list[AccountOutcome] = field(default_factory=list)

    @property
    def new_items(self) -> int:
        return sum(o.new_items for o in self.outcomes)

    @property
    def notifications(self) -> int:
        return sum(o.notifications for o in self.outcomes)


class PollEngine:
    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        evaluator: Evaluator,
        clock: Callable[[], datetime],
        worker_id: str | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.evaluator = evaluator
        self.clock = clock
        self.worker_id = worker_id or default_worker_id()
        self.lease = config.workers.lease
        self._connectors: dict[str, Connector] = {}
        self.stopping = threading.Event()  # set on SIGTERM: finish the batch, claim no more
        # per account, the highest stored-item id replayed into the rule engine's
        # repetition window (`_pre_evaluate`); read and written by the store thread only
        self._replayed: dict[str, int] = {}

    def connector(self, platform: str) -> Connector:
        if platform not in self._connectors:
            self._connectors[platform] = connector_class(platform)()
        return self._connectors[platform]

    def close(self) -> None:
        for connector in self._connectors.values():
            connector.close()

    def sync(self) -> None:
        """Mirror the config's schools and accounts into the database (start and reload)."""
        with self.sessions.begin() as session:
            wait_job_lock(session, "registry")  # workers starting together insert once
            sync_registry(session, self.config)

    def claim(
        self,
        now: datetime,
        *,
        force: bool = False,
        skip: set[str] | None = None,
        limit: int = CLAIM_BATCH,
        due_at: datetime | None = None,
    ) -> list[AccountConfig]:
        """Lease up to `limit` due accounts to this worker.

        Several workers sharing one PostgreSQL database split the accounts between
        them: rows are locked with SKIP LOCKED while a lease is written, so no two
        workers claim the same account, and a dead worker's leases simply expire.
        """
        configured = {a.id: a for a in self.config.accounts if a.enabled}
        interval = self.config.schedule.poll_interval
        stmt = (
            select(Account)
            .where(Account.enabled.is_(True))
            .where(or_(Account.lease_until.is_(None), Account.lease_until < now))
            .where(or_(Account.not_before.is_(None), Account.not_before <= now))
            .order_by(Account.last_poll_at.asc().nulls_first(), Account.id)
            .limit(limit)
        )
        if force and skip:  # `poll --once`: each account once, whatever its last poll
            stmt = stmt.where(Account.id.not_in(skip))
        if not force:
            # a little slack so a tick that fires a second early still polls
            due_before = (due_at or now) - interval * 0.95
            stmt = stmt.where(
                or_(Account.last_poll_at.is_(None), Account.last_poll_at <= due_before)
            )
        with self.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = [r for r in session.scalars(stmt) if r.id in configured]
            for row in rows:
                row.lease_owner, row.lease_until = self.worker_id, now + self.lease
        return [configured[r.id] for r in rows]

    def poll_cycle(self, *, force: bool = False) -> CycleReport:
        """Claim batches of due accounts and poll them until none is left.

        Every account of the cycle is stamped with the cycle's start as its poll time,
        so an account reached late in a long cycle is still due at the next tick.
        """
        report = CycleReport()
        done: set[str] = set()
        cycle_start = self.clock()
        limit, share = self.claim_size(cycle_start)
        # Storing (and rule evaluation) runs in its own thread, so the next claim is
        # polled while the previous one is stored: a cycle takes about as long as the
        # slower of the two, not their sum.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store") as storer:
            stored: list[Future[list[AccountOutcome]]] = []
            while not self.stopping.is_set() and (force or len(done) < share):
                now = self.clock()
                accounts = self.claim(now, force=force, skip=done, limit=limit, due_at=cycle_start)
                if not accounts:
                    break
                done.update(a.id for a in accounts)
                keeper = LeaseKeeper(self, [a.id for a in accounts]).start()
                polled = self._poll_batch(accounts, now)
                while stored:  # at most one claim stored while the next is polled
                    report.outcomes.extend(stored.pop(0).result())
                stored.append(storer.submit(self._store_batch, polled, now, cycle_start, keeper))
            for future in stored:
                report.outcomes.extend(future.result())
        return report

    def claim_size(self, now: datetime) -> tuple[int, int]:
        """(accounts per claim, accounts per cycle) for this worker.

        A worker takes about its share of the accounts per cycle, in claims of half its
        share, so live workers split the work even when their ticks are staggered;
        accounts it leaves are due for the others' ticks, and a dead worker stops
        counting as live after three intervals without a heartbeat.
        """
        window = now - self.config.schedule.poll_interval * 3
        with self.sessions() as session:
            live = (
                session.scalar(
                    select(func.count())
                    .select_from(JobRun)
                    .where(JobRun.job == "worker", JobRun.ran_at >= window)
                )
                or 1
            )
        enabled = sum(1 for a in self.config.accounts if a.enabled)
        share = -(-enabled // live)
        return max(MIN_CLAIM, min(CLAIM_BATCH, -(-share // 2))), max(share, MIN_CLAIM)

    def _poll_batch(
        self, accounts: Sequence[AccountConfig], now: datetime
    ) -> list[tuple[AccountConfig, PollResult | ConnectorError]]:
        """Poll a claim, each platform in its own thread; nothing is stored here."""
        by_platform: dict[str, list[AccountConfig]] = defaultdict(list)
        for account in accounts:
            by_platform[account.platform].append(account)
        polled: list[tuple[AccountConfig, PollResult | ConnectorError]] = []
        with ThreadPoolExecutor(max_workers=len(by_platform), thread_name_prefix="poll") as pool:
            futures = [
                pool.submit(self._poll_platform, platform, group, now)
                for platform, group in by_platform.items()
            ]
            for future in futures:
                polled.extend(future.result())
        return polled

    def _store_batch(
        self,
        polled: Sequence[tuple[AccountConfig, PollResult | ConnectorError]],
        now: datetime,
        cycle_start: datetime,
        keeper: LeaseKeeper,
    ) -> list[AccountOutcome]:
        """Store a polled claim: rules evaluated for the whole claim at once, then one
        transaction per account."""
        try:
            verdicts = self._pre_evaluate(polled)
            outcomes = []
            for account, result in polled:
                try:
                    outcome = self.store_result(account, result, now, cycle_start, verdicts)
                    outcomes.append(outcome)
                    if outcome.to_hide:
                        self.moderate(account, outcome.to_hide)
                except Exception as exc:
                    log.exception("storing the poll of account %s failed", account.id)
                    outcomes.append(
                        AccountOutcome(
                            account.id,
                            account.platform,
                            error=f"storage failure: {type(exc).__name__}",
                        )
                    )
            return outcomes
        finally:
            keeper.stop()

    def _pre_evaluate(
        self, polled: Sequence[tuple[AccountConfig, PollResult | ConnectorError]]
    ) -> dict[tuple[str, str], list[Detection]]:
        """One rule-engine call for every new item of the claim (the classifier is
        much faster on a batch than item by item).  Items stored before are left out,
        so they do not count as repeats.

        First the claim's accounts' recent stored comments are replayed into the
        repetition window (from where this worker last left off with each account), so
        "the same comment again" is noticed whoever stored the first copy: this worker
        before a restart, or another worker that held the lease.  Done here, under the
        leases, rather than once per cycle, so a copy another worker stored while this
        cycle was already running is not missed."""
        candidates = [
            (account, _storable(item))
            for account, result in polled
            if isinstance(result, PollResult)
            for item in result.items
            if item.account_id == account.id
        ]
        if not candidates:
            return {}
        with self.sessions() as session:
            claimed = {a.id for a, _ in candidates}
            self._replayed.update(self.evaluator.remember_recent(
                session, self.clock(), {a: self._replayed.get(a, 0) for a in claimed}))
            seen = known_items(session, [(a.id, i.external_id) for a, i in candidates])
        fresh = [(a, i) for a, i in candidates if (a.id, i.external_id) not in seen]
        return self.evaluator.pre_evaluate(fresh)

    def renew_leases(self, account_ids: Sequence[str]) -> None:
        """Extend this worker's leases on accounts it is still polling."""
        with self.sessions.begin() as session:
            session.execute(
                update(Account)
                .where(Account.id.in_(account_ids), Account.lease_owner == self.worker_id)
                .values(lease_until=self.clock() + self.lease)
            )

    def _poll_platform(
        self, platform: str, accounts: Sequence[AccountConfig], now: datetime
    ) -> list[tuple[AccountConfig, PollResult | ConnectorError]]:
        with self.sessions() as session:
            polls = [AccountPoll(a, load_cursors(session, a.id)) for a in accounts]
        try:
            results = self.connector(platform).poll_many(polls, now)
        except Exception as exc:  # a connector bug must not kill the cycle
            log.exception("connector %s failed", platform)
            results = {
                a.id: ConnectorError(f"connector failure: {type(exc).__name__}") for a in accounts
            }
        return [
            (account, results.get(account.id) or ConnectorError("connector returned no result"))
            for account in accounts
        ]

    def store_result(
        self,
        account: AccountConfig,
        result: PollResult | ConnectorError,
        now: datetime,
        cycle_start: datetime | None = None,
        verdicts: Mapping[tuple[str, str], list[Detection]] | None = None,
    ) -> AccountOutcome:
        outcome = AccountOutcome(account.id, account.platform)
        with self.sessions.begin() as session:
            row = session.get_one(Account, account.id, with_for_update=True)
            if row.lease_owner != self.worker_id:
                # Our lease ran out and another worker took the account over: it polls
                # from the same cursors and stores the same items, so ours are dropped.
                log.info(
                    "account %s was taken over by %s; this poll's result is dropped",
                    account.id,
                    row.lease_owner or "another worker",
                )
                outcome.error = "lease taken over by another worker"
                return outcome
            row.last_poll_at = cycle_start or now
            row.lease_owner, row.lease_until = None, None
            if isinstance(result, ConnectorError):
                outcome.error = result.reason
                metrics.observe_poll(account.platform, result.health)
                metrics.observe_api_error(account.platform, result.health)
                self._record_failure(session, account, row, result, now, outcome)
                return outcome
            log.debug("account %s polled by worker %s", account.id, self.worker_id)
            outcome.warnings = list(result.warnings)
            for warning in result.warnings:
                log.warning("account %s: %s", account.id, warning)
            items = [_storable(i) for i in result.items if i.account_id == account.id]
            new = store_new_items(session, items, now)
            outcome.new_items = len(new)
            evaluations = [self.evaluator.evaluate_items(session, account, new, now, verdicts)]
            if account.moderation == "hide":
                outcome.to_hide = _hideable(new, evaluations[0])
            if result.settings_snapshot is not None:
                for snapshot in [*result.earlier_snapshots, result.settings_snapshot]:
                    evaluations.append(
                        self.evaluator.evaluate_snapshot(session, account, snapshot, now)
                    )
                row.settings_polled_at = now
            save_cursors(session, account.id, result.new_cursors, now)
            if row.health != "ok":
                if row.health != "new":
                    log.info("account %s is healthy again (was %s)", account.id, row.health)
                row.health, row.health_reason, row.health_since = "ok", None, now
            row.last_success_at, row.not_before = now, None
            _collect(outcome, evaluations)
            metrics.observe_poll(account.platform, "ok")
            metrics.observe_items(account.platform, outcome.new_items)
            for section, severity in outcome.findings:
                metrics.observe_finding(section, severity)
        return outcome

    def moderate(self, account: AccountConfig, to_hide: Mapping[str, list[int]]) -> None:
        """moderation = "hide": hide flagged comments on the platform, after the findings
        (the documentation) are committed, and record it as the findings' resolution.
        Comments are hidden, never deleted, and crisis comments are left for a person."""
        connector = self.connector(account.platform)
        for external_id, finding_ids in to_hide.items():
            try:
                connector.hide(account, external_id)
            except ConnectorError as exc:
                log.warning(
                    "account %s: could not hide %s: %s", account.id, external_id, exc.reason
                )
                continue
            with self.sessions.begin() as session:
                for finding_id in finding_ids:
                    resolve(
                        session,
                        finding_id,
                        "hidden",
                        "hidden automatically (moderation = hide)",
                        None,
                        self.clock(),
                    )
            log.info("account %s: hid comment %s on %s", account.id, external_id, account.platform)

    def _record_failure(
        self,
        session: Session,
        account: AccountConfig,
        row: Account,
        error: ConnectorError,
        now: datetime,
        outcome: AccountOutcome,
    ) -> None:
        log.warning("account %s: poll failed (%s): %s", account.id, error.health, error.reason)
        if error.retry_after:
            row.not_before = now + timedelta(seconds=error.retry_after)
        changed = row.health != error.health
        if changed:
            row.health, row.health_since = error.health, now
        row.health_reason = error.reason
        if changed and error.health in _NOTIFY_HEALTH:
            since = as_utc(row.health_since or now).isoformat()
            text = f"Monitoring stopped ({error.health}): {error.reason}"
            _collect(
                outcome,
                [
                    self.evaluator.evaluate_health(
                        session, account, f"health:{error.health}:{since}", text, now
                    )
                ],
            )

    def check_staleness(self) -> list[AccountOutcome]:
        """Section 8 asks for regular monitoring: flag accounts not polled successfully."""
        now = self.clock()
        stale_after = self.config.schedule.stale_after
        outcomes: list[AccountOutcome] = []
        with self.sessions.begin() as session:
            if not try_job_lock(session, "staleness"):
                return outcomes  # another worker is checking right now
            configured = {a.id: a for a in self.config.accounts if a.enabled}
            stale = session.scalars(
                select(Account).where(
                    Account.enabled.is_(True), Account.last_success_at < now - stale_after
                )
            )
            for row in stale:
                account = configured.get(row.id)
                if account is None or row.last_success_at is None:
                    continue
                last = as_utc(row.last_success_at)
                outcome = AccountOutcome(account.id, account.platform)
                hours = int((now - last).total_seconds() // 3600)
                text = f"Not monitored successfully for {hours} hours"
                _collect(
                    outcome,
                    [
                        self.evaluator.evaluate_health(
                            session, account, f"stale:{last.isoformat()}", text, now
                        )
                    ],
                )
                outcomes.append(outcome)
        return outcomes


class LeaseKeeper:
    """Renews a batch's leases while it is polled, so a slow batch is not taken over."""

    def __init__(self, engine: PollEngine, account_ids: Sequence[str]) -> None:
        self.engine = engine
        self.account_ids = list(account_ids)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def _run(self) -> None:
        every = max(self.engine.lease.total_seconds() / 3, 0.5)
        while not self.done.wait(every):
            try:
                self.engine.renew_leases(self.account_ids)
            except Exception:  # the database is briefly unreachable: try again next time
                log.warning("could not renew leases", exc_info=True)

    def start(self) -> LeaseKeeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)


# What `moderation = "hide"` hides: content the policy says to remove (section 8). A
# crisis, a threat or anything about the account itself is left for a person to handle.
HIDE_CATEGORIES = frozenset({"inappropriate_language", "personal_information", "spam", "bullying"})
HIDEABLE_KINDS = frozenset({ItemKind.COMMENT, ItemKind.REPLY})


def _hideable(
    new: Sequence[tuple[Item, StoredItem]], evaluation: Evaluation
) -> dict[str, list[int]]:
    by_row = {row.id: item for item, row in new if item.kind in HIDEABLE_KINDS}
    crisis_rows = {f.item_id for f in evaluation.findings if f.severity == "urgent"}
    out: dict[str, list[int]] = {}
    for f in evaluation.findings:
        item = by_row.get(f.item_id) if f.item_id is not None else None
        if item is None or f.category not in HIDE_CATEGORIES or f.item_id in crisis_rows:
            continue
        out.setdefault(item.external_id, []).append(f.id)
    return out


def _collect(outcome: AccountOutcome, evaluations: Sequence[Evaluation]) -> None:
    for ev in evaluations:
        outcome.findings.extend((f.section, f.severity) for f in ev.findings)
        outcome.notifications += ev.notifications


def _storable(item: Item) -> Item:
    """Clean text fields once, so rules, evidence offsets and storage all see the same text."""
    a = item.author
    return dataclasses.replace(
        item,
        text=storable_text(item.text),
        author=Author(storable_text(a.id), storable_text(a.handle), storable_text(a.display_name)),
    )
