"""State latency: from a program's exit to FINISHED seen by a client waiting on the batch.

The waiting client is the follow stream (`GET /batches/{id}/log/follow`), whose `end` event carries the
final Batch: it is how a client waits without polling. Each program writes the time at which it exits
(`os._exit` right after) into its working dir; the latency is the `end` event's arrival minus that time.
Programs exit one at a time, spaced apart, so that each latency is one exit's, not a burst's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios.common import submit

TARGET_P99_MS = 100.0
PROGRAM = (
    "import os, sys, time\n"
    "time.sleep(float(sys.argv[1]))\n"
    "with open('exit_time', 'w') as f: f.write(repr(time.time()))\n"
    "os._exit(0)\n"
)


async def wait_end(session: aiohttp.ClientSession, gw: harness.Gateway, batch_id: str) -> tuple[float, str]:
    """Follow the batch until its `end` event; returns (arrival time, final state)."""
    async with session.get(f"{gw.api}/{batch_id}/log/follow") as resp:
        if resp.status != 200:
            raise RuntimeError(f"follow failed: {resp.status} {await resp.text()}")
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            at = buffer.find(b"event: end\ndata: ")
            if at >= 0 and buffer.endswith(b"\n\n"):
                arrived = time.time()
                data = buffer[at + len(b"event: end\ndata: "):].split(b"\n", 1)[0]
                return arrived, str(json.loads(data)["state"])
            buffer = buffer[-4096:]
    raise RuntimeError(f"follow of {batch_id} ended without an end event")


async def run(ctx: harness.Context) -> list[Figure]:
    n = ctx.sizes.state_batches
    spacing = 0.1 if not ctx.smoke else 0.2
    first = 4.0 if not ctx.smoke else 1.0   # time for every program to start before the first exits
    latencies: list[float] = []
    states: list[str] = []
    async with harness.running_gateway(ctx, "state") as gw, harness.http_session(timeout=300) as session:
        ids = []
        for i in range(n):
            batch = await submit(session, gw, {"batchType": "LOCAL", "resource": sys.executable, "name": "bench-state",
                                               "args": ["-c", PROGRAM, f"{first + i * spacing:.3f}"]})
            ids.append(str(batch["id"]))
        ended = await asyncio.gather(*(wait_end(session, gw, i) for i in ids))
        for batch_id, (arrived, state) in zip(ids, ended, strict=True):
            exit_file = gw.data_dir / "batches" / batch_id / "exit_time"
            exited = float(await asyncio.to_thread(Path(exit_file).read_text))
            latencies.append((arrived - exited) * 1000)
            states.append(state)
    p50, p99 = harness.percentile(latencies, 50), harness.percentile(latencies, 99)
    ok = p99 < TARGET_P99_MS and all(s == "FINISHED" for s in states)
    ctx.shared["state_p99"] = p99
    detail = (f"{n} batches, exits {spacing * 1000:.0f} ms apart, each waited on by a follow stream; "
              f"p50 {p50:.1f} ms, max {max(latencies):.1f} ms; states {sorted(set(states))} "
              f"(a Kyuubi client polls every 5 s: 2,500 ms on average)")
    return [harness.figure("state", "exit -> FINISHED seen, p99", p99, "ms", target="< 100 ms", ok=ok, detail=detail)]
