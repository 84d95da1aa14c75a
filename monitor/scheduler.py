"""The daemon: APScheduler runs the poll tick, outbox drain, escalation and digest checks.

Each process schedules its own ticks in memory (APScheduler's job store is not meant
to be shared between processes); what must happen once is decided in the database
(leases for accounts, `job_runs` for digests, advisory locks for escalation), so any
number of workers on one PostgreSQL database can run this same loop.

Signals: SIGTERM/SIGINT stop claiming accounts, let the batch in progress finish,
flush the outbox and exit 0; SIGHUP reloads the configuration (an invalid one is
logged and the running one kept).  Under systemd (Type=notify) it reports READY,
RELOADING, STOPPING and watchdog pings.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import ConfigError, load_config
from monitor.locks import sqlite_daemon_lock
from monitor.sdnotify import notify, watchdog_interval
from monitor.service import Service
from monitor.timeutil import utcnow

log = logging.getLogger(__name__)

OUTBOX_INTERVAL = timedelta(seconds=30)
DIGEST_CHECK_INTERVAL = timedelta(minutes=1)
ESCALATION_INTERVAL = timedelta(minutes=1)
RETENTION_CHECK_INTERVAL = timedelta(hours=1)  # the purge itself runs once a day


class Daemon:
    def __init__(self, service: Service, config_path: Path | None = None) -> None:
        self.service = service
        self.config_path = config_path
        self.scheduler = BlockingScheduler(timezone=service.config.schedule.timezone)
        self._lock = threading.Lock()  # one job body at a time: no two polls overlap
        self._stopping = threading.Event()

    def _guarded(self, name: str, fn: Callable[[], object]) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            try:
                fn()
            except Exception:  # one failing tick must not stop the daemon
                log.exception("%s failed; the next tick will try again", name)

    def poll_tick(self) -> None:
        self._guarded("poll", self._poll)

    def _poll(self) -> None:
        self.service.heartbeat()
        report, sent = self.service.poll_once()
        if report.outcomes or sent.sent:
            log.info(
                "poll: %d accounts, %d new items, %d alerts sent, %d failed",
                len(report.outcomes),
                report.new_items,
                len(sent.sent),
                len(sent.failed),
            )

    def outbox_tick(self) -> None:
        self._guarded("outbox", lambda: self.service.outbox.drain())

    def escalation_tick(self) -> None:
        self._guarded("escalation", lambda: self.service.escalate())

    def retention_tick(self) -> None:
        self._guarded("retention", self._purge)

    def _purge(self) -> None:
        counts = self.service.purge_due()
        if counts:
            log.info("retention purge: %s", ", ".join(f"{n} {k}" for k, n in counts.items()))

    def digest_tick(self) -> None:
        self._guarded("digest", lambda: self.service.digest_due())

    def schedule(self) -> None:
        cfg = self.service.config.schedule
        start = utcnow()
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}

        def every(delta: timedelta) -> IntervalTrigger:
            return IntervalTrigger(seconds=delta.total_seconds())

        self.scheduler.add_job(
            self.poll_tick,
            every(cfg.poll_interval),
            id="poll",
            next_run_time=start,
            replace_existing=True,
            **common,
        )
        self.scheduler.add_job(
            self.outbox_tick, every(OUTBOX_INTERVAL), id="outbox", replace_existing=True, **common
        )
        self.scheduler.add_job(
            self.escalation_tick,
            every(ESCALATION_INTERVAL),
            id="escalation",
            replace_existing=True,
            **common,
        )
        # Checked every minute (and once at start) rather than a cron at digest_time, so a
        # daemon that was down at digest_time catches up on start, in each school's zone.
        self.scheduler.add_job(
            self.digest_tick,
            every(DIGEST_CHECK_INTERVAL),
            id="digest",
            next_run_time=start,
            replace_existing=True,
            **common,
        )
        self.scheduler.add_job(
            self.retention_tick,
            every(RETENTION_CHECK_INTERVAL),
            id="retention",
            next_run_time=start,
            replace_existing=True,
            **common,
        )
        ping = watchdog_interval()
        if ping:
            self.scheduler.add_job(
                lambda: notify("WATCHDOG=1"),
                "interval",
                seconds=ping,
                id="watchdog",
                replace_existing=True,
                **common,
            )

    def reload(self) -> None:
        """SIGHUP: swap in a new configuration, or keep the old one if it is invalid."""
        notify("RELOADING=1")
        try:
            config = load_config(self.config_path)
            with self._lock:
                new = Service(config, engine=self.service.db)
                old, self.service = self.service, new
                old.poller.close()
            self.schedule()
            log.info(
                "configuration reloaded: %d schools, %d accounts",
                len(config.schools),
                len(config.accounts),
            )
        except ConfigError as exc:
            log.error("configuration NOT reloaded, keeping the running one:\n%s", exc)
        except Exception:
            log.exception("configuration NOT reloaded, keeping the running one")
        finally:
            notify("READY=1")

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the work in progress", signal.Signals(signum).name)
        notify("STOPPING=1")
        self._stopping.set()
        self.service.poller.stopping.set()
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    def _hangup(self, _signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    def run(self) -> None:
        lock = sqlite_daemon_lock(self.service.config.database.url)
        web = None
        if self.service.config.web.enabled and self.service.signer is not None:
            from monitor.web import WebServer

            web = WebServer(self.service)
            web.start()
        metrics_cfg = self.service.config.metrics
        if metrics_cfg.port:
            from monitor.metrics import start_metrics_server

            start_metrics_server(metrics_cfg.port, addr=metrics_cfg.listen)
            log.info("metrics on http://%s:%d/metrics", metrics_cfg.listen, metrics_cfg.port)
        self.schedule()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self._hangup)
        log.info(
            "policywatch running: %d accounts, poll every %s, worker %s",
            len(self.service.config.accounts),
            self.service.config.schedule.poll_interval,
            self.service.poller.worker_id,
        )
        notify("READY=1")
        try:
            self.scheduler.start()
        finally:
            with self._lock:
                sent = self.service.outbox.drain()  # flush what the last cycle queued
            if sent.sent:
                log.info("flushed %d notifications before stopping", len(sent.sent))
            if web is not None:
                web.stop()
            self.service.close()
            if lock is not None:
                lock.close()
            log.info("policywatch stopped")
