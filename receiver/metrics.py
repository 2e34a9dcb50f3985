"""Prometheus metrics: the families, and how ``GET /metrics`` renders them.

Two kinds of figures:
- **events counted in this process** (requests, mints, failures, webhooks, Kotani calls): the
  module-level counters and histograms below. With ``serve --workers N`` they use
  prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve``), so a
  scrape of any worker sums every worker of that replica; each replica is its own scrape target
  (its ``instance`` label), and PromQL sums across them.
- **state read from the shared database at scrape time** (queue depth and age, dead letters,
  refunds by state, the oldest unsubmitted ``invoice_needed``): a ``Snapshot`` taken by the
  handler, so every replica reports the same truth (alert on ``max()``, not ``sum()``).

Label values are bounded sets (route templates, never paths; error codes, never messages), and
no label ever carries a token, a reference or an amount.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Snapshot", "render"]

INVOICE_REQUESTS = Counter(
    "receiver_invoice_requests_total",
    "generate_invoice_url requests by outcome (minted, reused, refused, unavailable)",
    ["outcome"],
)
MINT_DURATION = Histogram(
    "receiver_mint_duration_seconds",
    "Time for one backend to return a verified invoice",
    ["backend"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
)
BACKEND_FAILURES = Counter(
    "receiver_backend_failures_total",
    "Failed backend attempts by error code",
    ["backend", "code"],
)
BREAKER_OPEN = Gauge(
    "receiver_backend_breaker_open",
    "1 while the backend's circuit breaker skips it",
    ["backend"],
    multiprocess_mode="max",
)
WEBHOOKS = Counter(
    "receiver_webhooks_total",
    "Kotani webhook deliveries by result (accepted, duplicate, rejected)",
    ["result"],
)
KOTANI_CALLS = Counter(
    "receiver_kotani_api_calls_total",
    "Calls to Kotani's API by HTTP status (or error code when no answer came)",
    ["status"],
)
HTTP_RESPONSES = Counter(
    "receiver_http_responses_total",
    "Responses by route template and status",
    ["route", "status"],
)


@dataclass(frozen=True)
class Snapshot:
    """State read from the database for one scrape."""

    queue_depth: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """``(queue, status) -> rows``; queue ``inbox`` | ``outbox``, status ``pending`` | ``dead``."""
    oldest_pending_seconds: Mapping[str, float] = field(default_factory=dict)
    """``queue -> age`` of its oldest pending row (0 when none)."""
    refunds: Mapping[str, int] = field(default_factory=dict)
    """``state -> refunds`` in that state."""
    invoice_needed_oldest_seconds: float = 0.0
    """Age of the oldest ``invoice_needed`` whose invoice is not yet submitted (0 when none)."""


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        depth = GaugeMetricFamily(
            "receiver_queue_depth", "Rows in the inbox/outbox by status", labels=["queue", "status"]
        )
        for (queue, status), count in sorted(s.queue_depth.items()):
            depth.add_metric([queue, status], count)
        oldest = GaugeMetricFamily(
            "receiver_queue_oldest_pending_seconds",
            "Age of the oldest pending row of each queue",
            labels=["queue"],
        )
        for queue, age in sorted(s.oldest_pending_seconds.items()):
            oldest.add_metric([queue], age)
        refunds = GaugeMetricFamily("receiver_refunds", "Refunds by state", labels=["state"])
        for state, count in sorted(s.refunds.items()):
            refunds.add_metric([state], count)
        needed = GaugeMetricFamily(
            "receiver_invoice_needed_oldest_pending_seconds",
            "Age of the oldest invoice_needed not yet submitted to Kotani",
            value=s.invoice_needed_oldest_seconds,
        )
        yield from (depth, oldest, refunds, needed)


def _process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # all workers
        return registry
    return REGISTRY


def render(snapshot: Snapshot) -> bytes:
    """The exposition text: this process's (or every worker's) counters plus the snapshot."""
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(_process_registry()) + generate_latest(registry)
