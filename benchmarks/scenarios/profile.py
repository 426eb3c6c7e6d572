"""Profiles of the gateway's hot paths, with py-spy sampling the gateway process from outside.

Each profile re-runs a load (submit, GET, end to end, follow) on a fresh gateway while py-spy records
it (--nonblocking, 100 Hz; idle time in the event loop's poll is not sampled). The figures of the other
scenarios are measured without a sampler; these runs are only for the shape of the time. The summary
gives self time by package (where the CPU goes) and inclusive time of the gateway's own functions
(which code paths pay for it). Raw collapsed stacks are kept beside --out, or in the scratch dir.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks import harness
from benchmarks.report import Figure
from benchmarks.scenarios import e2e, follow
from benchmarks.scenarios.common import HOLD_ENV, SUBMIT_BODY, hold_queue, submit

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
PACKAGES = ("aiohttp", "asyncpg", "pydantic_core", "pydantic", "structlog", "multidict", "yarl", "json",
            "asyncio", "selectors", "uuid", "gateway", "engines", "runner", "subprocess", "logging", "email")
PROFILE_DIR: dict[str, Path] = {}
# Leaf frames that are waiting, not working: the event loop's poll and idle thread-pool workers.
IDLE_LEAVES = frozenset({"EpollSelector.select", "select", "Condition.wait", "_worker", "wait", "Event.wait"})


def find_py_spy() -> str | None:
    for c in (shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))):
        if c and Path(c).is_file():
            return c
    return None


def package_of(path: str) -> str:
    parts = Path(path).parts
    if "site-packages" in parts:
        i = parts.index("site-packages")
        return parts[i + 1].split(".")[0] if i + 1 < len(parts) else "?"
    src = str(harness.source_dir())
    if path.startswith(src) or path.startswith(str(harness.REPO)):
        rel = Path(path).relative_to(src if path.startswith(src) else harness.REPO)
        return rel.parts[0]
    name = Path(path).stem
    if "asyncio" in parts:
        return "asyncio"
    return name if name in PACKAGES else f"stdlib:{name}"


def summarize(raw: str, top: int = 8) -> tuple[int, str]:
    """(samples, 'self by package ... | gateway inclusive ...') from py-spy's raw collapsed stacks."""
    by_package: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaf_funcs: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame)
            frames.append((m.group("func"), m.group("file")) if m else (frame, ""))
        leaf_func, leaf_file = frames[-1]
        if leaf_func in IDLE_LEAVES:
            idle += count  # --nonblocking cannot always tell a thread waiting in epoll or on a lock from a busy one
            continue
        total += count
        by_package[package_of(leaf_file)] += count
        leaf_funcs[f"{leaf_func} ({package_of(leaf_file)})"] += count
        seen = set()
        for func, file in frames:
            pkg = package_of(file)
            if pkg in ("gateway", "engines") and Path(file).stem not in ("__main__", "cli"):
                key = f"{Path(file).stem}.{func}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    if not total:
        return 0, "no samples"

    def pct(counter: collections.Counter[str]) -> str:
        return ", ".join(f"{k} {v / total * 100:.0f}%" for k, v in counter.most_common(top))

    return total, (f"{total} busy samples ({idle} idle ones left out). Self time by package: {pct(by_package)}. "
                   f"Hottest leaf functions: {pct(leaf_funcs)}. Inclusive, gateway code: {pct(inclusive)}")


async def record(ctx: harness.Context, name: str, gw: harness.Gateway, seconds: float,
                 load: Callable[[], Awaitable[object]]) -> Figure:
    py_spy = find_py_spy()
    assert py_spy is not None
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = PROFILE_DIR.get("dir", ctx.root) / f"profile-{slug}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(gw.pid), "--duration", f"{seconds:.0f}", "--rate", "100", "--format", "raw",
        "--nonblocking", "--full-filenames", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.3)
    await load()
    _, err = await spy.communicate()
    if spy.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    samples, text = summarize(await asyncio.to_thread(out.read_text))
    return harness.figure("profile", f"{name}: gateway busy samples", samples, "", detail=f"{text}. Raw: {out}")


async def run(ctx: harness.Context) -> list[Figure]:
    if find_py_spy() is None:
        ctx.notes.append("py-spy is not installed (pip install -r benchmarks/requirements.txt): no profiles")
        return []
    sizes = ctx.sizes
    seconds = sizes.profile_seconds
    figures = []
    async with harness.running_gateway(ctx, "profile-api", env=HOLD_ENV) as gw:
        await hold_queue(gw)
        created: list[str] = []

        async def submits() -> None:
            res = await harness.run_load(gw.port, [harness.Request("POST", "/api/v1/batches", SUBMIT_BODY)],
                                         concurrency=sizes.clients, duration=seconds + 0.5, collect="id")
            created.extend(res.collected[:1000])

        figures.append(await record(ctx, "submit", gw, seconds, submits))

        async def gets() -> None:
            await harness.run_load(gw.port, [harness.Request("GET", f"/api/v1/batches/{i}") for i in created],
                                   concurrency=sizes.clients, duration=seconds + 0.5)

        figures.append(await record(ctx, "get", gw, seconds, gets))

        async def lists() -> None:
            await harness.run_load(gw.port, [harness.Request("GET", "/api/v1/batches?size=100&batchState=INITIALIZED")],
                                   concurrency=4, duration=seconds + 0.5)

        figures.append(await record(ctx, "list (100 rows a page)", gw, seconds, lists))
    async with harness.running_gateway(ctx, "profile-e2e") as gw:
        n = max(int(seconds * 30), 20)

        async def ends() -> None:
            await e2e.measure(ctx, gw, n)

        figures.append(await record(ctx, f"end to end ({n} batches)", gw, seconds, ends))
    async with harness.running_gateway(ctx, "profile-follow") as gw, harness.http_session(timeout=300) as session:
        lines = sizes.follow_lines // 2

        async def follows() -> None:
            batch = await submit(session, gw, {"batchType": "LOCAL", "resource": sys.executable,
                                               "args": ["-c", follow.PROGRAM, str(lines)]})
            async with session.get(f"{gw.api}/{batch['id']}/log/follow") as resp:
                async for chunk in resp.content.iter_any():
                    if b"event: end\n" in chunk:
                        break

        figures.append(await record(ctx, f"follow ({lines:,} lines)", gw, seconds, follows))
    return figures
