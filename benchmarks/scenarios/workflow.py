"""Workflow advance latency: in a 200-node run (a wide fan-out and a long chain), the time from a node's
batch ending to its dependent's batch being launched (inserted), p50 and p99, read from the database."""

from __future__ import annotations

import uuid

import asyncpg

from benchmarks import harness
from benchmarks.report import Figure


def job(fanout: int, chain: int) -> dict[str, object]:
    node = {"batchType": "LOCAL", "resource": "true"}
    nodes: list[dict[str, object]] = [{"id": "root", "request": node}]
    nodes += [{"id": f"leaf{i}", "dependsOn": ["root"], "request": node} for i in range(fanout)]
    previous = "root"
    for i in range(chain):
        nodes.append({"id": f"chain{i}", "dependsOn": [previous], "request": node})
        previous = f"chain{i}"
    return {"name": "bench-flow", "nodes": nodes}


EDGES = """
select (d.create_time - p.end_time) as gap_ms
from run_nodes n
join batches d on d.id = n.batch_id
join run_nodes pn on pn.run_id = n.run_id and pn.node_id = any(n.depends_on)
join batches p on p.id = pn.batch_id
where n.run_id = $1
"""


async def run(ctx: harness.Context) -> list[Figure]:
    fanout, chain = (99, 100) if not ctx.smoke else (5, 5)
    async with harness.running_gateway(ctx, "workflow") as gw, harness.http_session() as http:
        base = f"http://127.0.0.1:{gw.port}/api/v1"
        async with http.post(f"{base}/jobs", json=job(fanout, chain)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"job create failed: {resp.status} {await resp.text()}")
        async with http.post(f"{base}/jobs/bench-flow/runs") as resp:
            run_id = (await resp.json())["id"]

        async def ended() -> bool:
            async with http.get(f"{base}/runs/{run_id}") as resp:
                return (await resp.json())["state"] in ("SUCCEEDED", "FAILED", "KILLED")

        await harness.wait_until(ended, 600, every=0.2, what="the 200-node run ended")
        conn = await asyncpg.connect(gw.database_url)
        try:
            gaps = [float(r["gap_ms"]) for r in await conn.fetch(EDGES, uuid.UUID(run_id))]
            state = await conn.fetchval("select state from runs where id = $1", uuid.UUID(run_id))
        finally:
            await conn.close()
    p50, p99 = harness.percentile(gaps, 50), harness.percentile(gaps, 99)
    detail = (f"{fanout + chain + 1} nodes (a fan-out of {fanout} and a chain of {chain}), run {state}; "
              f"{len(gaps)} dependency edges; gap = dependent batch created - dependency batch ended")
    return [
        harness.figure("workflow", "node exit -> dependent launched, p50", p50, "ms", detail=detail),
        harness.figure("workflow", "node exit -> dependent launched, p99", p99, "ms", detail=detail),
    ]
