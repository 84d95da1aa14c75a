"""Scale-out (issue #6): several `policywatch run` workers share one PostgreSQL database.

The multi-process tests start real workers as IT does (`policywatch --verbose --config X
run`) on a fresh PostgreSQL schema and read what each one did from its DEBUG log line
"account A polled by worker W" (written in the transaction that stores the poll), so a
double poll, a starved account or an idle worker shows up with its timestamps.  Alerts
are checked on the .eml files the workers wrote and on the notifications table.

Replay accounts with `options.delay_seconds` stand in for a distant API, so a cycle
lasts long enough to kill a worker in the middle of it.
"""

from __future__ import annotations

import email
import email.policy
import gc
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import sqlalchemy as sa
import time_machine

from monitor.config import parse_config
from monitor.db.tables import Account, Notification, StoredItem
from monitor.service import Service
from tests.conftest import _pg_schema_url, base_config

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")
T = TypeVar("T")
CRISIS = "i want to kill myself, nobody would care"
PRINCIPAL = "principal@central.example"
OWNER = "owner@central.example"
_POLLED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) DEBUG monitor\.engine: "
    r"account (\S+) polled by worker (\S+)$"
)
_RUNNING = re.compile(r"policywatch running: .* worker (\S+)$")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url()


# --------------------------------------------------------------------------- helpers


def account_id(i: int) -> str:
    return f"acct-{i:03d}"


def handle(i: int) -> str:
    return f"acct{i:03d}"


def comment(at: datetime, i: int, ident: str, text: str) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "account": account_id(i),
        "type": "comment",
        "id": ident,
        "text": text,
        "author": {"id": f"u-{ident}", "handle": f"h{ident}", "name": f"Name {ident}"},
        "url": f"https://x.com/h/status/{ident}",
    }


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    """The shared replay file; the connector needs it in time order."""
    events = sorted(events, key=lambda e: str(e["at"]))
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


def many_accounts(data: dict[str, Any], count: int, **extra: Any) -> dict[str, Any]:
    """`data` (a base_config dict) with `count` copies of its first account, web off.

    `extra` values may be callables of the account's index ("owners": lambda i: [...]).
    """
    template = data["accounts"][0]
    data["accounts"] = [
        {**template, "id": account_id(i), "handle": handle(i), "external_id": str(1000 + i),
         **{k: v(i) if callable(v) else v for k, v in extra.items()}}
        for i in range(count)
    ]
    data["web"] = {"enabled": False}
    return data


def write_config(
    tmp_path: Path,
    db_url: str,
    accounts: int,
    *,
    poll_interval: str,
    lease: str = "5s",
    delay: float = 0.0,
) -> Path:
    events = tmp_path / "events.jsonl"
    options = f"options = {{ delay_seconds = {delay} }}\n" if delay else ""
    blocks = "".join(
        f"""
[[accounts]]
id = "{account_id(i)}"
platform = "replay"
handle = "{handle(i)}"
external_id = "{1000 + i}"
school = "central"
kind = "classroom"
owners = ["{OWNER}"]
replay_file = "{events}"
{options}"""
        for i in range(accounts)
    )
    config = tmp_path / "policywatch.toml"
    config.write_text(
        f"""
state_dir = "{tmp_path / 'state'}"
[database]
url = "{db_url}"
[mail]
sender = "policywatch@board.example"
outbox_dir = "{tmp_path / 'outbox'}"
[schedule]
poll_interval = "{poll_interval}"
[workers]
lease = "{lease}"
[web]
enabled = false
[[schools]]
id = "central"
name = "Central"
principal = "{PRINCIPAL}"
escalation = ["vp@central.example"]
staff = ["{OWNER}"]
{blocks}""",
        encoding="utf-8",
    )
    return config


@dataclass(frozen=True)
class Poll:
    at: datetime
    account: str
    worker: str


class Worker:
    """One `policywatch --verbose run` process; its stderr goes to a file we can re-read."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.proc = subprocess.Popen(
            [POLICYWATCH, "--verbose", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=self._out,
            env=env,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def worker_id(self) -> str | None:
        for line in self.text().splitlines():
            if m := _RUNNING.search(line):
                return m.group(1)
        return None

    def polls(self) -> list[Poll]:
        out = []
        for line in self.text().splitlines():
            if m := _POLLED.match(line):
                # asctime is local time; the database and the replay file speak UTC
                at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
                out.append(Poll(at, m[2], m[3]))
        return out

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (finish the batch, flush the outbox), SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._out.close()


@contextmanager
def workers(
    config: Path, count: int, tmp_path: Path, tag: str = "w", *, staggered: bool = True
) -> Iterator[list[Worker]]:
    """Start `count` workers; staggered: the first has registered the accounts before the
    others start (see test_workers_started_together_on_a_fresh_database_all_run)."""
    started: list[Worker] = []
    try:
        for n in range(count):
            started.append(Worker(config, tmp_path / f"{tag}{n}.log"))
            if staggered and n == 0 and count > 1:
                wait_until(lambda: started[0].worker_id, 60, "the first worker running")
        yield started
    finally:
        for w in started:
            w.close()


def all_polls(ws: list[Worker]) -> list[Poll]:
    return sorted((p for w in ws for p in w.polls()), key=lambda p: p.at)


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """The predicate's first truthy value (what it found, not a second look that may
    differ: a worker can finish its batch between two calls)."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)
    return found


def double_polls(polls: list[Poll], interval: float) -> list[str]:
    """One account polled by two workers within a third of an interval.

    A worker's own polls of an account follow its ticks (its next claim comes an interval
    after the last one, however long the batch took); polls by two workers so close
    together mean both held the account at once, i.e. a lease was not respected.
    """
    by_account: dict[str, list[Poll]] = defaultdict(list)
    for p in polls:
        by_account[p.account].append(p)
    found = []
    for account, ps in sorted(by_account.items()):
        for a, b in itertools.pairwise(ps):
            if a.worker != b.worker and (b.at - a.at).total_seconds() < interval / 3:
                found.append(
                    f"{account}: {a.at.time()} by {a.worker}, {b.at.time()} by {b.worker}"
                )
    return found


def urgent_eml(outbox: Path) -> dict[str, list[str]]:
    """Urgent .eml files to the principal: account handle (end of the subject) -> Message-IDs."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(outbox.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subject = str(msg["Subject"])
        if subject.startswith("URGENT") and str(msg["To"]) == PRINCIPAL:
            found[subject.rsplit(" ", 1)[-1]].append(str(msg["Message-ID"]))
    return found


def sql(url: str, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))
    finally:
        engine.dispose()


def assert_outbox_clean(url: str) -> None:
    """No notification queued twice, none left unsent."""
    unsent = sql(
        url, "SELECT id, kind, recipient, status FROM notifications WHERE status <> 'sent'"
    )
    assert unsent == [], f"unsent notifications: {unsent}"
    twice = sql(
        url,
        "SELECT kind, recipient, incident, escalation_step, count(*) FROM notifications "
        "WHERE incident IS NOT NULL "
        "GROUP BY kind, recipient, incident, escalation_step HAVING count(*) > 1",
    )
    assert twice == [], f"notifications queued twice: {twice}"


def assert_alerts_once(outbox: Path, crisis_accounts: set[int]) -> None:
    alerts = urgent_eml(outbox)
    expected = {handle(i) for i in crisis_accounts}
    assert set(alerts) == expected, (
        f"missing alerts: {sorted(expected - set(alerts))}, "
        f"unexpected: {sorted(set(alerts) - expected)}"
    )
    twice = {h: ids for h, ids in alerts.items() if len(ids) != 1}
    assert twice == {}, f"crisis comments alerted more than once: {twice}"
    ids = [i for ids in alerts.values() for i in ids]
    assert len(ids) == len(set(ids))


def alerts_done(url: str, outbox: Path, crisis: set[int]) -> bool:
    pending = sql(url, "SELECT count(*) FROM notifications WHERE status <> 'sent'")[0][0]
    return pending == 0 and len(urgent_eml(outbox)) >= len(crisis)


# --------------------------------------------------------------------------- multi-process


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_split_300_accounts_and_poll_each_once_per_interval(
    tmp_path: Path, pg_url: str
) -> None:
    # 10 s: a first batch on a busy 2-core machine (history, rule packs loading) takes
    # several seconds; the interval must leave room for it, the 5 s lease need not.
    interval = 10.0
    accounts = 300
    now = datetime.now(UTC)
    crisis = set(range(7, accounts, 29))  # 11 accounts, spread over every claim batch
    events = [comment(now - timedelta(minutes=5), i, f"hello-{i}", "Great concert!")
              for i in range(0, accounts, 10)]
    for n, i in enumerate(sorted(crisis)):  # some at start, some arriving during the run
        events.append(comment(now + timedelta(seconds=3 * n - 6), i, f"crisis-{i}", CRISIS))
    write_events(tmp_path / "events.jsonl", events)
    config = write_config(tmp_path, pg_url, accounts, poll_interval="10s", lease="5s")

    with workers(config, 3, tmp_path) as ws:

        def polled_enough() -> bool:
            counts = Counter(p.account for p in all_polls(ws))
            return len(counts) == accounts and min(counts.values()) >= 4

        wait_until(polled_enough, 120, "every account polled four times")
        wait_until(lambda: alerts_done(pg_url, tmp_path / "outbox", crisis), 30, "alerts sent")
        for w in ws:
            assert w.stop() == 0, w.text()[-3000:]
        polls = all_polls(ws)
        logs = {w.worker_id: w.log.name for w in ws}

    assert not (dup := double_polls(polls, interval)), (
        f"{len(dup)} double polls, e.g.\n" + "\n".join(dup[:15])
    )

    # Once per interval: after the first cycle (history, rule packs warming up) no account
    # waits much longer than one interval; the workers' ticks are not in phase, so allow
    # half an interval of jitter.
    first = polls[0].at
    steady = [p for p in polls if p.at > first + timedelta(seconds=interval * 1.5)]
    by_account: dict[str, list[datetime]] = defaultdict(list)
    for p in steady:
        by_account[p.account].append(p.at)
    late = sorted(
        (max((b - a).total_seconds() for a, b in itertools.pairwise(ts)), acc)
        for acc, ts in by_account.items()
        if len(ts) > 1
    )[-5:]
    assert late and late[-1][0] <= interval * 1.5, (
        f"accounts not polled for more than {interval * 1.5}s (gap, account): {late}"
    )

    per_worker = Counter(p.worker for p in polls)
    assert len(per_worker) >= 2, f"one worker did all the work: {per_worker} ({logs})"
    assert max(per_worker.values()) <= 0.75 * len(polls), f"work not split: {per_worker}"

    assert_alerts_once(tmp_path / "outbox", crisis)
    assert_outbox_clean(pg_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_workers_accounts_are_taken_over_after_its_lease(
    tmp_path: Path, pg_url: str
) -> None:
    interval, lease = 5.0, 5.0
    accounts = 300
    now = datetime.now(UTC)
    crisis = set(range(3, accounts, 5))  # every 5th: any 10 held accounts include some
    events = [comment(now - timedelta(minutes=5), i, f"crisis-{i}", CRISIS) for i in crisis]
    extra = {i + 10 for i in range(0, accounts, 40)}  # more crisis after the kill
    events += [
        comment(now + timedelta(seconds=8 + n), i, f"later-{i}", CRISIS)
        for n, i in enumerate(sorted(extra))
    ]
    write_events(tmp_path / "events.jsonl", events)
    # 30 ms per poll: a claim of 50 accounts takes ~1.5 s, inside the 5 s lease
    config = write_config(
        tmp_path, pg_url, accounts, poll_interval="5s", lease="5s", delay=0.03
    )

    with workers(config, 3, tmp_path) as ws:

        def busy_worker() -> Worker | None:
            """A worker that has stored some polls and holds leases right now."""
            for w in ws:
                if len(w.polls()) >= 30 and w.worker_id:
                    held = sql(pg_url, "SELECT count(*) FROM accounts WHERE lease_owner = :w",
                               w=w.worker_id)[0][0]
                    if held >= 10:
                        return w
            return None

        victim = wait_until(busy_worker, 60, "a worker in the middle of its first batch")
        assert victim is not None and victim.worker_id is not None
        victim.kill()
        killed_at = datetime.now(UTC)
        victim_polls = victim.polls()
        orphans = {
            acc: as_aware(until)
            for acc, until in sql(
                pg_url,
                "SELECT id, lease_until FROM accounts WHERE lease_owner = :w",
                w=victim.worker_id,
            )
        }
        assert orphans, "the killed worker held no lease: the test did not kill mid-batch"
        assert {account_id(i) for i in crisis} & set(orphans), "no crisis among the orphans"
        survivors = [w for w in ws if w is not victim]

        def orphans_taken_over() -> bool:
            done = {p.account for p in all_polls(survivors) if p.at > killed_at}
            return set(orphans) <= done

        wait_until(orphans_taken_over, lease + 3 * interval + 10, "orphaned accounts polled")
        wait_until(
            lambda: alerts_done(pg_url, tmp_path / "outbox", crisis | extra), 40, "alerts sent"
        )
        time.sleep(interval)  # one more cycle, to see no stray double poll
        for w in survivors:
            assert w.stop() == 0, w.text()[-3000:]
        polls = all_polls(ws)

    late = []
    early = []
    for p in polls:
        if p.account in orphans and p.worker != victim.worker_id and p.at > killed_at:
            until = orphans[p.account]
            if p.at < until:
                early.append(f"{p.account} at {p.at.time()} before its lease ended {until.time()}")
    for acc, until in orphans.items():
        first = min(p.at for p in polls if p.account == acc and p.at > killed_at)
        if (first - until).total_seconds() > interval + 3:
            late.append(f"{acc}: lease ended {until.time()}, polled {first.time()}")
    assert not early, "\n".join(early[:10])
    assert not late, f"{len(late)} orphaned accounts polled late, e.g.\n" + "\n".join(late[:10])

    assert not (dup := double_polls(polls, interval)), (
        f"{len(dup)} double polls, e.g.\n" + "\n".join(dup[:15])
    )
    assert len(victim_polls) > 0
    assert_alerts_once(tmp_path / "outbox", crisis | extra)
    assert_outbox_clean(pg_url)
    stored = sql(pg_url, "SELECT account_id, external_id FROM items")
    assert len(stored) == len(events) == len(set(stored))


def as_aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.mark.slow
def test_daemon_killed_mid_cycle_and_restarted_loses_and_repeats_nothing(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'pw.db'}"
    accounts = 60
    now = datetime.now(UTC)
    crisis = set(range(0, accounts, 6))
    events = [comment(now - timedelta(minutes=5), i, f"crisis-{i}", CRISIS) for i in crisis]
    events += [
        comment(now - timedelta(minutes=4), i, f"hello-{i}", "Lovely photos, thank you")
        for i in range(accounts)
    ]
    events += [  # arriving while the daemon is down or restarting
        comment(now + timedelta(seconds=4), i, f"later-{i}", CRISIS) for i in (1, 31, 59)
    ]
    write_events(tmp_path / "events.jsonl", events)
    crisis |= {1, 31, 59}
    # 50 ms per poll: one cycle of 60 accounts takes over 3 s
    config = write_config(tmp_path, db_url, accounts, poll_interval="3s", delay=0.05)

    with workers(config, 1, tmp_path, tag="first") as ws:
        wait_until(lambda: len(ws[0].polls()) >= 20, 60, "the first cycle under way")
        ws[0].kill()
        before = len(ws[0].polls())
    assert before < accounts, "the daemon finished its cycle before it was killed"

    with workers(config, 1, tmp_path, tag="second") as ws:
        wait_until(
            lambda: sql(db_url, "SELECT count(*) FROM items")[0][0] == len(events)
            and alerts_done(db_url, tmp_path / "outbox", crisis),
            60,
            "every event stored and every alert sent after the restart",
        )
        assert ws[0].stop() == 0, ws[0].text()[-3000:]

    stored = sql(db_url, "SELECT account_id, external_id FROM items")
    expected = {(e["account"], e["id"]) for e in events}
    assert sorted(stored) == sorted(expected)
    assert_alerts_once(tmp_path / "outbox", crisis)
    assert_outbox_clean(db_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_started_together_on_a_fresh_database_all_run(tmp_path: Path, pg_url: str) -> None:
    """IT starts all workers at once after `db upgrade` (or restarts them after adding a
    school or an account): each registers the configured schools and accounts at start.

    The race is made deterministic by holding a SHARE lock on `schools` until both
    workers wait on it (reading is allowed, inserting waits), then releasing it.
    """
    config = write_config(tmp_path, pg_url, 5, poll_interval="1m")
    engine = sa.create_engine(pg_url)
    try:
        with workers(config, 2, tmp_path, staggered=False) as ws:
            with engine.begin() as conn:
                conn.execute(sa.text("LOCK TABLE schools IN SHARE MODE"))
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:  # both are waiting, or give up waiting
                    # both wait on `schools`, or one on it and one on a registry lock
                    on_table, advisory = sql(
                        pg_url,
                        "SELECT count(DISTINCT pid) FILTER (WHERE relation = "
                        "'schools'::regclass), count(DISTINCT pid) FILTER (WHERE locktype = "
                        "'advisory') FROM pg_locks WHERE NOT granted",
                    )[0]
                    if on_table + min(advisory, 1) >= 2 or any(
                        w.proc.poll() is not None for w in ws
                    ):
                        break
                    time.sleep(0.1)
            wait_until(
                lambda: all(w.worker_id or w.proc.poll() is not None for w in ws),
                60,
                "both workers running or exited",
            )
            time.sleep(1)
            dead = [w for w in ws if w.proc.poll() is not None]
            assert not dead, "a worker died at start:\n" + dead[0].text()[-2500:]
            for w in ws:
                assert w.stop() == 0
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_batch_that_outlives_its_lease_is_not_polled_twice(tmp_path: Path, pg_url: str) -> None:
    """A slow API (or a loaded machine) makes a claim batch last longer than the lease.

    Worker 1 claims a batch (half of the 40 accounts, alone) and needs 10 s to poll it
    (500 ms each) with a 5 s lease; worker 2 starts after that lease would have run
    out, while worker 1 is still polling.
    Each account must still be polled once: the lease renewed while the batch runs, or
    the late owner dropping what it no longer holds.
    """
    accounts = 40
    now = datetime.now(UTC)
    events = [comment(now - timedelta(minutes=1), i, f"hello-{i}", "Great game!")
              for i in range(accounts)]
    write_events(tmp_path / "events.jsonl", events)
    config = write_config(tmp_path, pg_url, accounts, poll_interval="60s", lease="5s", delay=0.5)
    with workers(config, 1, tmp_path, tag="first") as first:
        wait_until(
            lambda: sql(pg_url, "SELECT count(*) FROM accounts WHERE lease_owner IS NOT NULL")[0][0]
            > 0,
            60,
            "the first worker's claim",
        )
        until = max(as_aware(r[0]) for r in sql(pg_url, "SELECT lease_until FROM accounts "
                                                       "WHERE lease_until IS NOT NULL"))
        time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.5)
        assert not first[0].polls(), "the first batch finished within its lease: no overrun"
        with workers(config, 1, tmp_path, tag="second") as second:
            ws = first + second
            wait_until(
                lambda: sql(pg_url, "SELECT count(*) FROM accounts WHERE last_poll_at IS NULL "
                            "OR lease_owner IS NOT NULL")[0][0] == 0,
                90,
                "every account polled and no lease held",
            )
            time.sleep(2)
            for w in ws:
                w.stop()  # each finishes the batch it holds (SIGTERM), then exits
            polls = all_polls(ws)
    counts = Counter(p.account for p in polls)
    twice = sorted(acc for acc, n in counts.items() if n > 1)
    assert not twice, (
        f"{len(twice)} of {accounts} accounts polled by both workers in one interval: "
        + ", ".join(double_polls(polls, 60)[:5])
    )
    assert sql(pg_url, "SELECT count(*) FROM items")[0][0] == accounts


# --------------------------------------------------------------------------- in-process


def rss_bytes() -> int:
    """Current resident set size (ru_maxrss is only the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_a_simulated_day_with_500_accounts_does_not_grow_memory(tmp_path: Path) -> None:
    accounts = 500
    interval = timedelta(hours=1)  # 24 cycles of 500 polls: ~30 s on an idle 2-core machine
    start = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    cycles = int(timedelta(hours=24) / interval)
    events = []
    for c in range(cycles):  # a steady trickle: a few comments per cycle, a crisis now and then
        at = start + c * interval + timedelta(minutes=1)
        for k in range(4):
            i = (c * 37 + k * 101) % accounts
            text = CRISIS if k == 0 and c % 3 == 0 else f"Comment {c}-{k}, see you at the game"
            events.append(comment(at, i, f"e{c}-{k}", text))
    write_events(tmp_path / "events.jsonl", events)
    config = parse_config(many_accounts(base_config(tmp_path, poll_interval="1h"), accounts))

    samples: list[int] = []
    warm_up = cycles // 4  # six simulated hours: rule packs, caches and pools are loaded
    with time_machine.travel(start, tick=False) as traveller:
        service = Service(config)
        try:
            for c in range(cycles):
                traveller.shift(interval)
                report, _sent = service.poll_once()
                assert len(report.outcomes) >= accounts, f"cycle {c}: not every account polled"
                assert not [o for o in report.outcomes if o.error], f"cycle {c}"
                service.escalate()
                service.digest_due()
                if c in (warm_up, cycles - 1):
                    gc.collect()
                samples.append(rss_bytes())
            with service.sessions() as s:
                items = s.scalar(sa.select(sa.func.count()).select_from(StoredItem))
                urgent = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(Notification)
                    .where(Notification.kind == "urgent", Notification.escalation_step == 0)
                )
                polled = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(Account)
                    .where(Account.last_poll_at == start + cycles * interval)
                )
        finally:
            service.close()

    assert items == len(events)
    assert urgent == len([e for e in events if e["text"] == CRISIS])
    assert polled == accounts
    warm = samples[warm_up]
    end = samples[-1]
    mib = [round(s / 2**20, 1) for s in samples]
    print(f"RSS MiB per cycle: {mib}")
    assert end <= warm * 1.10, f"RSS grew {end / warm - 1:.1%} after warm-up (MiB): {mib}"


@pytest.mark.postgres
def test_digests_and_escalations_run_once_across_two_workers(
    tmp_path: Path, pg_url: str
) -> None:
    t0 = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # 05:30 in Toronto
    events = [
        comment(t0 - timedelta(minutes=10), 0, "c1", CRISIS),
        comment(t0 - timedelta(minutes=9), 1, "c2", "call me at 705-555-0143 about the carpool"),
        comment(t0 - timedelta(minutes=8), 2, "c3", "email me at kid.north@gmail.com"),
    ]
    write_events(tmp_path / "events.jsonl", events)
    config = parse_config(many_accounts(
        base_config(tmp_path, db_url=pg_url), 3,
        owners=lambda i: [OWNER if i % 2 else "office@central.example"]))

    def together(*calls: Callable[[], object]) -> None:
        barrier = threading.Barrier(len(calls))
        errors: list[BaseException] = []

        def run(call: Callable[[], object]) -> None:
            try:
                barrier.wait(10)
                call()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors

    with time_machine.travel(t0, tick=False) as traveller:
        a, b = Service(config), Service(config)
        try:
            together(a.poll_once, b.poll_once)
            traveller.shift(timedelta(hours=2))  # 07:30 in Toronto: digest time, escalation due
            for _ in range(3):
                together(a.digest_due, b.digest_due, a.escalate, b.escalate)
            traveller.shift(timedelta(minutes=40))  # next rung (board contacts: none)
            together(a.digest_due, b.digest_due, a.escalate, b.escalate)
        finally:
            a.close()
            b.close()

    sent = Counter(
        (kind, to)
        for kind, to in sql(
            pg_url, "SELECT kind, recipient FROM notifications WHERE status = 'sent'"
        )
    )
    assert sent == {
        ("urgent", PRINCIPAL): 1,
        ("urgent", "vp@central.example"): 1,  # the escalation, once
        ("digest", OWNER): 1,
        ("digest", "office@central.example"): 1,
        ("summary", PRINCIPAL): 1,
        ("summary", "principal@north.example"): 1,  # a school without accounts: summary only
    }, sent
    assert_outbox_clean(pg_url)
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == sum(sent.values())
    recipients = Counter(
        str(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"])
        for f in files
    )
    assert recipients == {PRINCIPAL: 2, "vp@central.example": 1, OWNER: 1,
                          "office@central.example": 1, "principal@north.example": 1}


class BatchClock:
    """Each reading is `step` later than the one before: the engine reads the clock once
    per claim batch, so `step` is how long a batch of 200 accounts takes."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.step = timedelta(0)

    def __call__(self) -> datetime:
        now, self.now = self.now, self.now + self.step
        return now


def test_accounts_beyond_the_first_claim_batch_are_polled_every_interval(tmp_path: Path) -> None:
    """One worker, 250 accounts: a cycle is two claim batches (CLAIM_BATCH = 200).

    The first cycle is slow (a first poll fetches history: 60 s per batch), the next
    ones fast (10 s).  Each account must be polled at every 5-minute tick; an account of
    the second batch must not skip a tick (a 9-minute gap) because its last poll was
    stamped with the slow batch's start, 60 s after the tick.
    """
    accounts = 250
    write_events(tmp_path / "events.jsonl", [])
    data = many_accounts(base_config(tmp_path, poll_interval="5m"), accounts)
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    clock = BatchClock(start)
    service = Service(parse_config(data), clock=clock)
    try:
        missed = {}
        for tick in range(4):
            clock.now = start + tick * timedelta(minutes=5)
            clock.step = timedelta(seconds=60 if tick == 0 else 10)
            polled = {o.account_id for o in service.poller.poll_cycle().outcomes}
            if len(polled) != accounts:
                missed[tick] = accounts - len(polled)
    finally:
        service.close()
    assert not missed, f"accounts not polled at tick (tick: how many): {missed}"
