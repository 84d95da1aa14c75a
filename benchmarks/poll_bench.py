"""Polling throughput, HTTP cost and memory (issue: connectors).

1,000 and 10,000 accounts against the loopback fakes of the X and Graph APIs
(`tests/fakes`) answering every HTTP request after 50 ms.  For each platform (X,
Facebook, and a half-and-half mix) it measures:

* the wall time of the first (cold) cycle and of a quiet cycle five minutes later
  (nothing new, settings not due),
* HTTP requests per account in each cycle, counted by the fake server,
* peak resident memory (``ru_maxrss``) of the process that polls,

once through the connectors alone (`Connector.poll_many`) and once through the full
engine cycle (`Service.poll_once(force=True)` on SQLite: poll, store, evaluate, outbox).

Targets: 10,000 accounts in <= 60 s; <= 0.1 HTTP requests per Facebook page and
<= 3 per X account in a quiet cycle; peak memory <= 300 MB.

Every scenario runs in a fresh process, so its peak RSS is its own; the fake servers
run in another process, so neither their CPU (GIL) nor their memory is counted
against the poller, but they share this machine's cores.

Run: .venv/bin/python benchmarks/poll_bench.py [--accounts 1000 10000] [--latency-ms 50]
     [--platform x facebook mix] [--engine | --no-engine] [--profile]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

X_TOKEN_ENV = "PW_BENCH_X_BEARER"
FB_TOKEN_ENV = "PW_BENCH_FB_TOKEN"
SCHOOLS = 50
QUIET_AFTER = timedelta(minutes=5)  # the default poll interval
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0
TARGET_REQUESTS = {"x": 3.0, "facebook": 0.1}
PLATFORMS = {"x": ("x",), "facebook": ("facebook",), "mix": ("x", "facebook")}


# ----------------------------------------------------------------------------- data
def x_user_id(i: int) -> str:
    return str(10_000_000 + i)


def fb_page_id(i: int) -> str:
    return str(50_000_000 + i)


def split(platform: str, accounts: int) -> dict[str, int]:
    """How many accounts of each platform a scenario polls (the mix: half and half)."""
    names = PLATFORMS[platform]
    return {name: accounts // len(names) for name in names}


def populate_x(api: Any, count: int, now: datetime) -> None:
    """Quiet school accounts: 0-3 own posts this week (threads under watch), a reply in
    the first thread, a mention on every other account."""
    from datetime import timedelta as td

    api.add_user("9000", "sam_parent", "Sam Parent")
    next_id = 1_000_000_000
    for i in range(count):
        uid = x_user_id(i)
        api.add_user(uid, f"class{i}", f"Class {i}", protected=False, description="Our class",
                     location="Ontario", url="", pinned_tweet_id="", verified_type="none")
        roots = []
        for n in range(i % 4):
            next_id += 1
            api.add_tweet(str(next_id), uid, f"Our week in class, day {n}",
                          now - td(days=3 - n, minutes=i % 60))
            roots.append(str(next_id))
        if roots:
            next_id += 1
            api.add_tweet(str(next_id), "9000", "Lovely work, thank you!",
                          now - td(hours=2, minutes=i % 60), conversation_id=roots[0],
                          replied_to=roots[0], in_reply_to_user_id=uid)
        if i % 2 == 0:
            next_id += 1
            api.add_tweet(str(next_id), "9000", f"@class{i} see you at the concert",
                          now - td(hours=5), mentions=(uid,))


def populate_graph(api: Any, count: int, now: datetime) -> None:
    """Quiet pages: two posts in the last day with a comment each (a reply on every
    third page) and a tagged post on every fifth page."""
    t = int(now.timestamp())
    parent = {"id": "9001", "name": "Sam Parent"}
    for i in range(count):
        page = fb_page_id(i)
        api.add_page(page, name=f"Class {i}")
        for n in range(2):
            post = f"{page}_{n}"
            api.add_post(page, post, t - 20 * 3600 + n * 3600 + i % 600, "Our day in class")
            api.add_comment(page, post, f"{post}_c", t - 10 * 3600 + i % 600,
                            "Thank you for sharing!", parent)
            if i % 3 == 0 and n == 0:
                api.add_comment(page, post, f"{post}_r", t - 9 * 3600 + i % 600,
                                "Thanks for reading", {"id": page, "name": f"Class {i}"},
                                parent=f"{post}_c")
        if i % 5 == 0:
            api.add_tagged(page, f"77{page}", t - 4 * 3600, "Proud of our class",
                           {"id": "9002", "name": "A Neighbour"})


def serve_fakes(conn: Connection, counts: dict[str, int], latency: float,
                now: datetime) -> None:
    """The fake API process: start, populate, then answer `count` and `stop` commands."""
    from tests.fakes.graph_api import FakeGraphAPI
    from tests.fakes.x_api import FakeXApi

    fakes: dict[str, Any] = {}
    if counts.get("x"):
        x = FakeXApi(latency=latency, record=False)
        populate_x(x, counts["x"], now)
        fakes["x"] = x.start()
    if counts.get("facebook"):
        graph = FakeGraphAPI(latency=latency, record=False)
        populate_graph(graph, counts["facebook"], now)
        fakes["facebook"] = graph.start()
    conn.send({name: getattr(f, "url", None) or f.base_url for name, f in fakes.items()})
    while True:
        command = conn.recv()
        if command == "count":  # requests since the last count
            out = {}
            for name, fake in fakes.items():
                with fake._lock:
                    out[name], fake.request_count = fake.request_count, 0
            conn.send(out)
        else:
            for fake in fakes.values():
                fake.stop()
            conn.send("stopped")
            return


# ----------------------------------------------------------------------------- accounts
def account_dicts(counts: dict[str, int], urls: dict[str, str]) -> list[dict[str, Any]]:
    accounts: list[dict[str, Any]] = []
    for i in range(counts.get("x", 0)):
        school = i % SCHOOLS
        accounts.append({
            "id": f"x{i}", "platform": "x", "handle": f"class{i}", "external_id": x_user_id(i),
            "school": f"s{school}", "kind": "classroom",
            "owners": [f"owner{i}@s{school}.example"],
            "credentials": {"bearer_token_env": X_TOKEN_ENV}, "api_base_url": urls["x"],
        })
    for i in range(counts.get("facebook", 0)):
        school = i % SCHOOLS
        accounts.append({
            "id": f"fb{i}", "platform": "facebook", "handle": f"class{i}",
            "external_id": fb_page_id(i), "school": f"s{school}", "kind": "classroom",
            "owners": [f"owner{i}@s{school}.example"],
            # one system-user token for every page, so their requests share batches
            "credentials": {"page_token_env": FB_TOKEN_ENV}, "api_base_url": urls["facebook"],
        })
    return accounts


def config_dict(tmp: Path, accounts: list[dict[str, Any]]) -> dict[str, Any]:
    """Like tests/conftest.py `base_config`: SQLite, .eml outbox, the accounts above."""
    return {
        "state_dir": str(tmp / "state"),
        "database": {"url": f"sqlite:///{tmp / 'pw.db'}"},
        "mail": {"sender": "policywatch@board.example", "outbox_dir": str(tmp / "outbox")},
        "schedule": {"timezone": "America/Toronto", "poll_interval": "5m",
                     "digest_time": "07:00"},
        "web": {"enabled": False},
        "schools": [{"id": f"s{s}", "name": f"School {s}", "language": "en",
                     "principal": f"principal@s{s}.example",
                     "staff": [f"owner{i}@s{s}.example"
                               for i in range(s, len(accounts), SCHOOLS)]}
                    for s in range(SCHOOLS)],
        "accounts": accounts,
    }


# ----------------------------------------------------------------------------- scenario
@dataclass
class Cycle:
    seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    connector_seconds: dict[str, float] = field(default_factory=dict)  # engine mode only
    errors: int = 0
    items: int = 0


@dataclass
class Result:
    platform: str
    accounts: int
    mode: str
    counts: dict[str, int]
    cold: Cycle
    quiet: Cycle
    rss_start_mb: float
    rss_peak_mb: float
    concurrency: dict[str, int]
    profile: str = ""


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_scenario(conn: Connection, platform: str, accounts: int, mode: str,
                 latency: float, profile: bool, concurrency: dict[str, int]) -> None:
    """One scenario in its own process; sends back a `Result` as a dict."""
    import logging

    logging.disable(logging.WARNING)  # a benchmark; errors are counted, not logged
    from connectors.base import AccountPoll, Connector, ConnectorError, connector_class
    from monitor.config import AccountConfig, parse_config
    from monitor.service import Service
    from tests.fakes.graph_api import TOKEN
    from tests.fakes.x_api import BEARER

    os.environ.pop("CREDENTIALS_DIRECTORY", None)
    os.environ[X_TOKEN_ENV] = BEARER
    os.environ[FB_TOKEN_ENV] = TOKEN
    now = datetime.now(UTC).replace(microsecond=0)
    counts = split(platform, accounts)
    ctx = mp.get_context("spawn")
    fake_conn, child_conn = ctx.Pipe()
    server = ctx.Process(target=serve_fakes, args=(child_conn, counts, latency, now),
                         daemon=True)
    server.start()
    urls = fake_conn.recv()
    rss_start = _peak_mb()
    for name, workers in concurrency.items():  # the engine builds connectors with defaults
        connector_class(name).max_concurrency = workers
    concurrency = {name: connector_class(name).max_concurrency for name in counts}

    def requests_since() -> dict[str, int]:
        fake_conn.send("count")
        result: dict[str, int] = fake_conn.recv()
        return result

    profiler = _AllThreads() if profile else None

    cycles: list[Cycle] = []
    with tempfile.TemporaryDirectory() as d:
        raw_accounts = account_dicts(counts, urls)
        if mode == "connectors":
            configs = [AccountConfig.model_validate(a) for a in raw_accounts]
            connectors: dict[str, Connector] = {n: connector_class(n)() for n in counts}
            cursors: dict[str, dict[str, str]] = {a.id: {} for a in configs}
            for at in (now, now + QUIET_AFTER):
                cycle = Cycle()
                requests_since()
                cpu, start = _cpu(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                with ThreadPoolExecutor(max_workers=len(connectors)) as pool:  # as the engine
                    futures = [
                        pool.submit(connector.poll_many,
                                    [AccountPoll(a, cursors[a.id]) for a in configs
                                     if a.platform == name], at)
                        for name, connector in connectors.items()
                    ]
                    results = {k: v for f in futures for k, v in f.result().items()}
                for account_id, result in results.items():
                    if isinstance(result, ConnectorError):
                        cycle.errors += 1
                    else:
                        cursors[account_id].update(result.new_cursors)
                        cycle.items += len(result.items)
                del results, futures  # as the engine does once stored: not into the next cycle
                if profiler is not None:
                    profiler.disable()
                cycle.seconds = time.perf_counter() - start
                cycle.cpu_seconds = _cpu() - cpu
                cycle.requests = requests_since()
                cycles.append(cycle)
            for connector in connectors.values():
                connector.close()
        else:
            clock_at = [now]
            service = Service(parse_config(config_dict(Path(d), raw_accounts)),
                              clock=lambda: clock_at[0])
            spent: dict[str, float] = {}
            for name in counts:
                _time_poll_many(service.poller.connector(name), name, spent)
            for at in (now, now + QUIET_AFTER):
                clock_at[0] = at
                cycle = Cycle()
                spent.clear()
                requests_since()
                cpu, start = _cpu(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                report, _ = service.poll_once(force=True)
                if profiler is not None:
                    profiler.disable()
                cycle.seconds = time.perf_counter() - start
                cycle.cpu_seconds = _cpu() - cpu
                cycle.requests = requests_since()
                cycle.connector_seconds = dict(spent)
                cycle.errors = sum(1 for o in report.outcomes if o.error)
                cycle.items = report.new_items
                cycles.append(cycle)
            service.close()
    rss_peak = _peak_mb()
    fake_conn.send("stop")
    fake_conn.recv()
    server.join(timeout=10)
    text = profiler.report() if profiler is not None else ""
    outcome = Result(platform, accounts, mode, counts, cycles[0], cycles[1], rss_start,
                     rss_peak, concurrency, text)
    conn.send(asdict(outcome))


class _AllThreads:
    """cProfile in every thread started while enabled (the engine's and connectors' pools).

    Times add up over threads, so a function's cumulative time is thread-seconds.
    """

    def __init__(self) -> None:
        import cProfile

        self._new = cProfile.Profile
        self._lock = threading.Lock()
        self._profiles: list[Any] = []

    def enable(self) -> None:
        main = self._new()
        self._profiles.append(main)
        threading.setprofile(self._thread_started)
        main.enable()

    def _thread_started(self, *_: Any) -> None:
        profile = self._new()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    def disable(self) -> None:
        threading.setprofile(None)
        self._profiles[0].disable()

    def report(self) -> str:
        import io
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(*self._profiles, stream=out)
        out.write("== our code (monitor/, connectors/) by cumulative thread-seconds ==\n")
        stats.sort_stats("cumulative").print_stats(r"/(monitor|connectors)/", 30)
        out.write("== everything by own time ==\n")
        stats.sort_stats("tottime").print_stats(20)
        return out.getvalue()


def _time_poll_many(connector: Any, name: str, spent: dict[str, float]) -> None:
    """Add up the time the engine spends inside `poll_many` (the rest is storage)."""
    original: Callable[..., Any] = connector.poll_many

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    connector.poll_many = timed


def run_in_process(platform: str, accounts: int, mode: str, latency: float,
                   profile: bool, concurrency: dict[str, int]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=run_scenario,
                       args=(child, platform, accounts, mode, latency, profile, concurrency))
    proc.start()
    try:
        result: dict[str, Any] = parent.recv()
    except EOFError:
        raise SystemExit(f"scenario {platform}/{accounts}/{mode} crashed "
                         f"(exit code {proc.exitcode})") from None
    proc.join()
    return result


# ----------------------------------------------------------------------------- report
def per_account(requests: dict[str, int], counts: dict[str, int]) -> dict[str, float]:
    return {name: requests.get(name, 0) / counts[name] for name in counts if counts[name]}


def verdicts(r: dict[str, Any]) -> list[str]:
    misses = []
    if r["accounts"] >= 10_000 and r["cold"]["seconds"] > TARGET_SECONDS:
        misses.append(f"cold {r['cold']['seconds']:.0f}s > 60s")
    if r["accounts"] >= 10_000 and r["quiet"]["seconds"] > TARGET_SECONDS:
        misses.append(f"quiet {r['quiet']['seconds']:.0f}s > 60s")
    for name, value in per_account(r["quiet"]["requests"], r["counts"]).items():
        if value > TARGET_REQUESTS[name]:
            misses.append(f"{name} {value:.2f} req/account")
    if r["rss_peak_mb"] > TARGET_RSS_MB:
        misses.append(f"RSS {r['rss_peak_mb']:.0f} MB")
    if r["cold"]["errors"] or r["quiet"]["errors"]:
        misses.append(f"errors {r['cold']['errors']}/{r['quiet']['errors']}")
    return misses


def fmt_requests(requests: dict[str, int], counts: dict[str, int]) -> str:
    return " ".join(f"{name[:2]}:{v:.3f}" if v < 1 else f"{name[:2]}:{v:.2f}"
                    for name, v in per_account(requests, counts).items())


def fmt_split(cycle: dict[str, Any]) -> str:
    if not cycle["connector_seconds"]:
        return "-"
    polled = max(cycle["connector_seconds"].values())
    return f"{polled:.1f} / {cycle['seconds'] - polled:.1f}"


def print_table(results: Sequence[dict[str, Any]], latency_ms: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"One poll cycle against loopback fakes answering after "
                        f"{latency_ms:g} ms ({os.cpu_count()} cores)")
    for col in ("platform", "accounts", "path", "cold s", "quiet s", "quiet poll/rest s",
                "req/acct cold", "req/acct quiet", "quiet CPU s", "peak RSS MB", "targets"):
        table.add_column(col, justify="left" if col in ("platform", "path", "targets")
                         else "right")
    for r in results:
        misses = verdicts(r)
        table.add_row(
            r["platform"], f"{r['accounts']:,}", r["mode"],
            f"{r['cold']['seconds']:.1f}", f"{r['quiet']['seconds']:.1f}",
            fmt_split(r["quiet"]),
            fmt_requests(r["cold"]["requests"], r["counts"]),
            fmt_requests(r["quiet"]["requests"], r["counts"]),
            f"{r['quiet']['cpu_seconds']:.1f}",
            f"{r['rss_peak_mb']:.0f} ({r['rss_start_mb']:.0f})",
            "met" if not misses else "MISSED: " + "; ".join(misses),
        )
    Console(width=200).print(table)
    print("cold = first cycle (empty cursors, settings read); quiet = 5 min later, nothing new, "
          "settings not due. 'quiet poll/rest s': engine time inside poll_many / storing, "
          "evaluating, claiming and the outbox. peak RSS: ru_maxrss of the polling process "
          "(in brackets: after imports and set-up, before the first cycle).")
    concurrency = {k: v for r in results for k, v in r["concurrency"].items()}
    print("connector concurrency: " + ", ".join(f"{k} {v}" for k, v in concurrency.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--platform", nargs="+", choices=sorted(PLATFORMS),
                        default=["x", "facebook", "mix"],
                        help="scenarios for the connectors alone; mix = half X, half Facebook")
    parser.add_argument("--connectors", action=argparse.BooleanOptionalAction, default=True,
                        help="run the connectors alone (poll_many) (default: on)")
    parser.add_argument("--engine", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the full engine cycle on SQLite (default: on)")
    parser.add_argument("--engine-platform", nargs="+", choices=sorted(PLATFORMS),
                        default=["mix"],
                        help="scenarios for the engine (default: the mix; each platform "
                             "alone adds about 3 minutes at 10,000 accounts)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of each quiet cycle (slower)")
    parser.add_argument("--concurrency", nargs="+", default=[], metavar="PLATFORM=N",
                        help="override a connector's max_concurrency, e.g. x=64 facebook=8")
    args = parser.parse_args()
    concurrency: dict[str, int] = {}
    for spec in args.concurrency:
        name, _, value = spec.partition("=")
        if name not in ("x", "facebook") or not value.isdigit() or int(value) < 1:
            parser.error(f"--concurrency expects x=N or facebook=N, got {spec!r}")
        concurrency[name] = int(value)

    runs = [(platform, "connectors") for platform in args.platform if args.connectors]
    runs += [(platform, "engine") for platform in args.engine_platform if args.engine]
    results = []
    for accounts in args.accounts:
        for platform, mode in runs:
            started = time.perf_counter()
            r = run_in_process(platform, accounts, mode, args.latency_ms / 1000,
                               args.profile, concurrency)
            print(f"{platform:>8} {accounts:>6,} {mode:<10} cold {r['cold']['seconds']:6.1f}s"
                  f"  quiet {r['quiet']['seconds']:6.1f}s  "
                  f"(scenario {time.perf_counter() - started:.0f}s)", flush=True)
            if r["profile"]:
                print(r["profile"])
            results.append(r)
    print_table(results, args.latency_ms)


if __name__ == "__main__":
    main()
