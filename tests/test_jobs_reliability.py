"""Workflows survive crashes: kill -9 mid-run, a restart, then a second instance taking the run over.

Each node appends its id to a file: the file proves every node ran exactly once, in dependency order.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway_process import GatewayProcess
from tests.helpers import basic

pytestmark = pytest.mark.slow
FAST_LEASES = {"BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "2"}


def chain_node(node_id: str, marker: Path, deps: list[str], gate: Path | None = None) -> dict[str, Any]:
    """A node that sleeps, waits for `gate` to exist if given, and appends its id to `marker`."""
    wait = f"import os\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n" if gate else ""
    program = (f"import time\ntime.sleep(0.8)\n{wait}open({str(marker)!r}, 'a').write({node_id!r} + '\\n')\n")
    return {"id": node_id, "dependsOn": deps,
            "request": {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", program]}}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=basic("admin"), timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def run_state(http: aiohttp.ClientSession, base: str, run_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/v1/runs/{run_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def wait_lines(marker: Path, count: int, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(marker.read_text().split() if marker.exists() else []) < count:
        if loop.time() > deadline:
            raise AssertionError(f"fewer than {count} nodes ran in {timeout}s")
        await asyncio.sleep(0.05)


async def test_kill_9_restart_and_takeover_mid_run(database_url: str, tmp_path: Path,
                                                   http: aiohttp.ClientSession) -> None:
    marker = tmp_path / "nodes.txt"
    gate = tmp_path / "second-instance-up"  # d ends only once g2 is the instance left, whatever the load
    # A fan-out, a join and a chain: a -> (b1, b2, b3) -> c -> d -> e
    nodes = [chain_node("a", marker, []), *(chain_node(f"b{i}", marker, ["a"]) for i in range(1, 4)),
             chain_node("c", marker, ["b1", "b2", "b3"]), chain_node("d", marker, ["c"], gate),
             chain_node("e", marker, ["d"])]
    g1 = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1",
                              env=FAST_LEASES).start()
    g2: GatewayProcess | None = None
    try:
        async with http.post(f"{g1.url}/api/v1/jobs", json={"name": "crashy", "nodes": nodes}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(f"{g1.url}/api/v1/jobs/crashy/runs") as resp:
            run_id = (await resp.json())["id"]

        await wait_lines(marker, 1)  # a is done; the fan-out is running
        g1.send(signal.SIGKILL)
        await g1.proc.wait()  # type: ignore[union-attr]
        g1 = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1",
                                  env=FAST_LEASES, port=g1.port).start()
        await wait_lines(marker, 5)  # the join ran after the restart

        g2 = await GatewayProcess(tmp_path / "g2", database_url=database_url, instance_id="g2",
                                  env=FAST_LEASES).start()
        g1.send(signal.SIGKILL)
        await g1.proc.wait()  # type: ignore[union-attr]
        gate.touch()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while True:
            run = await run_state(http, g2.url, run_id)
            if run["state"] in ("SUCCEEDED", "FAILED", "KILLED"):
                break
            assert loop.time() < deadline, run
            await asyncio.sleep(0.2)
        assert run["state"] == "SUCCEEDED", run
        order = marker.read_text().split()
        assert collections.Counter(order) == {n["id"]: 1 for n in nodes}, "every node ran exactly once"
        position = {node: i for i, node in enumerate(order)}
        assert position["a"] < min(position[f"b{i}"] for i in range(1, 4))
        assert max(position[f"b{i}"] for i in range(1, 4)) < position["c"] < position["d"] < position["e"]
        owners = set()
        for node in run["nodes"]:
            async with http.get(f"{g2.url}/api/v1/batches/{node['batchId']}") as resp:
                owners.add((await resp.json())["kyuubiInstance"])
        assert "g2" in owners, "the second instance ran the end of the run"
    finally:
        if g2 is not None:
            await g2.stop()
        await g1.stop()
