"""Submit throughput: POST of a LOCAL batch, answered once committed, by 32 concurrent clients."""

from __future__ import annotations

import math

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios.common import HOLD_ENV, SUBMIT_BODY, db_counts, hold_queue

TARGET_RATE = 2000.0
TARGET_P99_MS = 50.0


async def _measure(ctx: harness.Context, workers: int) -> tuple[harness.LoadResult, str]:
    sizes = ctx.sizes
    async with harness.running_gateway(ctx, f"submit-{workers}w", env=HOLD_ENV, workers=workers) as gw:
        await hold_queue(gw)
        meter = ctx.cpu_meter(gw)
        result = await harness.measured_load(
            meter, gw.port, [harness.Request("POST", "/api/v1/batches", SUBMIT_BODY)],
            concurrency=sizes.clients, duration=sizes.load_seconds, warmup=sizes.warmup_seconds)
        counts = await db_counts(gw.database_url)
    queued = counts.get("INITIALIZED", 0)
    if result.errors:
        raise RuntimeError(f"{result.errors} submits failed, e.g. {result.sample_error}")
    if queued != result.total:
        raise RuntimeError(f"{result.total} submits acknowledged but {queued} rows queued")
    detail = (f"{sizes.clients} clients, {result.count} submits in the {result.elapsed:.0f} s window "
              f"(every acknowledged one is a committed row: {queued} queued); "
              f"p50 {result.pct(50):.1f} ms, p90 {result.pct(90):.1f} ms; " + harness.cpu_detail(meter, result))
    return result, detail


async def run(ctx: harness.Context) -> list[Figure]:
    result, detail = await _measure(ctx, 1)
    ctx.shared["submit"] = result.rate
    ctx.shared["submit_p99"] = result.pct(99)
    figures = [
        harness.figure("submit", "throughput", result.rate, "/s", target="≥ 2,000/s",
                       ok=result.rate >= TARGET_RATE, detail=detail),
        harness.figure("submit", "latency p99", result.pct(99), "ms", target="< 50 ms",
                       ok=result.pct(99) < TARGET_P99_MS),
    ]
    # One Python process uses one core: the same load on `serve --workers 2` (SO_REUSEPORT).
    two, two_detail = await _measure(ctx, 2)
    figures += [
        harness.figure("submit", "throughput, --workers 2", two.rate, "/s", target="≥ 2,000/s",
                       ok=two.rate >= TARGET_RATE, detail=two_detail),
        harness.figure("submit", "latency p99, --workers 2", two.pct(99), "ms", target="< 50 ms",
                       ok=two.pct(99) < TARGET_P99_MS),
    ]
    for key, label in (("baseline", "ratio to bare insert (same table, trigger)"),
                       ("baseline_plain", "ratio to bare insert (no trigger)")):
        floor = ctx.shared.get(key, math.nan)
        figures.append(harness.figure("submit", label, result.rate / floor if floor else math.nan, "x",
                                      detail=f"floor {floor:,.0f}/s in this run" if floor == floor else
                                      "floor not measured in this run (--only without baseline)"))
    return figures
