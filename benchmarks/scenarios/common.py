"""Helpers shared by the scenarios: submitting, holding the queue, waiting on the database."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from benchmarks import harness

TERMINAL = ("FINISHED", "ERROR", "CANCELED")
SUBMIT_BODY: dict[str, Any] = {"batchType": "LOCAL", "resource": "true", "name": "bench-submit",
                               "args": ["--n", "1"], "conf": {"spark.app.tag": "bench"}}
# Keeps the gateway's single LOCAL slot busy so that submitted batches stay queued (see hold_queue).
HOLD_ENV = {"BATCHGATE_MAX_LOCAL_BATCHES": "1"}


async def submit(session: aiohttp.ClientSession, gateway: harness.Gateway, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(gateway.api, json=body) as resp:
        data: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"submit failed: {resp.status} {data}")
        return data


async def get(session: aiohttp.ClientSession, gateway: harness.Gateway, batch_id: str) -> dict[str, Any]:
    async with session.get(f"{gateway.api}/{batch_id}") as resp:
        data: dict[str, Any] = await resp.json()
        return data


async def wait_state(session: aiohttp.ClientSession, gateway: harness.Gateway, batch_id: str,
                     states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal result
        result = await get(session, gateway, batch_id)
        return result.get("state") in states

    await harness.wait_until(check, timeout, what=f"batch {batch_id} in {states}")
    return result


async def hold_queue(gateway: harness.Gateway) -> None:
    """Start a long `sleep` in each worker's only slot (HOLD_ENV), so that new batches stay queued.

    The submit and GET scenarios measure the API, not launching: at thousands of submits per second no
    2-core machine can also start thousands of processes per second (end to end is measured apart).
    """
    async with harness.http_session() as session:
        for _ in range(gateway.workers):
            batch = await submit(session, gateway, {"batchType": "LOCAL", "resource": "sleep",
                                                    "args": ["3600"], "name": "bench-hold"})
            await wait_state(session, gateway, batch["id"], ("RUNNING",))


async def db_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select state, count(*) as n from batches group by state")
        return {r["state"]: int(r["n"]) for r in rows}
    finally:
        await conn.close()
