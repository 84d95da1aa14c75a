"""Prometheus metrics: is monitoring happening, and how fast do alerts reach people?

Section 9 makes the time from a student's crisis post to a principal's inbox the
number that matters; the alert latency histogram measures exactly that (item
first seen -> notification sent).  Collectors live in a dedicated registry, not
prometheus-client's global one, so tests and several Service objects in one
process do not collide, and nothing but ours is exported.

Labels are platforms, outcomes, sections and severities: never account handles,
recipients or text, so cardinality stays small and nothing personal is exported.
Call sites (wired by the engine/outbox owner):

- `observe_poll(platform, outcome)` once per account poll (outcome "ok" or the
  account's health: "auth", "rate_limited", "error" ...);
- `observe_items(platform, n)` with the number of new items stored;
- `observe_finding(section, severity)` per finding recorded;
- `observe_alert_latency(first_seen, sent_at)` when an urgent notification is sent;
- `observe_api_error(platform, kind)` when a connector call fails;
- `set_outbox_depth(n)` after each drain (or `refresh_outbox_depth(session)`).
"""

from __future__ import annotations

import threading
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.db.tables import Notification
from monitor.timeutil import as_utc

# seconds: an alert should arrive within one poll interval (5 min) plus sending
LATENCY_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


class Metrics:
    """All collectors, registered in one `CollectorRegistry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "policywatch_polls", "Account polls by outcome.", ["platform", "outcome"], registry=r
        )
        self.items = Counter("policywatch_items", "New items stored.", ["platform"], registry=r)
        self.findings = Counter(
            "policywatch_findings",
            "Findings recorded by policy section and severity.",
            ["section", "severity"],
            registry=r,
        )
        self.alert_latency = Histogram(
            "policywatch_alert_latency_seconds",
            "Seconds from an item being first seen to its alert being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_errors = Counter(
            "policywatch_api_errors", "Platform API errors.", ["platform", "kind"], registry=r
        )
        self.outbox_depth = Gauge(
            "policywatch_outbox_depth", "Notifications waiting to be sent.", registry=r
        )


METRICS = Metrics()
REGISTRY = METRICS.registry


def observe_poll(platform: str, outcome: str, metrics: Metrics = METRICS) -> None:
    metrics.polls.labels(platform=platform, outcome=outcome).inc()


def observe_items(platform: str, count: int, metrics: Metrics = METRICS) -> None:
    if count:
        metrics.items.labels(platform=platform).inc(count)


def observe_finding(section: str, severity: str, metrics: Metrics = METRICS) -> None:
    metrics.findings.labels(section=section, severity=severity).inc()


def observe_alert_latency(
    first_seen: datetime, sent_at: datetime, metrics: Metrics = METRICS
) -> None:
    seconds = (as_utc(sent_at) - as_utc(first_seen)).total_seconds()
    metrics.alert_latency.observe(max(seconds, 0.0))


def observe_api_error(platform: str, kind: str, metrics: Metrics = METRICS) -> None:
    metrics.api_errors.labels(platform=platform, kind=kind).inc()


def set_outbox_depth(depth: int, metrics: Metrics = METRICS) -> None:
    metrics.outbox_depth.set(depth)


def refresh_outbox_depth(session: Session, metrics: Metrics = METRICS) -> int:
    """Count pending notifications and publish the number."""
    depth = (
        session.scalar(
            select(func.count()).select_from(Notification).where(Notification.status == "pending")
        )
        or 0
    )
    set_outbox_depth(depth, metrics)
    return depth


def start_metrics_server(
    port: int, registry: CollectorRegistry = REGISTRY, addr: str = "127.0.0.1"
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on loopback by default (put a proxy in front to expose it)."""
    return start_http_server(port, addr=addr, registry=registry)
