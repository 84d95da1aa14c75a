"""Prometheus metrics: a dedicated registry, the helper functions, the HTTP endpoint."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY as GLOBAL_REGISTRY
from prometheus_client import generate_latest

from monitor import metrics as m
from tests.smtpd_support import free_port


def test_helpers_feed_a_dedicated_registry() -> None:
    metrics = m.Metrics()
    assert metrics.registry is not GLOBAL_REGISTRY
    m.observe_poll("x", "ok", metrics)
    m.observe_poll("x", "rate_limited", metrics)
    m.observe_items("x", 3, metrics)
    m.observe_finding("9.0", "urgent", metrics)
    t = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    m.observe_alert_latency(t, t + timedelta(seconds=40), metrics)
    m.observe_api_error("facebook", "auth", metrics)
    m.set_outbox_depth(2, metrics)
    value = metrics.registry.get_sample_value
    assert value("policywatch_polls_total", {"platform": "x", "outcome": "ok"}) == 1
    assert value("policywatch_items_total", {"platform": "x"}) == 3
    assert value("policywatch_findings_total", {"section": "9.0", "severity": "urgent"}) == 1
    assert value("policywatch_alert_latency_seconds_bucket", {"le": "60.0"}) == 1
    assert value("policywatch_alert_latency_seconds_bucket", {"le": "30.0"}) == 0
    assert value("policywatch_api_errors_total", {"platform": "facebook", "kind": "auth"}) == 1
    assert value("policywatch_outbox_depth") == 2
    assert b"policywatch_polls_total" not in generate_latest(GLOBAL_REGISTRY)


def test_metrics_server_serves_the_registry_on_loopback() -> None:
    metrics = m.Metrics()
    m.observe_poll("replay", "ok", metrics)
    port = free_port()
    server, thread = m.start_metrics_server(port, metrics.registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert 'policywatch_polls_total{outcome="ok",platform="replay"} 1.0' in body
