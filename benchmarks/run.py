"""`python -m benchmarks.run [--smoke] [--only NAME ...] [--skip-ray] [--ray-bin PATH] [--out FILE]`

Runs the scenarios in one process, one Postgres server and a fresh gateway per scenario, prints one
line per figure as it is measured, and a Markdown table at the end. Exit status 0 when every scenario
ran (a missed target is a figure, not an error), 1 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks import baseline, harness, ray_peer
from benchmarks.report import Figure, line, markdown_table, save_json
from benchmarks.scenarios import (
    e2e,
    follow,
    get_batch,
    listing,
    logs,
    profile,
    running,
    spark_launcher,
    state_latency,
    submit,
    workflow,
)

Scenario = Callable[[harness.Context], Awaitable[list[Figure]]]

# In run order: the floor first, so that submit can compare against it; Ray after the batchgate figures
# it compares with; the profile last, since it re-runs loads under a sampler.
SCENARIOS: dict[str, Scenario] = {
    "baseline": baseline.run,
    "submit": submit.run,
    "get": get_batch.run,
    "e2e": e2e.run,
    "state": state_latency.run,
    "list": listing.run,
    "log": logs.run,
    "follow": follow.run,
    "running": running.run,
    "workflow": workflow.run,
    "ray": ray_peer.run,
    "launcher": spark_launcher.run,
    "profile": profile.run,
}
# The launcher scenario starts a YARN cluster (Maven fetches Hadoop on the first run): not in the smoke
# run that the tests run; `--smoke --only launcher` runs it at tiny sizes.
NOT_IN_SMOKE = {"profile", "launcher"}


def machine() -> str:
    cpu = "unknown cpu"
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]) / 1024 / 1024
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


async def run_scenario(ctx: harness.Context, name: str, attempts: int = 3) -> list[Figure]:
    """Run one scenario; repeat it when a neighbour on a shared machine killed one of its processes."""
    for attempt in range(1, attempts + 1):
        try:
            return await SCENARIOS[name](ctx)
        except harness.ExternalKill as exc:
            note = f"{name}: attempt {attempt} was disturbed from outside ({exc}); repeating"
            print(f"    {note}", flush=True)
            ctx.notes.append(note)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every scenario runs")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(SCENARIOS),
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument("--skip-ray", action="store_true", help="skip the Ray peer comparison")
    parser.add_argument("--ray-bin", help="the `ray` command (default: $BATCHGATE_BENCH_RAY, then PATH)")
    parser.add_argument("--ref", help="benchmark this git ref (exported with git archive) instead of the "
                        "working tree, e.g. HEAD while the working tree is mid-edit")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (gateway logs, data)")
    return parser.parse_args(argv)


async def main(ns: argparse.Namespace) -> int:
    sizes = harness.Sizes.smoke() if ns.smoke else harness.Sizes.full()
    names = list(ns.only) if ns.only else [n for n in SCENARIOS if not (ns.smoke and n in NOT_IN_SMOKE)]
    if ns.skip_ray and "ray" in names:
        names.remove("ray")
    root = Path(tempfile.mkdtemp(prefix="batchgate-bench-"))
    pg = harness.Postgres(root)
    ctx = harness.Context(sizes=sizes, smoke=ns.smoke, root=root, pg=pg, skip_ray=ns.skip_ray,
                          ray_bin=ns.ray_bin or os.environ.get("BATCHGATE_BENCH_RAY"))
    if ns.ref:
        commit = harness.snapshot(ns.ref, root / "source")
        source = f"{ns.ref} ({commit}), exported with git archive"
    else:
        source = harness.describe_source()
    if ns.out:
        profile.PROFILE_DIR["dir"] = ns.out.resolve().parent  # raw profiles beside the JSON figures
    started = dt.datetime.now(dt.UTC)
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:])
    print(f"batchgate benchmarks ({'smoke' if ns.smoke else 'full'} run), {started:%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"gateway source: {source}")
    print(f"scenarios: {', '.join(names)}; scratch dir {root}\n", flush=True)
    figures: list[Figure] = []
    failed: list[str] = []
    t0 = time.monotonic()
    try:
        await pg.start()
        for name in names:
            t = time.monotonic()
            print(f"--- {name}", flush=True)
            try:
                got = await run_scenario(ctx, name)
            except Exception as exc:
                failed.append(name)
                print(f"[FAIL] {name}: could not run: {exc!r}", flush=True)
                traceback.print_exc()
                continue
            for fig in got:
                print(line(fig), flush=True)
            figures.extend(got)
            print(f"    ({name} took {time.monotonic() - t:.0f} s)\n", flush=True)
    finally:
        await pg.stop()
        if ns.keep:
            print(f"scratch dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - t0
    for note in ctx.notes:
        print(f"note: {note}")
    print(f"\n## Figures ({'smoke' if ns.smoke else 'full'} run, {started:%Y-%m-%d}, {elapsed:.0f} s)\n")
    print(f"Machine: {machine()}  \nGateway source: {source}  \nCommand: `{command.strip()}`\n")
    print(markdown_table(figures))
    missed = [f"{f.scenario} {f.metric}" for f in figures if f.ok is False]
    print(f"\n{sum(f.ok is True for f in figures)} targets met, {len(missed)} missed"
          + (f" ({'; '.join(missed)})" if missed else "")
          + (f"; scenarios that could not run: {', '.join(failed)}" if failed else ""))
    if ns.out:
        save_json(figures, ns.out, {"date": started.isoformat(), "machine": machine(), "command": command,
                                    "source": source,
                                    "seconds": round(elapsed), "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(None))))
