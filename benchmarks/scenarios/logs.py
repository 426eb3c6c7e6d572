"""localLog at from = 10,000,000 against from = 0, on a log of ten million lines.

The log is written with SQL in the gateway's own layout (batch_log_chunks of 2,000 lines, as
LogStore.append writes them, and batches.log_lines) before the gateway starts. It has 10,010,000
lines, so that `from=10000000` is a full window like `from=0`, not an empty read past the end.
Requests alternate between the two offsets, one at a time, so that both see the same noise.

Then the same log by characters (Azkaban's fetchExecJobLogs, LogStore.read_chars): the fill bypasses the
counting trigger, as a log written before the counts existed, so the first read counts it (timed once),
and 50,000-character windows at character 100,000 and near the end alternate, through the store.
"""

from __future__ import annotations

import time
import uuid

import asyncpg

from benchmarks import harness
from benchmarks.report import Figure
from gateway.batches.logs import LogStore
from gateway.instance.listener import Hub
from gateway.store import BatchRepository
from gateway.store.database import Database
from gateway.store.logs import LogRepository

CHUNK = 2000
DEEP = 10_000_000
TARGET_MS = 10.0
TARGET_RATIO = 2.0
CHAR_WINDOW = 50_000  # what the azkaban client asks for
# The near peer: a window starting inside the first chunk and crossing into the second, as a window deep in
# the log does (a window at 0 reads less: one chunk, no lines walked before it).
NEAR_CHAR = 100_000

FILL = """
insert into batch_log_chunks (batch_id, first_line, lines)
select $1, c * $2::bigint,
       array(select format('2026-11-25 12:%s INFO  [main] org.example.etl.Job - processed record %s of part-%s',
                           lpad(((c * $2 + i) % 6000)::text, 5, '0'), c * $2 + i, c % 97)
             from generate_series(0, $2 - 1) i)
from generate_series(0, $3 - 1) c
"""


async def fill(url: str, lines: int) -> tuple[str, float]:
    await harness.apply_schema(url)
    batch_id = uuid.uuid4()
    chunks = (lines + CHUNK - 1) // CHUNK
    conn = await asyncpg.connect(url)
    started = time.monotonic()
    try:
        await conn.execute("set session_replication_role = replica")
        await conn.execute(
            """insert into batches (id, batch_type, batch_user, real_user, name, resource, state, app_state,
                                    instance, end_time, log_lines)
               values ($1, 'LOCAL', 'bench', 'bench', 'bench-log', '/opt/jobs/chatty.py', 'FINISHED', 'FINISHED',
                       'bench-old:1', bg_now_ms(), $2)""", batch_id, chunks * CHUNK)
        await conn.execute(FILL, batch_id, CHUNK, chunks)
        await conn.execute("vacuum (analyze) batch_log_chunks")
    finally:
        await conn.close()
    return str(batch_id), time.monotonic() - started


async def char_windows(url: str, batch_id: str, reads: int) -> tuple[float, float, float, int]:
    """(seconds to count the log once, p50 ms of a window at NEAR_CHAR, p50 ms near the end, the log's
    characters).

    The store is imported from the working tree, which is the benchmarked source unless --ref says otherwise.
    """
    db = await Database.connect(url, min_size=1, max_size=2)
    try:
        logs = LogStore(LogRepository(db), BatchRepository(db), Hub())
        bid = uuid.UUID(batch_id)
        started = time.perf_counter()
        total = await logs.char_length(bid)
        counted = time.perf_counter() - started
        deep = total - CHAR_WINDOW - 1000
        if len(await logs.read_chars(bid, deep, CHAR_WINDOW)) != CHAR_WINDOW:
            raise RuntimeError(f"a window at character {deep:,} of {total:,} is not full")
        times: dict[int, list[float]] = {NEAR_CHAR: [], deep: []}
        for _ in range(reads):
            for offset in (NEAR_CHAR, deep):
                t = time.perf_counter()
                await logs.read_chars(bid, offset, CHAR_WINDOW)
                times[offset].append((time.perf_counter() - t) * 1000)
    finally:
        await db.close()
    return counted, harness.percentile(times[NEAR_CHAR], 50), harness.percentile(times[deep], 50), total


async def run(ctx: harness.Context) -> list[Figure]:
    lines = ctx.sizes.log_lines
    deep = DEEP if lines > DEEP else lines - 100
    url = await ctx.pg.create_database("log")
    batch_id, fill_seconds = await fill(url, lines)
    path = f"/api/v1/batches/{batch_id}/localLog"
    requests = [harness.Request("GET", f"{path}?from=0&size=100", tag="0"),
                harness.Request("GET", f"{path}?from={deep}&size=100", tag="deep")]
    n = ctx.sizes.log_reads * 2
    async with harness.running_gateway(ctx, "log", database_url=url) as gw:
        async with harness.http_session() as session, session.get(f"{gw.url}{path}?from={deep}&size=3") as resp:
            body = await resp.json()
            if body.get("rowCount") != 3 or f"record {deep} " not in body["logRowSet"][0]:
                raise RuntimeError(f"unexpected window at from={deep}: {body}")
        await harness.run_load(gw.port, requests, concurrency=1, count=20)  # warm
        meter = ctx.cpu_meter(gw)
        result = await harness.measured_load(meter, gw.port, requests, concurrency=1, count=n)
        # The database goes with the gateway: the store's reads come before it stops.
        counted, chars0, chars_deep, total = await char_windows(url, batch_id, ctx.sizes.log_reads)
    if result.errors:
        raise RuntimeError(f"{result.errors} reads failed, e.g. {result.sample_error}")
    at0 = harness.percentile(result.latencies_ms["0"], 50)
    atdeep = harness.percentile(result.latencies_ms["deep"], 50)
    ratio = atdeep / at0
    p99_0, p99_deep = result.pct(99, "0"), result.pct(99, "deep")
    detail = (f"log of {lines:,} lines in {lines // CHUNK:,} chunks (filled in {fill_seconds:.0f} s); size=100; "
              f"{n} reads alternating; from=0 p50 {at0:.2f} ms p99 {p99_0:.2f} ms; from={deep:,} p50 {atdeep:.2f} ms "
              f"p99 {p99_deep:.2f} ms; {harness.machine_share(meter)}")
    ctx.shared["log_p50_0"] = at0
    char_ratio = chars_deep / chars0
    char_detail = (f"{CHAR_WINDOW:,}-character windows at {NEAR_CHAR:,} and at {total - CHAR_WINDOW - 1000:,} of "
                   f"{total:,}, "
                   f"{ctx.sizes.log_reads} each, alternating, through the store: p50 {chars0:.2f} ms vs "
                   f"{chars_deep:.2f} ms; the log was counted once at its first read in {counted:.1f} s")
    return [
        harness.figure("log", f"chars: window near the end / at {NEAR_CHAR:,} (p50)", char_ratio, "x", target="< 2",
                       ok=char_ratio < TARGET_RATIO, detail=char_detail),
        harness.figure("log", "chars: first read counts an uncounted log", counted, "s", detail=f"{lines:,} lines"),
        harness.figure("log", f"localLog from={deep:,} / from=0 (p50)", ratio, "x", target="< 2",
                       ok=ratio < TARGET_RATIO, detail=detail),
        harness.figure("log", "localLog from=0, p99", p99_0, "ms", target="< 10 ms", ok=p99_0 < TARGET_MS),
        harness.figure("log", f"localLog from={deep:,}, p99", p99_deep, "ms", target="< 10 ms",
                       ok=p99_deep < TARGET_MS),
    ]
