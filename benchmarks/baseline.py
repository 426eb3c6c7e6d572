"""The floor: a bare aiohttp + asyncpg handler that inserts one row, measured like the gateway's submit.

`python -m benchmarks.baseline --port P --dsn URL` serves POST /insert: parse the JSON body, insert
one row into `batches` (the gateway's own table, indexes and notify trigger, so the database does the
same work as for a real submit), answer the row's id as JSON. No validation, no logging, no models.
The same client load as the submit scenario, in the same run, gives the ratio.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios.common import SUBMIT_BODY

INSERT = """
insert into batches (id, batch_type, batch_user, real_user, name, resource, class_name, conf, args)
values ($1, $2, $3, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
returning id, state, create_time
"""


async def _no_reset(conn: Any) -> None:
    return None


def serve(port: int, dsn: str) -> None:
    import asyncpg
    from aiohttp import web

    async def insert(request: web.Request) -> web.Response:
        body: dict[str, Any] = json.loads(await request.read())
        pool: asyncpg.Pool = request.app["pool"]
        row = await pool.fetchrow(
            INSERT, uuid.uuid4(), body["batchType"], "bench", body.get("name"), body["resource"],
            body.get("className"), json.dumps(body.get("conf") or {}), json.dumps(body.get("args") or []))
        assert row is not None
        return web.json_response({"id": str(row["id"]), "state": row["state"], "createTime": row["create_time"]})

    async def pool_ctx(app: web.Application) -> Any:
        # The gateway's pool size, and like the gateway no reset round trip when a connection is released.
        app["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=10, reset=_no_reset)
        yield
        await app["pool"].close()

    app = web.Application()
    app.router.add_post("/insert", insert)
    app.router.add_get("/healthz", lambda _r: _ok())
    app.cleanup_ctx.append(pool_ctx)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _ok() -> Any:
    from aiohttp import web

    return web.Response(text="ok")






async def measure(ctx: harness.Context, *, with_trigger: bool) -> tuple[harness.LoadResult, harness.CpuMeter]:
    import asyncio
    import sys

    url = await ctx.pg.create_database("baseline")
    await harness.apply_schema(url)
    if not with_trigger:
        import asyncpg

        conn = await asyncpg.connect(url)
        await conn.execute("drop trigger batches_notify on batches")
        await conn.close()
    port = harness.free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.baseline", "--port", str(port), "--dsn", url, cwd=str(harness.REPO),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def ready() -> bool:
            try:
                async with harness.http_session() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    return r.status == 200
            except OSError:
                return False

        await harness.wait_until(ready, 30, what="baseline server")
        meter = harness.CpuMeter({"server": lambda: [proc.pid], "postgres": ctx.pg.pids},
                                 harness.NeighbourSampler(ctx.root))
        result = await harness.measured_load(
            meter, port, [harness.Request("POST", "/insert", SUBMIT_BODY)], concurrency=ctx.sizes.clients,
            duration=ctx.sizes.load_seconds, warmup=ctx.sizes.warmup_seconds)
        return result, meter
    finally:
        proc.terminate()
        await proc.wait()
        await ctx.pg.drop_database(url)


async def run(ctx: harness.Context) -> list[Figure]:
    figures: list[Figure] = []
    for with_trigger, key, label in ((True, "baseline", "batches table (trigger)"),
                                     (False, "baseline_plain", "batches table, no trigger")):
        result, meter = await measure(ctx, with_trigger=with_trigger)
        ctx.shared[key] = result.rate
        ctx.shared[key + "_p99"] = result.pct(99)
        detail = (f"{ctx.sizes.clients} clients, {result.count} inserts in {result.elapsed:.0f} s, "
                  f"p50 {result.pct(50):.1f} ms, p99 {result.pct(99):.1f} ms, errors {result.errors}; "
                  + harness.cpu_detail(meter, result))
        figures.append(harness.figure("baseline", f"bare insert, {label}", result.rate, "/s", detail=detail))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    ns = parser.parse_args()
    serve(ns.port, ns.dsn)
