"""End to end: N trivial LOCAL programs (`true`), from the first POST to the last FINISHED."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from benchmarks import harness
from benchmarks.report import Figure

TARGET_RATE = 100.0
BODY = {"batchType": "LOCAL", "resource": "true", "name": "bench-e2e"}


@dataclass
class E2E:
    batches: int
    finished: int
    seconds: float            # first POST sent -> last end_time
    submit_seconds: float     # first POST sent -> last POST answered
    median_batch_ms: float    # create_time -> end_time of one batch
    p99_batch_ms: float
    cpu: str

    @property
    def rate(self) -> float:
        return self.batches / self.seconds if self.seconds > 0 else 0.0


async def measure(ctx: harness.Context, gw: harness.Gateway, n: int, timeout: float = 900) -> E2E:
    """Submit n batches with the load generator's clients and wait (on the database) until all ended."""
    meter = ctx.cpu_meter(gw)
    meter.start()
    posted = await harness.run_load(gw.port, [harness.Request("POST", "/api/v1/batches", BODY)],
                                    concurrency=min(ctx.sizes.clients, n), count=n, collect="id")
    if posted.errors:
        raise RuntimeError(f"{posted.errors} submits failed, e.g. {posted.sample_error}")
    conn = await asyncpg.connect(gw.database_url)
    try:
        async def all_ended() -> bool:
            done = await conn.fetchval(
                "select count(*) from batches where state in ('FINISHED', 'ERROR', 'CANCELED') and name = $1",
                BODY["name"])
            return bool(done >= n)

        await harness.wait_until(all_ended, timeout, every=0.05, what=f"{n} batches ended")
        meter.stop()
        meter.used["client"] = posted.cpu_seconds
        row = await conn.fetchrow(
            """select count(*) filter (where state = 'FINISHED') as finished, max(end_time) as last,
                      percentile_cont(0.5) within group (order by end_time - create_time) as p50,
                      percentile_cont(0.99) within group (order by end_time - create_time) as p99
               from batches where name = $1""", BODY["name"])
    finally:
        await conn.close()
    assert row is not None
    seconds = row["last"] / 1000 - posted.first_send
    parts = [f"{name} {secs / n * 1e3:.1f} ms" for name, secs in meter.used.items()
             if name not in ("machine", "neighbours")]
    cpu = f"CPU per batch: {', '.join(parts)}; {harness.machine_share(meter)}"
    return E2E(batches=n, finished=int(row["finished"]), seconds=seconds,
               submit_seconds=posted.last_done - posted.first_send, median_batch_ms=float(row["p50"]),
               p99_batch_ms=float(row["p99"]), cpu=cpu)


async def run(ctx: harness.Context) -> list[Figure]:
    n = ctx.sizes.e2e_batches
    async with harness.running_gateway(ctx, "e2e") as gw:
        await asyncio.sleep(0.5)  # let the start-up settle
        result = await measure(ctx, gw, n)
    ctx.shared["e2e"] = result.rate
    detail = (f"{n} batches of `true`, {ctx.sizes.clients} submitting clients; all submitted in "
              f"{result.submit_seconds:.1f} s, all ended in {result.seconds:.1f} s; {result.finished} FINISHED; "
              f"per batch POST->FINISHED p50 {result.median_batch_ms / 1000:.2f} s, "
              f"p99 {result.p99_batch_ms / 1000:.2f} s; {result.cpu}")
    figures = [harness.figure("e2e", "completion throughput", result.rate, "batches/s", target="≥ 100 batches/s",
                              ok=result.rate >= TARGET_RATE and result.finished == n, detail=detail)]
    if result.finished != n:
        figures.append(harness.figure("e2e", "batches not FINISHED", n - result.finished, "", target="0", ok=False))
    return figures
