"""Shared machinery: Postgres, the gateway as a subprocess, load generation, CPU accounting, percentiles.

Every scenario gets a fresh database on one Postgres server (pgserver, the same binaries as the
gateway's embedded Postgres) and a fresh data dir, and starts `python -m gateway serve` as a child
process exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from benchmarks.report import Figure

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_USER = "bench"  # an admin of every gateway the harness starts


# --- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does: the full run, or a smoke run that takes seconds."""

    load_seconds: float          # measured window of the closed-loop load tests
    warmup_seconds: float        # excluded from the figures
    clients: int                 # concurrent clients of the load tests
    e2e_batches: int
    state_batches: int
    get_rows: int
    list_rows: int
    list_queries_per_kind: int
    log_lines: int
    log_reads: int
    follow_lines: int
    running_batches: int
    ray_submits: int
    ray_e2e_jobs: int
    profile_seconds: float
    launcher_submits: int        # cluster-mode submits to YARN, one at a time, per launcher
    launcher_queued: int         # submitted at once to a gateway, per launcher

    @staticmethod
    def full() -> Sizes:
        return Sizes(load_seconds=10.0, warmup_seconds=2.0, clients=32, e2e_batches=1000, state_batches=100,
                     get_rows=1000, list_rows=1_000_000, list_queries_per_kind=100, log_lines=10_010_000,
                     log_reads=200, follow_lines=2_000_000, running_batches=1000, ray_submits=300,
                     ray_e2e_jobs=100, profile_seconds=8.0, launcher_submits=10, launcher_queued=50)

    @staticmethod
    def smoke() -> Sizes:
        return Sizes(load_seconds=0.5, warmup_seconds=0.1, clients=8, e2e_batches=10, state_batches=3,
                     get_rows=50, list_rows=10_000, list_queries_per_kind=3, log_lines=50_000,
                     log_reads=10, follow_lines=20_000, running_batches=10, ray_submits=20,
                     ray_e2e_jobs=5, profile_seconds=2.0, launcher_submits=1, launcher_queued=3)


# --- small helpers -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of unsorted values; nan when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def basic_header(user: str = BENCH_USER) -> dict[str, str]:
    token = base64.b64encode(f"{user}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def http_session(user: str = BENCH_USER, timeout: float = 120) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers=basic_header(user), timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=0),
    )


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.05,
                     what: str = "condition") -> float:
    """Poll `check` until it is true; returns the seconds it took. Raises TimeoutError."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await check():
            return loop.time() - start
        if loop.time() - start > timeout:
            raise TimeoutError(f"{what} not reached after {timeout:.0f}s")
        await asyncio.sleep(every)


# --- CPU and memory accounting ---------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def descendants(root: int) -> list[int]:
    """root and every process below it (by ppid), as seen now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / CLK_TCK


class NeighbourSampler:
    """CPU used during a window by processes that are not this run's: other sessions on a shared machine.

    A process is this run's when it descends from the harness, or when its command line or working dir
    is under the run's scratch dir (the detached runners and programs of the gateway's batches).
    Sampled every `every` seconds: a neighbour that starts and ends between two samples is missed.
    """

    def __init__(self, root: Path, every: float = 0.5) -> None:
        self._root = str(root)
        self._every = every
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self._mine: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    def _is_mine(self, pid: int, ppid_of: dict[int, int]) -> bool:
        me = os.getpid()
        seen = 0
        p = pid
        while p > 1 and seen < 64:
            if p == me:
                return True
            p = ppid_of.get(p, 0)
            seen += 1
        try:
            if self._root in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return True
            return os.readlink(f"/proc/{pid}/cwd").startswith(self._root)
        except OSError:
            return False

    def sample(self) -> None:
        stats: dict[int, tuple[int, float, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[19]))
        ppid_of = {pid: st[0] for pid, st in stats.items()}
        for pid, (_, cpu, started) in stats.items():
            key = (pid, started)
            if key not in self._first:
                if pid in self._mine or self._is_mine(pid, ppid_of):
                    self._mine.add(pid)
                    continue
                # A process born during the window counts from zero; one alive at start from its first sample.
                born_during = self._task is not None and started / CLK_TCK > self._started
                self._first[key] = 0.0 if born_during else cpu
            elif pid in self._mine:
                continue
            self._last[key] = cpu

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await asyncio.to_thread(self.sample)

    def start(self) -> None:
        self._started = _uptime()
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.sample()
        return sum(self._last[k] - self._first.get(k, 0.0) for k in self._last)


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


class CpuMeter:
    """CPU seconds used by named process groups between start() and stop()."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]], neighbours: NeighbourSampler | None = None
                 ) -> None:
        self._groups = groups
        self._neighbours = neighbours
        self._before: dict[str, dict[int, float]] = {}
        self._machine = 0.0
        self._wall = 0.0
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self._groups.items():
            per: dict[int, float] = {}
            for pid in pids():
                stat = _proc_stat(pid)
                if stat is not None:
                    per[pid] = stat[1]
            out[name] = per
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._machine = machine_cpu_seconds()
        self._wall = time.monotonic()
        if self._neighbours is not None:
            self._neighbours.start()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        self.wall = time.monotonic() - self._wall
        self.used = {}
        for name, per in after.items():
            before = self._before.get(name, {})
            self.used[name] = sum(v - before.get(pid, 0.0) for pid, v in per.items())
        machine = machine_cpu_seconds() - self._machine
        if self._neighbours is not None:
            self.used["neighbours"] = self._neighbours.stop()
        self.used["machine"] = machine
        return self.used

    def describe(self, per: float = 0.0, unit: str = "req") -> str:
        """'gateway 1.23 s (61%), postgres ...' or per-unit microseconds when `per` is given."""
        parts = []
        for name, secs in self.used.items():
            if per:
                parts.append(f"{name} {secs / per * 1e6:.0f} us/{unit}")
            else:
                parts.append(f"{name} {secs:.2f} s")
        return ", ".join(parts) + f" (wall {self.wall:.1f} s, {os.cpu_count()} cores)"


# --- Postgres --------------------------------------------------------------------------------------


class Postgres:
    """One pgserver instance for the whole run; each scenario gets its own database on it."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "postgres"
        self._server: Any = None
        self.url = ""
        self._counter = 0

    async def start(self) -> None:
        import pgserver

        self._server = await asyncio.to_thread(pgserver.get_server, self.pgdata, cleanup_mode="stop")
        self.url = self._server.get_uri()

    @property
    def pid(self) -> int | None:
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()
        return pid

    def pids(self) -> list[int]:
        pid = self.pid
        return descendants(pid) if pid else []

    async def create_database(self, prefix: str) -> str:
        self._counter += 1
        name = "bench_" + "".join(c if c.isalnum() else "_" for c in prefix) + f"_{self._counter}"
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f"drop database if exists {name} with (force)")
            await conn.execute(f"create database {name}")
        finally:
            await conn.close()
        return with_database(self.url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f"drop database if exists {name} with (force)")
        finally:
            await conn.close()

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None


# The gateway source under test: the working tree, or a `git archive` of a ref (see --ref in run.py).
SOURCE: dict[str, Path] = {"dir": REPO}


def source_dir() -> Path:
    return SOURCE["dir"]


def snapshot(ref: str, into: Path) -> str:
    """Export `ref` of the repository into `into` (git archive: the repository itself is not touched)."""
    import subprocess

    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "gateway", "engines",
                              "schema.sql"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    SOURCE["dir"] = into
    return commit


def describe_source() -> str:
    import subprocess

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if source_dir() != REPO:
        return f"git archive of a ref, in {source_dir()}"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "gateway", "engines",
                            "schema.sql"], capture_output=True, text=True).stdout.strip()
    return f"working tree at {head}" + (" with uncommitted changes to gateway/engines/schema" if dirty else "")


async def apply_schema(url: str) -> None:
    """The gateway's schema.sql, as the gateway applies it at start (for filling a database first)."""
    sql = (source_dir() / "schema.sql").read_text()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# --- the gateway -----------------------------------------------------------------------------------


class ExternalKill(RuntimeError):
    """A process of this run was ended by something outside the harness (a shared machine's neighbours).

    run.py repeats the scenario when this happens, and says so.
    """


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(p) for p in (task / "children").read_text().split()]
    return out


class Gateway:
    """`python -m gateway serve` as a child process on its own data dir."""

    def __init__(self, data_dir: Path, database_url: str, *, port: int | None = None,
                 instance_id: str = "bench:1", env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.workers = workers
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = port or free_port()
        self.instance_id = instance_id
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-gateway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1/batches"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.returncode is not None:
            return []
        if self.workers == 1:
            return [self.pid]
        return [self.pid, *child_pids(self.pid)]  # the parent and its worker processes

    async def start(self, timeout: float = 60) -> Gateway:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "gateway", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--database-url", self.database_url,
                "--instance-id", self.instance_id, "--admin", BENCH_USER, "--workers", str(self.workers)]
        env = {**os.environ, "BATCHGATE_LOG_FORMAT": "json", "BATCHGATE_RETENTION_DAYS": "0", **self.env}
        if source_dir() != REPO:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source_dir()), env.get("PYTHONPATH")) if p)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - handed to the child
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=env, cwd=str(source_dir()))
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.tail_log()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout}s: {self.tail_log()}")

    def tail_log(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """This process's structlog JSON lines with this event name (not an earlier process's on the same dir)."""
        out: list[dict[str, Any]] = []
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("event") == event:
                        out.append(record)
        return out

    def kill9(self) -> None:
        assert self.proc is not None
        self.stopped = True
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.stopped = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def wait(self) -> None:
        if self.proc is not None:
            await self.proc.wait()

    def died(self) -> bool:
        """The process is gone though the harness did not stop it."""
        return self.proc is not None and self.proc.returncode is not None and not self.stopped

    stopped = False
    _log_offset = 0


def kill_programs(data_dir: Path) -> int:
    """Kill what the gateway left running (it never kills applications on shutdown, by design).

    Only processes whose working dir is one of this data dir's batch dirs are touched.
    """
    killed = 0
    batches = data_dir / "batches"
    if not batches.is_dir():
        return 0
    for pids_file in batches.glob("*/pids.json"):
        workdir = pids_file.parent
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            continue
        child = int(pids.get("child", 0))
        runner = int(pids.get("runner", 0))
        try:
            ours = os.readlink(f"/proc/{child}/cwd") == str(workdir)
        except OSError:
            ours = False
        if ours:
            with contextlib.suppress(OSError):
                os.killpg(child, signal.SIGKILL)
                killed += 1
        try:
            runner_ours = str(workdir) in Path(f"/proc/{runner}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            runner_ours = False
        if runner_ours:
            with contextlib.suppress(OSError):
                os.kill(runner, signal.SIGKILL)
    return killed


# --- load generation -------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: Any = None   # JSON-able, sent as application/json
    tag: str = ""


@dataclass
class LoadResult:
    count: int              # requests in the measured window
    total: int              # all requests, warm-up included (for CPU per request)
    errors: int
    elapsed: float
    latencies_ms: dict[str, list[float]]
    status: dict[str, int]
    cpu_seconds: float
    first_send: float       # epoch seconds of the first request sent
    last_done: float        # epoch seconds of the last response received
    collected: list[str] = field(default_factory=list)
    sample_error: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def all_latencies(self) -> list[float]:
        return [v for values in self.latencies_ms.values() for v in values]

    def pct(self, p: float, tag: str | None = None) -> float:
        return percentile(self.latencies_ms.get(tag, []) if tag is not None else self.all_latencies(), p)


async def run_load(port: int, requests: list[Request], *, concurrency: int, duration: float = 0.0,
                   warmup: float = 0.0, count: int = 0, user: str = BENCH_USER, collect: str | None = None,
                   on_start: Callable[[], None] | None = None, timeout: float = 600) -> LoadResult:
    """Run the load generator (benchmarks/loadgen.py) in its own process and return its figures.

    Either `duration` seconds after `warmup` (closed loop: each client sends its next request when
    the previous one is answered), or exactly `count` requests. Requests are taken round-robin.
    `collect` names a JSON string field of the responses to return (e.g. "id").
    """
    spec = {
        "host": "127.0.0.1", "port": port, "concurrency": concurrency, "duration": duration,
        "warmup": warmup, "count": count, "authorization": basic_header(user)["Authorization"],
        "collect": collect,
        "requests": [{"method": r.method, "path": r.path, "tag": r.tag,
                      "body": None if r.body is None else json.dumps(r.body)} for r in requests],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
        spec_path = f.name
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.loadgen", spec_path, cwd=str(REPO),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        if on_start is not None:
            on_start()
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    data = json.loads(out)
    return LoadResult(
        count=data["count"], total=data["total"], errors=data["errors"], elapsed=data["elapsed"],
        latencies_ms=data["latencies_ms"],
        status=data["status"], cpu_seconds=data["cpu_seconds"], first_send=data["first_send"],
        last_done=data["last_done"], collected=data["collected"], sample_error=data["sample_error"],
    )


async def measured_load(meter: CpuMeter, port: int, requests: list[Request], **kwargs: Any) -> LoadResult:
    """run_load with the CPU of every process group (and the client's own) measured around it."""
    meter.start()
    result = await run_load(port, requests, **kwargs)
    meter.stop()
    meter.used["client"] = result.cpu_seconds
    return result


def cpu_detail(meter: CpuMeter, result: LoadResult) -> str:
    """'CPU per request: gateway 310 us, postgres 120 us, client 40 us; machine 2 cores 93% busy'."""
    n = max(result.total, 1)
    parts = [f"{name} {secs / n * 1e6:.0f} us" for name, secs in meter.used.items()
             if name not in ("machine", "neighbours")]
    return f"CPU per request: {', '.join(parts)}; {machine_share(meter)}; {projection(meter, n)}"


def projection(meter: CpuMeter, n: int) -> str:
    """The rate the measured CPU costs allow on an idle machine: the neighbours' noise taken out.

    The gateway is one Python process, so it can use at most one core; all parties share all cores.
    """
    own = {k: v / n for k, v in meter.used.items() if k not in ("machine", "neighbours")}
    total = sum(own.values())
    server = own.get("gateway", own.get("server", 0.0))
    limits = [(os.cpu_count() or 1) / total] if total else []
    if server:
        limits.append(1 / server)
    if not limits:
        return "no projection"
    return f"CPU-bound ceiling on this machine without neighbours: {min(limits):,.0f}/s"


def machine_share(meter: CpuMeter) -> str:
    """How busy the machine was, and how much of it went to processes outside the measured groups."""
    capacity = max(meter.wall, 1e-9) * (os.cpu_count() or 1)
    machine = meter.used.get("machine", 0.0)
    neighbours = meter.used.get("neighbours", 0.0)
    known = sum(v for k, v in meter.used.items() if k not in ("machine", "neighbours"))
    rest = max(machine - known - neighbours, 0.0)
    return (f"machine {machine / capacity * 100:.0f}% busy: neighbours (other sessions) "
            f"{neighbours / capacity * 100:.0f}%, unattributed (batch programs, runners, kernel) "
            f"{rest / capacity * 100:.0f}%")


# --- the run's shared state ------------------------------------------------------------------------


@dataclass
class Context:
    sizes: Sizes
    smoke: bool
    root: Path                  # scratch space of this run
    pg: Postgres
    skip_ray: bool = False
    ray_bin: str | None = None
    shared: dict[str, float] = field(default_factory=dict)   # figures other scenarios compare against
    notes: list[str] = field(default_factory=list)

    def data_dir(self, name: str) -> Path:
        path = self.root / name
        n = 1
        while path.exists():
            n += 1
            path = self.root / f"{name}{n}"
        return path

    async def gateway(self, name: str, database_url: str | None = None, **kwargs: Any) -> Gateway:
        url = database_url or await self.pg.create_database(name)
        return await Gateway(self.data_dir(name), url, **kwargs).start()

    def cpu_meter(self, gateway: Gateway | None = None, extra: dict[str, Callable[[], Iterable[int]]] | None = None
                  ) -> CpuMeter:
        groups: dict[str, Callable[[], Iterable[int]]] = {}
        if gateway is not None:
            groups["gateway"] = gateway.pids
        groups["postgres"] = self.pg.pids
        groups.update(extra or {})
        return CpuMeter(groups, NeighbourSampler(self.root))


@contextlib.asynccontextmanager
async def running_gateway(ctx: Context, name: str, database_url: str | None = None, **kwargs: Any
                          ) -> Any:
    """A gateway for the duration of a scenario; stopped, its programs killed, its database dropped."""
    url = database_url or await ctx.pg.create_database(name)
    gateway = Gateway(ctx.data_dir(name), url, **kwargs)
    try:
        await gateway.start()
        try:
            yield gateway
        except Exception as exc:
            await asyncio.sleep(0.2)  # let the child's exit be seen
            if gateway.died():
                raise ExternalKill(f"the gateway was stopped from outside: {gateway.tail_log(3)}") from exc
            raise
        if gateway.died():
            raise ExternalKill(f"the gateway was stopped from outside: {gateway.tail_log(3)}")
    finally:
        await gateway.stop()
        kill_programs(gateway.data_dir)
        with contextlib.suppress(Exception):
            await ctx.pg.drop_database(url)


def figure(scenario: str, metric: str, value: float, unit: str, *, target: str = "",
           ok: bool | None = None, detail: str = "") -> Figure:
    return Figure(scenario=scenario, metric=metric, value=value, unit=unit, target=target, ok=ok, detail=detail)
