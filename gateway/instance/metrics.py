"""Metrics: Prometheus counters, gauges and histograms of one gateway instance, in a registry of its own.

Every app gets its own `CollectorRegistry` (never prometheus_client's global one), so that several
gateways in one process (tests) do not share or clash over metrics. The parts that count things get
the `Metrics` object through their constructors; without one they count into a private, unused one.

Batches by state come from the database, not from this process (any instance may change any batch);
the count is cached for `state_ttl` seconds, so that a scrape costs one small query at most that often.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.contract.batches import BatchState
from gateway.errors import Unavailable

if TYPE_CHECKING:
    import asyncpg

    from gateway.store import BatchRecord, BatchRepository

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = tuple(BatchState)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
BATCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class _BatchStates(Collector):
    """batchgate_batches{batch_type, state}: the last counts read from the database."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.database_up = 1.0

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("batchgate_batches", "Batches in the database by type and state "
                                   "(all instances; refreshed at most every few seconds)",
                                   labels=["batch_type", "state"])
        for (batch_type, state), n in sorted(self.counts.items()):
            family.add_metric([batch_type, state], n)
        yield family
        yield GaugeMetricFamily("batchgate_database_up",
                                "1 if the last read of batch counts reached Postgres, else 0", value=self.database_up)

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    def __init__(self, *, state_ttl: float = 5.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "batchgate_http_requests_total", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=r)
        self.http_duration = Histogram(
            "batchgate_http_request_duration_seconds", "HTTP request latency by route template and method",
            ["route", "method"], buckets=HTTP_BUCKETS, registry=r)
        self.submits = Counter(
            "batchgate_batches_submitted_total", "Batches accepted by this instance (duplicates not counted)",
            ["batch_type"], registry=r)
        self.transitions = Counter(
            "batchgate_batch_transitions_total", "State changes made by this instance, by the state entered",
            ["batch_type", "state"], registry=r)
        self.queue_wait = Histogram(
            "batchgate_batch_queue_wait_seconds", "From submit to claim (INITIALIZED to PENDING)",
            ["batch_type"], buckets=BATCH_BUCKETS, registry=r)
        self.launch = Histogram(
            "batchgate_batch_launch_seconds", "From claim to a running application (PENDING to RUNNING)",
            ["batch_type"], buckets=BATCH_BUCKETS, registry=r)
        self.run = Histogram(
            "batchgate_batch_run_seconds", "From a running application to its end, by the final state",
            ["batch_type", "state"], buckets=BATCH_BUCKETS, registry=r)
        self.log_lines = Counter(
            "batchgate_log_lines_total", "Batch log lines stored by this instance", registry=r)
        self.follow_streams = Gauge(
            "batchgate_log_follow_streams", "Log follow streams open on this instance", registry=r)
        self.launch_failures = Counter(
            "batchgate_engine_launch_failures_total", "Launches an engine refused or failed",
            ["batch_type"], registry=r)
        self.takeovers = Counter(
            "batchgate_lease_takeovers_total", "Instances whose expired lease this instance took over", registry=r)
        self.taken_over = Counter(
            "batchgate_batches_taken_over_total", "Batches this instance took over from other instances",
            registry=r)
        self.schedule_events = Counter(
            "batchgate_schedule_events_total", "Schedule events (fired, skipped, failed, ...)", ["event"], registry=r)
        self.sla_events = Counter(
            "batchgate_sla_events_total", "SLA events (missed, met, ...)", ["event"], registry=r)
        self.pool_in_use = Gauge(
            "batchgate_db_pool_connections_in_use", "Postgres pool connections handed out", registry=r)
        self.pool_size = Gauge(
            "batchgate_db_pool_connections", "Postgres pool connections open", registry=r)
        self.pool_max = Gauge(
            "batchgate_db_pool_max_connections", "Postgres pool size limit", registry=r)
        self._states = _BatchStates()
        r.register(self._states)
        self._state_ttl = state_ttl
        self._states_read_at = -1e9
        self._refresh_lock = asyncio.Lock()
        self._batches: BatchRepository | None = None

    # --- wiring --------------------------------------------------------------------------

    def bind_repository(self, batches: BatchRepository, pool: asyncpg.Pool) -> None:
        """The batch counts' repository and the pool behind the pool gauges."""
        self._batches = batches
        self.pool_in_use.set_function(lambda: pool.get_size() - pool.get_idle_size())
        self.pool_size.set_function(lambda: pool.get_size())
        self.pool_max.set_function(lambda: pool.get_max_size())

    # --- events --------------------------------------------------------------------------

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)

    def submitted(self, batch_type: str) -> None:
        self.submits.labels(batch_type).inc()

    def claimed(self, batch: BatchRecord) -> None:
        self.transitions.labels(batch.batch_type, BatchState.PENDING).inc()
        if batch.claim_time and batch.create_time:
            self.queue_wait.labels(batch.batch_type).observe(max(batch.claim_time - batch.create_time, 0) / 1000)

    def running(self, batch: BatchRecord) -> None:
        self.transitions.labels(batch.batch_type, BatchState.RUNNING).inc()
        if batch.app_start_time and batch.claim_time:
            self.launch.labels(batch.batch_type).observe(max(batch.app_start_time - batch.claim_time, 0) / 1000)

    def ended(self, batch: BatchRecord | None) -> None:
        """A batch reached its terminal state (finished by its owner, or canceled in the queue)."""
        if batch is None:
            return
        self.transitions.labels(batch.batch_type, batch.state).inc()
        if batch.app_start_time and batch.end_time:
            self.run.labels(batch.batch_type, batch.state).observe(max(batch.end_time - batch.app_start_time, 0) / 1000)

    def launch_failed(self, batch_type: str) -> None:
        self.launch_failures.labels(batch_type).inc()

    def logged(self, lines: int) -> None:
        self.log_lines.inc(lines)

    @contextlib.contextmanager
    def following(self) -> Iterator[None]:
        self.follow_streams.inc()
        try:
            yield
        finally:
            self.follow_streams.dec()

    def took_over(self, batches: int) -> None:
        self.takeovers.inc()
        self.taken_over.inc(batches)

    def schedule_event(self, event: str) -> None:
        self.schedule_events.labels(event).inc()

    def sla_event(self, event: str) -> None:
        self.sla_events.labels(event).inc()

    # --- exposition ----------------------------------------------------------------------

    async def refresh(self, now: Callable[[], float] = time.monotonic) -> None:
        """Re-read batch counts from the database if the cached ones are older than the TTL."""
        if self._batches is None or now() - self._states_read_at < self._state_ttl:
            return
        async with self._refresh_lock:
            if now() - self._states_read_at < self._state_ttl:
                return  # another scrape refreshed while this one waited
            try:
                counts = await asyncio.wait_for(self._batches.count_batches_by_state(), 5.0)
            except (Unavailable, TimeoutError):
                self._states.database_up = 0.0
                # Retry within a second, not on every scrape.
                self._states_read_at = now() - self._state_ttl + min(1.0, self._state_ttl)
                return
            self._states.counts = {(t, s): 0 for t in {bt for bt, _ in counts} for s in STATES}
            self._states.counts.update(counts)
            self._states.database_up = 1.0
            self._states_read_at = now()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
