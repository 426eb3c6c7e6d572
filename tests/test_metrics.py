"""/metrics over HTTP, parsed with prometheus_client's own text parser after a known sequence of submits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Api, info

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api) -> Samples:
    async with api.client.get("/metrics") as resp:  # no credentials needed
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_counts_after_a_known_sequence(start_gateway: Callable[..., Awaitable[Api]], python: str,
                                             tmp_path: Path) -> None:
    api = await start_gateway(admin=["admin"], metrics_state_seconds=60)
    quick = ["-c", "print('a'); print('b')"]
    done = [await api.submit(resource=python, args=quick) for _ in range(3)]
    failed = await api.submit(resource=python, args=["-c", "raise SystemExit(2)"])
    key = str(uuid.uuid4())
    again = await api.submit(resource=python, args=quick, conf={"kyuubi.batch.id": key})
    await api.submit(resource=python, args=quick, conf={"kyuubi.batch.id": key})  # a duplicate: not counted
    not_executable = tmp_path / "prog"
    not_executable.write_text("#!/bin/sh\necho never\n")
    broken = await api.submit(resource=str(not_executable))  # exists, but exec fails: a launch failure
    sleeper = await api.submit(resource=python, args=["-c", "import time; time.sleep(60)"])
    await api.submit("PYSPARK", "/nonexistent/x.py", expect=400)
    for batch in [*done, failed, again, broken]:
        await api.wait_for(batch["id"])
    await api.wait_for(sleeper["id"], ("RUNNING",), timeout=20)

    # A follow stream is open while the sleeper runs.
    async with api.client.get(f"/api/v1/batches/{sleeper['id']}/log/follow", headers=api.headers) as follow:
        assert follow.status == 200
        await follow.content.readline()
        during = await scrape(api)
    assert value(during, "batchgate_log_follow_streams") == 1
    await api.kill(sleeper["id"])
    await api.wait_for(sleeper["id"])
    for _ in range(100):
        after = await scrape(api)
        if value(after, "batchgate_log_follow_streams") == 0:
            break
        await asyncio.sleep(0.05)
    assert value(after, "batchgate_log_follow_streams") == 0, "a closed stream is no longer counted"

    # The supervisor counts an end once Postgres has it, so a reader may see CANCELED a moment before the
    # count: wait for it (the figures below are then exact).
    for _ in range(100):
        s = await scrape(api)
        if value(s, "batchgate_batch_transitions_total", batch_type="LOCAL", state="CANCELED") >= 1:
            break
        await asyncio.sleep(0.05)
    assert value(s, "batchgate_batches_submitted_total", batch_type="LOCAL") == 7
    assert value(s, "batchgate_batches_submitted_total", batch_type="PYSPARK") == 0
    transitions = {state: value(s, "batchgate_batch_transitions_total", batch_type="LOCAL", state=state)
                   for state in ("PENDING", "RUNNING", "FINISHED", "ERROR", "CANCELED")}
    assert transitions == {"PENDING": 7, "RUNNING": 6, "FINISHED": 4, "ERROR": 2, "CANCELED": 1}, transitions
    assert value(s, "batchgate_engine_launch_failures_total", batch_type="LOCAL") == 1
    assert value(s, "batchgate_batch_queue_wait_seconds_count", batch_type="LOCAL") == 7
    assert value(s, "batchgate_batch_launch_seconds_count", batch_type="LOCAL") == 6
    assert value(s, "batchgate_batch_run_seconds_count", batch_type="LOCAL", state="FINISHED") == 4
    assert value(s, "batchgate_batch_run_seconds_count", batch_type="LOCAL", state="CANCELED") == 1
    assert value(s, "batchgate_batch_run_seconds_sum", batch_type="LOCAL", state="CANCELED") > 0

    # HTTP: by route template and status, with latencies.
    assert value(s, "batchgate_http_requests_total", route="/api/v1/batches", method="POST", status="200") == 8
    assert value(s, "batchgate_http_requests_total", route="/api/v1/batches", method="POST", status="400") == 1
    assert value(s, "batchgate_http_request_duration_seconds_count", route="/api/v1/batches", method="POST") == 9
    assert total(s, "batchgate_http_requests_total", route="/api/v1/batches/{batch_id}", method="GET") > 0
    assert value(s, "batchgate_http_requests_total", route="/metrics", method="GET", status="200") >= 2

    # Log lines stored: every line of every batch was stored by this one instance.
    page = await api.call("GET", "/api/v1/batches?size=100")
    assert value(s, "batchgate_log_lines_total") == sum(info(b, "logLines") for b in page["batches"])

    # Batches by state come from the database, cached: a new batch shows up only after the TTL.
    first = {st: value(during, "batchgate_batches", batch_type="LOCAL", state=st) for st in ("FINISHED", "ERROR")}
    assert first == {"FINISHED": 4, "ERROR": 2}, first
    assert value(during, "batchgate_batches", batch_type="LOCAL", state="RUNNING") == 1
    assert value(s, "batchgate_batches", batch_type="LOCAL", state="RUNNING") == 1, "still the cached count"
    assert value(s, "batchgate_database_up") == 1

    # Postgres pool gauges.
    assert value(s, "batchgate_db_pool_connections") >= 1
    assert value(s, "batchgate_db_pool_max_connections") == 10
    assert 0 <= value(s, "batchgate_db_pool_connections_in_use") <= value(s, "batchgate_db_pool_connections")


async def test_fresh_counts_and_unmatched_routes(start_gateway: Callable[..., Awaitable[Api]], python: str) -> None:
    api = await start_gateway(admin=["admin"], metrics_state_seconds=0)
    batch = await api.submit(resource=python, args=["-c", "print(1)"])
    await api.wait_for(batch["id"])
    async with api.client.get("/no/such/path/12345") as resp:
        assert resp.status == 404
    s = await scrape(api)
    assert value(s, "batchgate_batches", batch_type="LOCAL", state="FINISHED") == 1
    assert value(s, "batchgate_batches", batch_type="LOCAL", state="INITIALIZED") == 0
    assert value(s, "batchgate_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any("12345" in str(labels) for _, labels in s), "raw paths never become labels"
    assert value(s, "batchgate_lease_takeovers_total") == 0


async def test_each_app_has_its_own_registry(start_gateway: Callable[..., Awaitable[Api]], python: str) -> None:
    one = await start_gateway(admin=["admin"])
    two = await start_gateway(admin=["admin"])
    await one.submit(resource=python, args=["-c", "print(1)"])
    assert value(await scrape(one), "batchgate_batches_submitted_total", batch_type="LOCAL") == 1
    assert value(await scrape(two), "batchgate_batches_submitted_total", batch_type="LOCAL") == 0
