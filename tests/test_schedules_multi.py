"""Exactly once across instances: two `batchgate serve` processes on one database tick a schedule every
second for 20 s, and one of them is killed with SIGKILL half-way. Every tick makes exactly one run,
counted by a LOCAL node that appends the tick's fire time to a file."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway_process import GatewayProcess
from tests.helpers import basic
from tests.test_schedules import counting_job, fired, next_second

pytestmark = pytest.mark.slow

FAST_LEASES = {"BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "2"}
TICKS = 20


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=basic("alice"), timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_two_instances_tick_exactly_once_through_a_kill_9(
    database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    marker = tmp_path / "fired.txt"
    g1 = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1", env=FAST_LEASES).start()
    g2 = await GatewayProcess(tmp_path / "g2", database_url=database_url, instance_id="g2", env=FAST_LEASES).start()
    try:
        await call(http, "POST", g1.url + "/api/v1/jobs", counting_job("every-second", marker))
        start = next_second(1500)
        end = start + (TICKS - 1) * 1000
        schedule = await call(http, "POST", g1.url + "/api/v1/schedules", {
            "job": "every-second", "every": "1s", "startAt": start, "endAt": end, "concurrency": "ALLOW"})
        expected = [start + i * 1000 for i in range(TICKS)]

        # Half-way, the instance that created the schedule dies without a word.
        await asyncio.sleep((start + 9_400 - time.time() * 1000) / 1000)
        g1.send(signal.SIGKILL)
        await g1.proc.wait()  # type: ignore[union-attr]
        killed_at = int(time.time() * 1000)

        deadline = time.monotonic() + 60
        while True:
            body = await call(http, "GET", f"{g2.url}/api/v1/jobs/every-second/runs?size=1000")
            done = [r for r in body["runs"] if r["state"] in ("SUCCEEDED", "FAILED", "KILLED")]
            if len(done) >= TICKS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # nothing more may come

        counts = Counter(fired(marker))
        assert sorted(counts) == expected, "every tick made a run"
        assert set(counts.values()) == {1}, "no tick made two"
        runs = (await call(http, "GET", f"{g2.url}/api/v1/jobs/every-second/runs?size=1000"))["runs"]
        assert sorted(r["fireTime"] for r in runs) == expected and all(r["state"] == "SUCCEEDED" for r in runs)
        ticks = (await call(http, "GET", f"{g2.url}/api/v1/schedules/{schedule['id']}/ticks?size=1000"))["ticks"]
        assert sorted(t["fireTime"] for t in ticks) == expected and {t["outcome"] for t in ticks} == {"FIRED"}
        after_kill = [t for t in ticks if t["fireTime"] > killed_at + 500]
        assert len(after_kill) >= 8 and {t["instance"] for t in after_kill} == {"g2"}, "the survivor ticks on"

        log = (await call(http, "GET", f"{g2.url}/api/v1/jobs/every-second/log?size=1000"))["entries"]
        fired_entries: list[dict[str, Any]] = [e["detail"] for e in log if e["action"] == "tick_fired"]
        assert sorted(d["fireTime"] for d in fired_entries) == expected
        recovered = [d for d in fired_entries if d["recovered"]]
        assert len(recovered) <= 1, "only a tick claimed at the moment of the kill is taken over"
        late = [d for d in fired_entries if d["latenessMs"] >= 1000 and not d["recovered"]]
        assert not late, f"each tick fired within a second of its time: {late}"
    finally:
        await g2.stop()
        await g1.stop()
