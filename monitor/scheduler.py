"""The daemon: APScheduler runs the poll tick, the outbox drain and the digest check.

Each process schedules its own ticks in memory (APScheduler's job store is not
meant to be shared between processes); what must happen once per day is claimed
in the database (`job_runs`), not in the scheduler.  SIGTERM and SIGINT stop the
scheduler after the job in progress finishes.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.service import Service
from monitor.timeutil import utcnow

log = logging.getLogger(__name__)

OUTBOX_INTERVAL = timedelta(seconds=30)
DIGEST_CHECK_INTERVAL = timedelta(minutes=1)
ESCALATION_INTERVAL = timedelta(minutes=1)


class Daemon:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.scheduler = BlockingScheduler(timezone=service.config.schedule.timezone)
        self._lock = threading.Lock()  # one job body at a time: no two polls overlap

    def _guarded(self, name: str, fn: object) -> None:
        assert callable(fn)
        with self._lock:
            try:
                fn()
            except Exception:  # one failing tick must not stop the daemon
                log.exception("%s failed; the next tick will try again", name)

    def poll_tick(self) -> None:
        self._guarded("poll", self._poll)

    def _poll(self) -> None:
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
        self._guarded("outbox", self.service.outbox.drain)

    def escalation_tick(self) -> None:
        self._guarded("escalation", self.service.escalate)

    def digest_tick(self) -> None:
        self._guarded("digest", self.service.digest_due)

    def schedule(self) -> None:
        cfg = self.service.config.schedule
        start = utcnow()
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.scheduler.add_job(
            self.poll_tick,
            IntervalTrigger(seconds=cfg.poll_interval.total_seconds()),
            id="poll",
            next_run_time=start,
            **common,
        )
        self.scheduler.add_job(
            self.outbox_tick,
            IntervalTrigger(seconds=OUTBOX_INTERVAL.total_seconds()),
            id="outbox",
            **common,
        )
        self.scheduler.add_job(
            self.escalation_tick,
            IntervalTrigger(seconds=ESCALATION_INTERVAL.total_seconds()),
            id="escalation",
            **common,
        )
        # Checked every minute (and once at start) rather than a cron at digest_time, so a
        # daemon that was down at digest_time catches up on start, in each school's zone.
        self.scheduler.add_job(
            self.digest_tick,
            IntervalTrigger(seconds=DIGEST_CHECK_INTERVAL.total_seconds()),
            id="digest",
            next_run_time=start,
            **common,
        )

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the job in progress", signal.Signals(signum).name)
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    def run(self) -> None:
        web = None
        if self.service.config.web.enabled and self.service.signer is not None:
            from monitor.web import WebServer

            web = WebServer(self.service)
            web.start()
        self.schedule()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info(
            "policywatch running: %d accounts, poll every %s",
            len(self.service.config.accounts),
            self.service.config.schedule.poll_interval,
        )
        self.scheduler.start()
        self.service.outbox.drain()
        if web is not None:
            web.stop()
        self.service.close()
        log.info("policywatch stopped")
