"""Nothing lost, nothing run twice: kill -9, takeover between instances, SIGTERM, Postgres restarts.

Launches are counted from the engine side: each LOCAL program appends its batch id to a file.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway_process import GatewayProcess
from tests.helpers import TERMINAL, basic
from tests.pg_control import DedicatedPostgres

pytestmark = pytest.mark.slow

FAST_LEASES = {"BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "2"}


def counting_program(marker: Path, sleep: float = 0.0, before: str = "") -> list[str]:
    code = (
        "import os, time\n"
        f"{before}\n"
        f"time.sleep({sleep})\n"
        f"with open({str(marker)!r}, 'a') as f: f.write(os.environ['BATCHGATE_BATCH_ID'] + '\\n')\n"
        "print('done', flush=True)\n"
    )
    return ["-c", code]


def runs(marker: Path) -> collections.Counter[str]:
    if not marker.exists():
        return collections.Counter()
    return collections.Counter(line for line in marker.read_text().splitlines() if line)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=basic("alice"), timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def get(http: aiohttp.ClientSession, base: str, batch_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/v1/batches/{batch_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def wait_all(http: aiohttp.ClientSession, base: str, ids: list[str], states: tuple[str, ...] = TERMINAL,
                   timeout: float = 120) -> dict[str, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = set(ids)
    done: dict[str, dict[str, Any]] = {}
    while pending:
        for batch_id in list(pending):
            batch = await get(http, base, batch_id)
            if batch["state"] in states:
                done[batch_id] = batch
                pending.discard(batch_id)
        if pending and loop.time() > deadline:
            raise AssertionError(f"{len(pending)} batches not in {states} after {timeout}s")
        await asyncio.sleep(0.2)
    return done


async def test_kill_9_during_submits_loses_nothing_and_runs_nothing_twice(
    database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    marker = tmp_path / "runs.txt"
    gateway = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1").start()
    acknowledged: list[str] = []
    attempted = 0

    async def client() -> None:
        nonlocal attempted
        body = {"batchType": "LOCAL", "resource": sys.executable, "args": counting_program(marker, 0.2)}
        while attempted < 400:
            attempted += 1
            try:
                async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
                    if resp.status == 200:
                        acknowledged.append((await resp.json())["id"])
            except (TimeoutError, aiohttp.ClientError):
                return  # the gateway died under us

    clients = [asyncio.create_task(client()) for _ in range(16)]
    while len(acknowledged) < 150:
        await asyncio.sleep(0.01)
    gateway.send(signal.SIGKILL)
    await asyncio.gather(*clients)
    await gateway.proc.wait()  # type: ignore[union-attr]
    assert len(acknowledged) >= 150

    gateway = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1",
                                   port=gateway.port).start()
    try:
        final = await wait_all(http, gateway.url, acknowledged, timeout=240)
        assert all(b["state"] == "FINISHED" for b in final.values()), [
            (b["state"], b["appDiagnostic"]) for b in final.values() if b["state"] != "FINISHED"]
        counts = runs(marker)
        assert all(counts[batch_id] == 1 for batch_id in acknowledged), "every acknowledged batch ran once"
        assert max(counts.values()) == 1, "no batch ran twice"
        async with http.get(gateway.url + "/api/v1/batches?size=1000") as resp:
            listed = await resp.json()
        assert listed["total"] == len(counts) or listed["total"] >= len(acknowledged)
    finally:
        await gateway.stop()


async def test_second_instance_takes_over_a_killed_instance(
    database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    marker = tmp_path / "runs.txt"
    g1 = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1", env=FAST_LEASES).start()
    g2 = await GatewayProcess(tmp_path / "g2", database_url=database_url, instance_id="g2", env=FAST_LEASES).start()
    try:
        ids = []
        for _ in range(12):
            body = {"batchType": "LOCAL", "resource": sys.executable,
                    "args": counting_program(marker, 4.0, "print('started', flush=True)")}
            async with http.post(g1.url + "/api/v1/batches", json=body) as resp:
                ids.append((await resp.json())["id"])
        running = await wait_all(http, g2.url, ids, ("RUNNING",), timeout=60)
        on_g1 = [i for i, b in running.items() if b["kyuubiInstance"] == "g1"]
        assert on_g1, "some batches ran on g1"

        # Follow one of g1's batches through g1, then lose g1 mid-stream.
        followed = on_g1[0]
        seen: list[int] = []
        async with http.get(f"{g1.url}/api/v1/batches/{followed}/log/follow") as resp:
            async for raw in resp.content:
                if raw.startswith(b"id: "):
                    seen.append(int(raw[4:]))
                if len(seen) >= 2:
                    break
        g1.send(signal.SIGKILL)
        await g1.proc.wait()  # type: ignore[union-attr]

        # Kill one of g1's batches through g2 while g1 is dead: the new owner must honour it.
        doomed = on_g1[-1] if len(on_g1) > 1 else None
        if doomed:
            async with http.delete(f"{g2.url}/api/v1/batches/{doomed}") as resp:
                assert (await resp.json())["success"] is True

        final = await wait_all(http, g2.url, ids, timeout=90)
        for batch_id in on_g1:
            assert final[batch_id]["kyuubiInstance"] == "g2", "g2 took the batch over"
        expected = {i: ("CANCELED" if i == doomed else "FINISHED") for i in ids}
        assert {i: b["state"] for i, b in final.items()} == expected
        counts = runs(marker)
        assert all(counts[i] == 1 for i in ids if i != doomed) and max(counts.values()) == 1
        assert counts[doomed] == 0 if doomed else True

        # The follower resumes on g2 from the last line it got, with nothing missed or repeated.
        lines: list[tuple[int, str]] = []
        async with http.get(f"{g2.url}/api/v1/batches/{followed}/log/follow",
                            headers={"Last-Event-ID": str(seen[-1])}) as resp:
            event: dict[str, str] = {}
            async for raw in resp.content:
                text = raw.decode().rstrip("\n")
                if not text:
                    if event.get("event") == "log":
                        lines.append((int(event["id"]), event["data"]))
                    event = {}
                elif not text.startswith(":"):
                    key, _, value = text.partition(": ")
                    event[key] = value
        assert [n for n, _ in lines] == list(range(seen[-1] + 1, seen[-1] + 1 + len(lines)))
        texts = [t for _, t in lines]
        assert "done" in texts and any("taken over by g2 from g1" in t for t in texts)
    finally:
        await g2.stop()
        await g1.stop()


async def test_sigterm_leaves_applications_running_and_restart_reattaches(
    database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    marker = tmp_path / "runs.txt"
    gateway = await GatewayProcess(tmp_path / "g", database_url=database_url, instance_id="g").start()
    ids = []
    for _ in range(3):
        body = {"batchType": "LOCAL", "resource": sys.executable,
                "args": counting_program(marker, 3.0, "print('started', flush=True)")}
        async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
            ids.append((await resp.json())["id"])
    running = await wait_all(http, gateway.url, ids, ("RUNNING",), timeout=30)
    pids = [int(b["appId"].split("-")[1]) for b in running.values()]
    assert await gateway.stop(signal.SIGTERM, timeout=20) == 0
    for pid in pids:
        assert Path(f"/proc/{pid}").exists(), "SIGTERM must not kill user applications"

    gateway = await GatewayProcess(tmp_path / "g", database_url=database_url, instance_id="g",
                                   port=gateway.port).start()
    try:
        final = await wait_all(http, gateway.url, ids, timeout=60)
        assert all(b["state"] == "FINISHED" for b in final.values())
        assert all(runs(marker)[i] == 1 for i in ids)
        async with http.get(f"{gateway.url}/api/v1/batches/{ids[0]}/localLog?size=1000") as resp:
            log = (await resp.json())["logRowSet"]
        assert log.count("started") == 1 and log.count("done") == 1, "output is neither lost nor repeated"
        assert any("re-attached by g" in line for line in log)
    finally:
        await gateway.stop()


async def test_postgres_restart_under_load(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    pg = DedicatedPostgres()
    marker = tmp_path / "runs.txt"
    gateway = await GatewayProcess(tmp_path / "g", database_url=pg.url, instance_id="g").start()
    try:
        ticker = ("import time\nfor i in range(40):\n    print(f'tick-{i}', flush=True)\n    time.sleep(0.1)\n")
        body = {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", ticker]}
        async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
            ticking = (await resp.json())["id"]
        quick = []
        for _ in range(5):
            body = {"batchType": "LOCAL", "resource": sys.executable, "args": counting_program(marker, 1.5)}
            async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
                quick.append((await resp.json())["id"])
        await wait_all(http, gateway.url, [ticking], ("RUNNING",), timeout=20)

        await asyncio.to_thread(pg.stop)
        async with http.get(f"{gateway.url}/api/v1/batches/{ticking}") as resp:
            assert resp.status == 503 and "Retry-After" in resp.headers
            assert (await resp.json())["message"]
        async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
            assert resp.status == 503
        async with http.get(gateway.url + "/healthz") as resp:
            assert resp.status == 200, "the process is alive while its database is away"
        await asyncio.sleep(2.5)
        await asyncio.to_thread(pg.start)

        final = await wait_all(http, gateway.url, [ticking, *quick], timeout=60)
        assert all(b["state"] == "FINISHED" for b in final.values()), {i: b["state"] for i, b in final.items()}
        async with http.get(f"{gateway.url}/api/v1/batches/{ticking}/localLog?size=1000") as resp:
            log = (await resp.json())["logRowSet"]
        assert [line for line in log if line.startswith("tick-")] == [f"tick-{i}" for i in range(40)]
        assert all(runs(marker)[i] == 1 for i in quick)
        async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
            assert resp.status == 200, "the gateway recovered by itself"
            after = (await resp.json())["id"]
        assert (await wait_all(http, gateway.url, [after]))[after]["state"] == "FINISHED"
    finally:
        await gateway.stop()
        pg.close()


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out
