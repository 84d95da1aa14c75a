"""Wires configuration, storage, connectors, rules and the outbox into one service object.

The CLI, the daemon and the tests all build a `Service`; a test can hand in its own
clock (time-machine) or mailer, but everything else is the real thing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from monitor.acklinks import AckSigner
from monitor.actions import acknowledge, resolve
from monitor.config import Config
from monitor.db.session import ensure_schema, make_engine, session_factory
from monitor.db.tables import JobRun
from monitor.digest import DigestPlanner
from monitor.engine import CycleReport, PollEngine
from monitor.escalation import Escalator
from monitor.evaluate import Evaluator
from monitor.outbox import Outbox, SendReport
from monitor.retention import purge
from monitor.rules import RuleEngine
from monitor.timeutil import utcnow
from reports.mailer import Mailer


class Service:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        rules: RuleEngine | None = None,
        mailer: Mailer | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = engine or make_engine(config.database.url)
        ensure_schema(self.db)
        self.sessions = session_factory(self.db)
        self.rules = rules or RuleEngine.from_settings(config.rules, base_dir=config.base_dir)
        mail_domain = config.mail.sender.rsplit("@", 1)[1]
        self.evaluator = Evaluator(config, self.rules, mail_domain)
        self.poller = PollEngine(config, self.sessions, self.evaluator, clock)
        self.poller.sync()
        self.signer = AckSigner.from_config(config) if config.web.enabled else None
        self.outbox = Outbox(
            config, self.sessions, mailer or Mailer.from_config(config.mail), clock, self.signer
        )
        self.digests = DigestPlanner(config, self.sessions, clock, mail_domain)
        self.escalator = Escalator(config, self.sessions, clock, mail_domain)

    def poll_once(self, *, force: bool = False) -> tuple[CycleReport, SendReport]:
        """One monitoring cycle: poll, store, evaluate, then send what it queued.

        Repeats stay noticed across restarts and workers: before evaluating a claim,
        the poll engine replays its accounts' stored comments into the repetition
        window (`PollEngine._pre_evaluate`).
        """
        report = self.poller.poll_cycle(force=force)
        report.outcomes.extend(self.poller.check_staleness())
        return report, self.outbox.drain()

    def escalate(self) -> SendReport:
        """Climb the ladder for unacknowledged urgent alerts, then send."""
        self.escalator.run()
        return self.outbox.drain()

    def acknowledge(self, finding_id: int, by: str) -> list[int]:
        with self.sessions.begin() as session:
            return [f.id for f in acknowledge(session, finding_id, by, self.clock())]

    def resolve(self, finding_id: int, action: str, note: str, by: str | None = None) -> None:
        with self.sessions.begin() as session:
            resolve(session, finding_id, action, note, by, self.clock())

    def digest_now(self, recipient: str | None = None) -> SendReport:
        self.digests.queue_now(recipient)
        return self.outbox.drain()

    def digest_due(self) -> SendReport:
        self.digests.queue_due()
        return self.outbox.drain()

    def heartbeat(self) -> None:
        """Record that this worker is alive (shown by `policywatch status`)."""
        with self.sessions.begin() as session:
            row = session.get(JobRun, ("worker", self.poller.worker_id))
            if row is None:
                session.add(JobRun(job="worker", key=self.poller.worker_id, ran_at=self.clock()))
            else:
                row.ran_at = self.clock()

    def purge_due(self) -> dict[str, int] | None:
        """Retention, once a day across all workers (claimed in job_runs)."""
        now = self.clock()
        day = now.astimezone(ZoneInfo(self.config.schedule.timezone)).date().isoformat()
        if not self.digests.claim("retention", day, now):
            return None
        with self.sessions.begin() as session:
            return purge(session, self.config.retention, now)

    def close(self) -> None:
        self.poller.close()
        self.db.dispose()
