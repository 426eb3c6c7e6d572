"""Many LOCAL batches running at once on one instance, then kill -9 of the gateway and a restart.

N programs (`/bin/sh -c 'echo $BATCHGATE_BATCH_ID >> marker; sleep 3600; exit 0'`) are submitted and
left running. Measured: that every one is tracked (RUNNING with an appId, as a client lists them), and
the gateway's RSS. Then the gateway is killed with SIGKILL and started again on the same data dir and
database; the recovery time runs from the new process's start to its last `batch.recovered` log event.
Finally each program's `sleep` is ended, so that every batch must finish through the recovered gateway.
Runs are counted from the programs' side: each appends its batch id to the marker file when it starts,
so a batch launched twice would appear twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import asyncpg

from benchmarks import harness
from benchmarks.report import Figure

TARGET_RSS_MB = 300.0
TARGET_RECOVERY_S = 5.0


def end_sleeps(data_dir: Path) -> int:
    """SIGTERM each program's `sleep` (a child of its sh), so that the sh goes on to `exit 0`."""
    shells: set[int] = set()
    for pids_file in (data_dir / "batches").glob("*/pids.json"):
        with contextlib.suppress(OSError, ValueError):
            shells.add(int(json.loads(pids_file.read_text())["child"]))
    ended = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid in shells and "(sleep)" in stat:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGTERM)
                ended += 1
    return ended


def epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


async def run(ctx: harness.Context) -> list[Figure]:
    n = ctx.sizes.running_batches
    marker = ctx.root / "running-marker.txt"
    script = f'echo "$BATCHGATE_BATCH_ID" >> {marker}; sleep 3600; exit 0'
    body = {"batchType": "LOCAL", "resource": "/bin/sh", "args": ["-c", script], "name": "bench-running"}
    url = await ctx.pg.create_database("running")
    data_dir = ctx.data_dir("running")
    gw = await harness.Gateway(data_dir, url, instance_id="bench:running").start()
    gw2: harness.Gateway | None = None
    conn = await asyncpg.connect(url)
    figures: list[Figure] = []
    try:
        t0 = time.monotonic()
        posted = await harness.run_load(gw.port, [harness.Request("POST", "/api/v1/batches", body)],
                                        concurrency=min(ctx.sizes.clients, n), count=n, collect="id")
        if posted.errors or len(posted.collected) != n:
            raise RuntimeError(f"submitted {len(posted.collected)} of {n}: {posted.sample_error}")
        peak = 0.0

        async def all_running() -> bool:
            nonlocal peak
            peak = max(peak, harness.rss_mb(gw.pid))
            if gw.died():
                raise harness.ExternalKill(f"the gateway died: {gw.tail_log(3)}")
            running = await conn.fetchval("select count(*) from batches where state = 'RUNNING' and app_id is not null")
            return bool(running >= n)

        await harness.wait_until(all_running, 900, every=0.25, what=f"{n} batches RUNNING")
        ramp = time.monotonic() - t0
        await asyncio.sleep(2.0)  # steady state: every batch is followed, nothing is launching
        async with harness.http_session() as session:
            async with session.get(gw.api, params={"batchState": "RUNNING", "size": "1"}) as resp:
                listed = (await resp.json())["total"]
        rss = harness.rss_mb(gw.pid)
        peak = max(peak, rss)

        # kill -9, restart on the same data dir and database, wait for every batch to be re-attached.
        gw.kill9()
        await gw.wait()
        restarted = time.time()
        gw2 = harness.Gateway(data_dir, url, port=gw.port, instance_id="bench:running")
        await gw2.start()
        ready = time.time() - restarted

        async def all_recovered() -> bool:
            if gw2 is not None and gw2.died():
                raise harness.ExternalKill(f"the gateway died: {gw2.tail_log(3)}")
            return len(gw2.log_events("batch.recovered")) >= n if gw2 else False

        with contextlib.suppress(TimeoutError):
            await harness.wait_until(all_recovered, 120, every=0.1, what="recovery")
        recovered = gw2.log_events("batch.recovered")
        lost = len(gw2.log_events("batch.lost"))
        relaunched = len(gw2.log_events("batch.launched"))
        recovery = max(epoch(e["timestamp"]) for e in recovered) - restarted if recovered else float("nan")
        rss_after = harness.rss_mb(gw2.pid)

        # Let every program end and check that the recovered gateway saw each exit, and that none ran twice.
        ended = end_sleeps(data_dir)

        async def all_finished() -> bool:
            done = await conn.fetchval("select count(*) from batches where state in ('FINISHED', 'ERROR', 'CANCELED')")
            return bool(done >= n)

        with contextlib.suppress(TimeoutError):
            await harness.wait_until(all_finished, 120, every=0.2, what="all finished")
        states = dict(await conn.fetch("select state, count(*) from batches group by state"))
        runs = collections.Counter(line for line in marker.read_text().splitlines() if line)
        twice = sum(1 for c in runs.values() if c > 1)
        never = sum(1 for i in posted.collected if runs[i] == 0)
        finished = states.get("FINISHED", 0)

        figures.append(harness.figure(
            "running", f"{n} sleeping batches tracked", listed, "batches", target=f"all {n}", ok=listed == n,
            detail=f"all {n} RUNNING with an appId {ramp:.1f} s after the first POST ({n / ramp:.0f} launches/s)"))
        figures.append(harness.figure(
            "running", f"gateway RSS with {n} running", rss, "MB", target="< 300 MB", ok=rss < TARGET_RSS_MB,
            detail=f"peak while launching {peak:.0f} MB; after the restart and recovery {rss_after:.0f} MB"))
        figures.append(harness.figure(
            "recovery", f"kill -9, restart, all {n} re-attached", recovery, "s", target="< 5 s",
            ok=recovery < TARGET_RECOVERY_S and len(recovered) == n,
            detail=(f"from the new process's start; it answered /healthz after {ready:.2f} s; "
                    f"{len(recovered)} re-attached, {lost} lost, {relaunched} launched again")))
        figures.append(harness.figure(
            "recovery", "lost or run twice", lost + twice + never, "batches", target="0",
            ok=lost + twice + never == 0 and finished == n,
            detail=(f"program starts counted from the marker file: {len(runs)} distinct ids, {twice} twice, "
                    f"{never} never; after ending the {ended} sleeps: {states}")))
    finally:
        await conn.close()
        for g in (gw2, gw):
            if g is not None:
                await g.stop()
        harness.kill_programs(data_dir)
        with contextlib.suppress(Exception):
            await ctx.pg.drop_database(url)
    return figures
