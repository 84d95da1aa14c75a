"""Scale-out throughput (issue #6): accounts polled per minute with 1, 2 and 3 workers.

Each run starts W `policywatch --verbose run` processes on a fresh PostgreSQL schema
with N replay accounts whose every poll sleeps 50 ms (`options.delay_seconds`, a
distant API on loopback).  `poll_interval = 1s` keeps every account due, so the
workers never run out of work; the rate is the number of "account ... polled by worker"
log lines (one per stored poll) of each worker between its first and last claim batch
inside a measuring window after a warm-up, summed over the workers, per minute.
Polling is I/O-bound, so workers should scale beyond the machine's cores.

Run: .venv/bin/python benchmarks/scale_out.py [--accounts 600] [--workers 1 2 3]
     [--latency 0.05] [--warmup 5] [--window 30]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import _pg_schema_url

POLICYWATCH = str(Path(sys.executable).parent / "policywatch")
POLLED = re.compile(r"^(\S+ \S+) DEBUG monitor\.engine: account \S+ polled by worker \S+$")
RUNNING = "policywatch running:"


def write_config(tmp: Path, db_url: str, accounts: int, latency: float) -> Path:
    events = tmp / "events.jsonl"
    events.write_text("")
    blocks = "".join(
        f"""
[[accounts]]
id = "acct-{i:04d}"
platform = "replay"
handle = "acct{i:04d}"
external_id = "{1000 + i}"
school = "central"
kind = "classroom"
owners = ["owner@central.example"]
replay_file = "{events}"
options = {{ delay_seconds = {latency} }}
"""
        for i in range(accounts)
    )
    config = tmp / "policywatch.toml"
    config.write_text(
        f"""
state_dir = "{tmp / 'state'}"
[database]
url = "{db_url}"
[mail]
sender = "policywatch@board.example"
outbox_dir = "{tmp / 'outbox'}"
[schedule]
poll_interval = "1s"
[workers]
lease = "5m"
[web]
enabled = false
[[schools]]
id = "central"
name = "Central"
principal = "principal@central.example"
staff = ["owner@central.example"]
{blocks}"""
    )
    return config


@contextmanager
def started(config: Path, count: int, tmp: Path) -> Iterator[list[Path]]:
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp / f"worker{n}.log" for n in range(count)]
    handles = [log.open("wb") for log in logs]
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    try:
        for n in range(count):
            procs.append(
                subprocess.Popen(
                    [POLICYWATCH, "--verbose", "--config", str(config), "run"],
                    stdout=subprocess.DEVNULL,
                    stderr=handles[n],
                    env=env,
                )
            )
            # one at a time until registered: workers started together on an empty
            # schema race to insert the schools (see tests/test_scale_out.py)
            wait_for(lambda n=n: RUNNING in logs[n].read_text(errors="replace"), 60)
        yield logs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        for handle in handles:
            handle.close()


def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("a worker did not start; see its log")
        time.sleep(0.1)


def poll_times(log: Path) -> list[float]:
    times = []
    for line in log.read_text(errors="replace").splitlines():
        if m := POLLED.match(line):
            times.append(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return sorted(times)


def worker_rate(times: list[float]) -> float:
    """Polls per second of one worker, measured from burst end to burst end.

    The engine polls a whole claim batch (200 accounts) before storing it, so the log
    lines come in bursts; counting lines in a fixed window would be quantised by 200.
    """
    ends = [a for a, b in itertools.pairwise(times) if b - a > 1.0]  # complete bursts only
    if len(ends) < 2:
        raise SystemExit("window too short: fewer than two claim batches per worker")
    done = sum(1 for t in times if ends[0] < t <= ends[-1])
    return done / (ends[-1] - ends[0])


def measure(workers: int, accounts: int, latency: float, warmup: float, window: float) -> float:
    schema = _pg_schema_url()
    db_url = next(schema)
    try:
        with tempfile.TemporaryDirectory(prefix="pw-scale-") as tmp_name:
            tmp = Path(tmp_name)
            config = write_config(tmp, db_url, accounts, latency)
            with started(config, workers, tmp) as logs:
                time.sleep(warmup)
                t1 = time.time()
                time.sleep(window)
                t2 = time.time()
                rate = sum(
                    worker_rate([t for t in poll_times(log) if t1 <= t < t2]) for log in logs
                )
            return rate * 60
    finally:
        for _ in schema:  # drops the schema
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--window", type=float, default=30)
    args = parser.parse_args()
    print(
        f"{args.accounts} replay accounts, {args.latency * 1000:.0f} ms per poll, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"window {args.window:.0f} s after {args.warmup:.0f} s warm-up"
    )
    rates: dict[int, float] = {}
    for w in args.workers:
        rates[w] = measure(w, args.accounts, args.latency, args.warmup, args.window)
        print(f"{w} worker(s): {rates[w]:8.0f} accounts/minute", flush=True)
    base = rates.get(1) or next(iter(rates.values()))
    print("speed-up: " + ", ".join(f"{w} workers x{r / base:.2f}" for w, r in rates.items()))
    print(f"ideal (no overhead, one worker): {60 / args.latency:.0f} accounts/minute per worker")


if __name__ == "__main__":
    main()
