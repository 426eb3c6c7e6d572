"""The summary views: GET /api/v1/stats/batches (counts per time bucket, within the caller's visibility)
and GET /api/v1/limits (running and queued against each limit), over HTTP and through the client."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tests.helpers import Api

HOUR = 3_600_000
MINUTE = 60_000
# An hour boundary a few hours back: inside the retention age, so that the purge the gateway runs as it
# starts cannot take the ended rows this file inserts (with a date long ago it raced the inserts), and
# before now, so that the still-queued row's interval reaches the last bucket.
T0 = (time.time_ns() // 1_000_000 // HOUR - 6) * HOUR


async def _insert(database_url: str, rows: list[tuple[str, str, str, int, int, int]]) -> None:
    """Batches with chosen times: (user, state, paused_from, create, app start, end) offsets from T0."""
    conn = await asyncpg.connect(database_url)
    try:
        for user, state, paused_from, created, started, ended in rows:
            await conn.execute(
                "insert into batches (id, batch_type, batch_user, real_user, resource, state, paused_from,"
                " create_time, app_start_time, end_time) values (gen_random_uuid(), 'LOCAL', $1, $1, 'true', $2,"
                " nullif($3, ''), $4, $5, $6)",
                user, state, paused_from, T0 + created, T0 + started if started else 0, T0 + ended if ended else 0)
    finally:
        await conn.close()


async def test_counts_per_bucket_within_the_callers_visibility(api: Api, database_url: str) -> None:
    await _insert(database_url, [
        ("alice", "FINISHED", "", 10 * MINUTE, 15 * MINUTE, 130 * MINUTE),  # queued b0, running b0-b2, ended b2
        ("alice", "ERROR", "", 70 * MINUTE, 0, 75 * MINUTE),  # never started: queued b1, ended b1
        ("alice", "PAUSED", "INITIALIZED", 200 * MINUTE, 0, 0),  # held in the queue since b3
        ("bob", "FINISHED", "", 20 * MINUTE, 21 * MINUTE, 22 * MINUTE),
    ])
    query = f"/api/v1/stats/batches?from={T0 + 5 * MINUTE}&to={T0 + 4 * HOUR}&bucket=1h"
    mine = await api.as_user("alice").call("GET", query)
    assert mine["from"] == T0 and mine["to"] == T0 + 4 * HOUR and mine["bucket"] == HOUR, "from aligned down"
    assert [b["start"] for b in mine["buckets"]] == [T0 + i * HOUR for i in range(4)]
    assert [b["created"] for b in mine["buckets"]] == [{"FINISHED": 1}, {"ERROR": 1}, {}, {"PAUSED": 1}]
    assert [b["ended"] for b in mine["buckets"]] == [{}, {"ERROR": 1}, {"FINISHED": 1}, {}]
    assert [b["running"] for b in mine["buckets"]] == [1, 1, 1, 0]
    assert [b["queued"] for b in mine["buckets"]] == [1, 1, 0, 1]

    everyone = await api.call("GET", query)  # admin
    assert everyone["buckets"][0]["created"] == {"FINISHED": 2} and everyone["buckets"][0]["running"] == 2
    bobs = await api.as_user("bob").call("GET", query)
    assert [b["created"] for b in bobs["buckets"]] == [{"FINISHED": 1}, {}, {}, {}]

    minutes = await api.as_user("alice").call(
        "GET", f"/api/v1/stats/batches?from={T0 + 70 * MINUTE}&to={T0 + 80 * MINUTE}&bucket=5m")
    assert [b["created"] for b in minutes["buckets"]] == [{"ERROR": 1}, {}]
    assert [b["ended"] for b in minutes["buckets"]] == [{}, {"ERROR": 1}]


async def test_defaults_and_bad_parameters(api: Api) -> None:
    last_day = await api.call("GET", "/api/v1/stats/batches")
    assert last_day["bucket"] == HOUR and len(last_day["buckets"]) in (24, 25)
    for query, field in (("bucket=soon", "bucket"), ("bucket=100", "bucket"), ("bucket=40d", "bucket"),
                         ("from=10&to=5", "from"), ("from=0&to=86400000000", "to"),
                         ("from=0&to=86400000&bucket=1m", "bucket"), ("to=x", "to")):
        status, body = await api.status_of("GET", f"/api/v1/stats/batches?{query}")
        assert status == 400 and body["message"].startswith(f"{field}:"), (query, body)


async def test_limits(start_gateway: Callable[..., Awaitable[Api]], python: str) -> None:
    api = await start_gateway(admin=["admin"], max_running=5, max_running_per_user=2,
                              max_running_per_type={"LOCAL": 2}, engines=["LOCAL", "SPARK"])
    sleep = ["-c", "import time; print('up', flush=True); time.sleep(60)"]
    alice, bob = api.as_user("alice"), api.as_user("bob")
    running = [await alice.submit(resource=python, args=sleep), await bob.submit(resource=python, args=sleep)]
    for batch in running:
        await api.wait_for(batch["id"], ("RUNNING",))
    waiting = await alice.submit(resource=python, args=sleep)  # LOCAL is full: it waits

    def usage(view: dict[str, Any], key: str, name: str) -> tuple[int, int, int]:
        row = next(r for r in view[key] if r.get("user", r.get("batchType")) == name)
        return row["limit"], row["running"], row["queued"]

    hers = await alice.call("GET", "/api/v1/limits")
    assert hers["total"] == {"limit": 5, "running": 2, "queued": 1}
    assert [r["user"] for r in hers["perUser"]] == ["alice"] and usage(hers, "perUser", "alice") == (2, 1, 1)
    assert [r["batchType"] for r in hers["perType"]] == ["LOCAL", "SPARK"]
    assert usage(hers, "perType", "LOCAL") == (2, 2, 1) and usage(hers, "perType", "SPARK") == (0, 0, 0)
    admins = await api.call("GET", "/api/v1/limits")
    assert [r["user"] for r in admins["perUser"]] == ["alice", "bob"] and usage(admins, "perUser", "bob") == (2, 1, 0)
    for batch in [*running, waiting]:
        await api.kill(batch["id"])


async def test_through_the_client(api: Api, python: str) -> None:
    from gateway.client import AsyncClient

    batch = await api.submit(resource=python, args=["-c", "pass"])
    await api.wait_for(batch["id"])
    async with AsyncClient(str(api.client.make_url("")), user="admin") as bg:
        stats = await bg.batch_stats(bucket="1h")
        assert sum(b.created.get("FINISHED", 0) for b in stats.buckets) == 1
        limits = await bg.limits()
        assert limits.total.limit == 0 and limits.total.running == 0
