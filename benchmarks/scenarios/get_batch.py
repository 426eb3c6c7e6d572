"""GET /batches/{id}: throughput with 32 clients, and latency with one."""

from __future__ import annotations

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios.common import HOLD_ENV, SUBMIT_BODY, hold_queue

TARGET_RATE = 5000.0


async def _measure(ctx: harness.Context, workers: int) -> tuple[harness.LoadResult, harness.LoadResult, str]:
    sizes = ctx.sizes
    async with harness.running_gateway(ctx, f"get-{workers}w", env=HOLD_ENV, workers=workers) as gw:
        await hold_queue(gw)
        created = await harness.run_load(gw.port, [harness.Request("POST", "/api/v1/batches", SUBMIT_BODY)],
                                         concurrency=sizes.clients, count=sizes.get_rows, collect="id")
        if len(created.collected) != sizes.get_rows:
            raise RuntimeError(f"created {len(created.collected)} of {sizes.get_rows} batches")
        gets = [harness.Request("GET", f"/api/v1/batches/{i}") for i in created.collected]
        meter = ctx.cpu_meter(gw)
        loaded = await harness.measured_load(meter, gw.port, gets, concurrency=sizes.clients,
                                             duration=sizes.load_seconds, warmup=sizes.warmup_seconds)
        single = await harness.run_load(gw.port, gets, concurrency=1, duration=sizes.load_seconds / 2,
                                        warmup=sizes.warmup_seconds / 2)
    for res in (loaded, single):
        if res.errors:
            raise RuntimeError(f"{res.errors} GETs failed, e.g. {res.sample_error}")
    detail = (f"{sizes.clients} clients over {sizes.get_rows} batches, p50 {loaded.pct(50):.2f} ms, "
              f"p99 {loaded.pct(99):.2f} ms; " + harness.cpu_detail(meter, loaded))
    return loaded, single, detail


async def run(ctx: harness.Context) -> list[Figure]:
    loaded, single, detail = await _measure(ctx, 1)
    ctx.shared["get_rate"] = loaded.rate
    ctx.shared["get_p50_1"] = single.pct(50)
    ctx.shared["get_p99_1"] = single.pct(99)
    two, _, two_detail = await _measure(ctx, 2)
    return [
        harness.figure("get", "throughput", loaded.rate, "/s", target="≥ 5,000/s", ok=loaded.rate >= TARGET_RATE,
                       detail=detail),
        harness.figure("get", "throughput, --workers 2", two.rate, "/s", target="≥ 5,000/s",
                       ok=two.rate >= TARGET_RATE, detail=two_detail),
        harness.figure("get", "latency p50, one client", single.pct(50), "ms",
                       detail=f"p99 {single.pct(99):.2f} ms, {single.rate:,.0f}/s sequential"),
    ]
