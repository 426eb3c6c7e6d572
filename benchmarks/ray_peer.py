"""Peer comparison: Ray's job submission REST API on the same machine, with the same trivial entrypoint.

Ray is an optional benchmark dependency (benchmarks/requirements.txt), best installed in a venv of its
own: its `ray[default]` extra pulls a protobuf that apache-flink's apache-beam refuses. The harness finds
the `ray` command through --ray-bin, $BATCHGATE_BENCH_RAY, PATH, or beside the running Python; without
it, this section says so and is skipped.

Both sides are measured in this scenario, one after the other, with the same client and load:
- submit: N submits by 32 clients. batchgate's batches stay queued (its one LOCAL slot is held, as in the
  submit scenario); Ray's jobs ask for a custom resource no node has, so they stay PENDING and no worker
  starts. Both then measure accepting and recording a job.
- end to end: N jobs of `true`, from the first POST to the last end time each side records.
- GET: `GET /api/v1/batches/{id}` against `GET /api/jobs/{submission_id}`, one client (latency) and 32.
Ray runs with every address on loopback (--node-ip-address 127.0.0.1 and
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, without which Ray resolves 127.0.0.1 to the machine's interface).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios import e2e
from benchmarks.scenarios.common import HOLD_ENV, SUBMIT_BODY, hold_queue

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RAY_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def find_ray(ctx: harness.Context) -> str | None:
    candidates = [ctx.ray_bin, shutil.which("ray"), str(Path(sys.executable).with_name("ray"))]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


class Ray:
    def __init__(self, ray: str, root: Path) -> None:
        self.ray = ray
        self.temp = root / "ray"
        self.port = harness.free_port()
        self.dashboard = harness.free_port()
        self.env = {**os.environ, **RAY_ENV}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    async def start(self) -> None:
        args = [self.ray, "start", "--head", "--num-cpus", str(os.cpu_count() or 2), "--node-ip-address",
                "127.0.0.1", "--port", str(self.port), "--dashboard-host", "127.0.0.1", "--dashboard-port",
                str(self.dashboard), "--include-dashboard", "true", "--disable-usage-stats",
                "--temp-dir", str(self.temp)]
        proc = await asyncio.create_subprocess_exec(*args, env=self.env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed: {out.decode(errors='replace')[-1500:]}")

        async def ready() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(self.url + "/api/jobs/") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await harness.wait_until(ready, 120, every=0.5, what="Ray dashboard")

    def stop(self) -> None:
        subprocess.run([self.ray, "stop"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)

    def pids(self) -> list[int]:
        """Ray's processes: everything whose command line mentions this run's Ray temp dir or ports."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                    if str(self.temp) in cmd or f":{self.port}" in cmd:
                        out.append(int(entry))
        return out

    async def jobs(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with session.get(self.url + "/api/jobs/") as resp:
            data: list[dict[str, Any]] = await resp.json()
            return data


async def ray_side(ctx: harness.Context, ray: Ray) -> dict[str, float]:
    sizes = ctx.sizes
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        # End to end first, while Ray holds no pending jobs.
        n = sizes.ray_e2e_jobs
        posted = await harness.run_load(ray.dashboard, [harness.Request("POST", "/api/jobs/", {"entrypoint": "true"})],
                                        concurrency=min(sizes.clients, n), count=n, collect="submission_id")
        if posted.errors:
            raise RuntimeError(f"Ray refused submits: {posted.sample_error}")
        ids = set(posted.collected)
        done: list[dict[str, Any]] = []

        async def all_done() -> bool:
            nonlocal done
            done = [j for j in await ray.jobs(session) if j["submission_id"] in ids and j["status"] in RAY_TERMINAL]
            return len(done) >= n

        await harness.wait_until(all_done, 900, every=0.5, what=f"{n} Ray jobs done")
        out["e2e"] = n / (max(j["end_time"] for j in done) / 1000 - posted.first_send)
        out["e2e_ok"] = sum(1 for j in done if j["status"] == "SUCCEEDED")
        # GET on the finished jobs.
        gets = [harness.Request("GET", f"/api/jobs/{i}") for i in sorted(ids)]
        single = await harness.run_load(ray.dashboard, gets, concurrency=1, duration=sizes.load_seconds / 2,
                                        warmup=sizes.warmup_seconds / 2)
        many = await harness.run_load(ray.dashboard, gets, concurrency=sizes.clients, duration=sizes.load_seconds / 2,
                                      warmup=sizes.warmup_seconds / 2)
        out["get_p50_1"], out["get_rate"] = single.pct(50), many.rate
        # Submit last: the pending jobs stay until `ray stop`.
        body = {"entrypoint": "true", "entrypoint_resources": {"bench_never": 1}}
        sub = await harness.run_load(ray.dashboard, [harness.Request("POST", "/api/jobs/", body)],
                                     concurrency=sizes.clients, count=sizes.ray_submits)
        if sub.errors:
            raise RuntimeError(f"Ray refused submits: {sub.sample_error}")
        out["submit"] = sub.count / sub.elapsed
        out["submit_p99"] = sub.pct(99)
    return out


async def batchgate_side(ctx: harness.Context) -> dict[str, float]:
    sizes = ctx.sizes
    out: dict[str, float] = {}
    async with harness.running_gateway(ctx, "peer-submit", env=HOLD_ENV) as gw:
        await hold_queue(gw)
        sub = await harness.run_load(gw.port, [harness.Request("POST", "/api/v1/batches", SUBMIT_BODY)],
                                     concurrency=sizes.clients, count=sizes.ray_submits, collect="id")
        out["submit"] = sub.count / sub.elapsed
        out["submit_p99"] = sub.pct(99)
        gets = [harness.Request("GET", f"/api/v1/batches/{i}") for i in sub.collected]
        single = await harness.run_load(gw.port, gets, concurrency=1, duration=sizes.load_seconds / 2,
                                        warmup=sizes.warmup_seconds / 2)
        many = await harness.run_load(gw.port, gets, concurrency=sizes.clients, duration=sizes.load_seconds / 2,
                                      warmup=sizes.warmup_seconds / 2)
        out["get_p50_1"], out["get_rate"] = single.pct(50), many.rate
    async with harness.running_gateway(ctx, "peer-e2e") as gw:
        await asyncio.sleep(0.5)
        result = await e2e.measure(ctx, gw, sizes.ray_e2e_jobs)
        out["e2e"] = result.rate
        out["e2e_ok"] = result.finished
    return out


async def run(ctx: harness.Context) -> list[Figure]:
    ray_bin = find_ray(ctx)
    if ray_bin is None:
        message = ("Ray is not installed: the peer comparison is skipped. Install it with "
                   "`python3 -m venv .venv-ray && .venv-ray/bin/pip install -r benchmarks/requirements.txt` "
                   "and pass --ray-bin .venv-ray/bin/ray")
        print(f"    {message}")
        ctx.notes.append(message)
        return []
    bg = await batchgate_side(ctx)
    ray = Ray(ray_bin, ctx.root)
    started = time.monotonic()
    try:
        await ray.start()
        ray_start = time.monotonic() - started
        rs = await ray_side(ctx, ray)
    finally:
        await asyncio.to_thread(ray.stop)
    n_sub, n_e2e = ctx.sizes.ray_submits, ctx.sizes.ray_e2e_jobs

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    return [
        harness.figure("ray", "submit throughput, batchgate/Ray", ratio(bg["submit"], rs["submit"]), "x",
                       detail=(f"{n_sub} submits by {ctx.sizes.clients} clients: batchgate {bg['submit']:,.0f}/s "
                               f"(p99 {bg['submit_p99']:.1f} ms), Ray {rs['submit']:,.0f}/s "
                               f"(p99 {rs['submit_p99']:.1f} ms)")),
        harness.figure("ray", "end-to-end throughput, batchgate/Ray", ratio(bg["e2e"], rs["e2e"]), "x",
                       detail=(f"{n_e2e} jobs of `true`: batchgate {bg['e2e']:.1f}/s ({bg['e2e_ok']:.0f} FINISHED), "
                               f"Ray {rs['e2e']:.1f}/s ({rs['e2e_ok']:.0f} SUCCEEDED)")),
        harness.figure("ray", "GET latency p50 (one client), batchgate/Ray",
                       ratio(bg["get_p50_1"], rs["get_p50_1"]), "x",
                       detail=(f"lower is better: batchgate {bg['get_p50_1']:.2f} ms, Ray {rs['get_p50_1']:.2f} ms; "
                               f"GET throughput with {ctx.sizes.clients} clients: batchgate {bg['get_rate']:,.0f}/s, "
                               f"Ray {rs['get_rate']:,.0f}/s (ratio {ratio(bg['get_rate'], rs['get_rate']):.1f}x); "
                               f"Ray took {ray_start:.0f} s to start")),
    ]
