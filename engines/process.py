"""Launching and watching detached processes: exit by pidfd, output by inotify, kill by process group.

Every engine launches its process (a LOCAL program, spark-submit, flink run) through engines.runner,
so the process survives a gateway restart and its output lands in a file that any later gateway
process can replay from a byte offset.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from engines.base import EngineError, Exited, LogLines
from engines.process_handle import ProcessExit, ProcessHandle
from engines.runner import EXIT, OUTPUT, PIDS

try:
    from asyncinotify import Inotify, Mask
except ImportError:  # not Linux: fall back to a slow timer
    Inotify = None  # type: ignore[assignment,misc]

log = structlog.get_logger("engines.process")
RUNNER = str(Path(__file__).with_name("runner.py"))

READ_CHUNK = 1 << 20
# The longest line stored as it is. A longer line keeps its first LINE_LIMIT bytes (cut at a character
# boundary) and ends with the marker " [truncated: N bytes]", N being its whole length; what follows it is
# read as usual, so a line of any length never costs the lines after it (docs/operations.md, "Logs").
LINE_LIMIT = 64 * 1024
TRUNCATED = " [truncated: {} bytes]"
MIN_FLUSH_INTERVAL = 0.02  # seconds between two reads of a chatty output, to batch database writes
FALLBACK_POLL = 0.5  # only when inotify is unavailable or a change was missed


def _proc_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


class ProcessSupervisor:
    """Shared by the engines of one gateway: one inotify descriptor for every watched output file."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._inotify: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._changed: dict[int, asyncio.Event] = {}
        self._spawner: asyncio.subprocess.Process | None = None
        self._spawner_path: str | None = None
        self._spawner_dir: str | None = None

    async def start(self) -> None:
        if Inotify is not None:
            self._inotify = Inotify()
            self._reader = asyncio.create_task(self._dispatch(), name="inotify")
        await self._start_spawner()

    async def _start_spawner(self) -> None:
        """The runner's fork server: a launch becomes a fork, not a new interpreter."""
        self._spawner_dir = tempfile.mkdtemp(prefix="bg-spawn-")  # short: a socket path has a length limit
        path = os.path.join(self._spawner_dir, "runner.sock")
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python, "-I", "-S", RUNNER, "--serve", path, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            )
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), 10)
        except (OSError, TimeoutError) as exc:
            log.warning("spawner.unavailable", error=str(exc))
            return
        if ready.strip() != b"ready":
            log.warning("spawner.unavailable", said=ready.decode(errors="replace"))
            return
        self._spawner = proc
        self._spawner_path = path

    async def close(self) -> None:
        if self._spawner is not None:
            assert self._spawner.stdin is not None
            self._spawner.stdin.close()  # its signal to exit; running batches are not its children
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self._spawner.wait(), 5)
            self._spawner = None
        if self._spawner_dir:
            shutil.rmtree(self._spawner_dir, ignore_errors=True)
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._inotify is not None:
            self._inotify.close()

    async def _dispatch(self) -> None:
        async for event in self._inotify:
            if event.watch is not None:
                changed = self._changed.get(event.watch.wd)
                if changed is not None:
                    changed.set()

    def watch(self, path: Path) -> tuple[asyncio.Event, Any]:
        changed = asyncio.Event()
        if self._inotify is None:
            return changed, None
        watch = self._inotify.add_watch(path, Mask.MODIFY)
        self._changed[watch.wd] = changed
        return changed, watch

    def unwatch(self, watch: Any) -> None:
        if watch is None or self._inotify is None:
            return
        self._changed.pop(watch.wd, None)
        with contextlib.suppress(OSError, ValueError):
            self._inotify.rm_watch(watch)

    async def launch(self, argv: list[str], workdir: Path, env: dict[str, str]) -> ProcessRun:
        """Start argv under the runner in workdir; raises EngineError if it cannot start."""
        await asyncio.to_thread(_prepare_workdir, workdir)
        line = await self._spawn(workdir, argv, env) if self._spawner_path else None
        if line is None:
            # -I -S: the runner needs only the standard library, and starts faster without site-packages.
            proc = await asyncio.create_subprocess_exec(
                self.python, "-I", "-S", RUNNER, str(workdir), "--", *argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=env, start_new_session=True,
            )
            assert proc.stdout is not None
            line = (await proc.stdout.read()).decode(errors="replace").strip()
            await proc.wait()
        if line.startswith("error "):
            raise EngineError(line[len("error "):])
        parts = line.split()
        if len(parts) != 3 or parts[0] != "started":
            raise EngineError(f"launcher failed to start (said {line!r})")
        runner_pid, child_pid = int(parts[1]), int(parts[2])
        handle = ProcessHandle(runner_pid=runner_pid, child_pid=child_pid, runner_start=_proc_start_ticks(runner_pid),
                               workdir=str(workdir))
        return ProcessRun(self, handle, offset=0)

    async def _spawn(self, workdir: Path, argv: list[str], env: dict[str, str]) -> str | None:
        """Ask the fork server for a runner; None if it is not there (then the caller execs one)."""
        assert self._spawner_path is not None
        try:
            reader, writer = await asyncio.open_unix_connection(self._spawner_path)
        except OSError as exc:
            log.warning("spawner.lost", error=str(exc))
            self._spawner_path = None
            return None
        try:
            request = {"workdir": str(workdir), "argv": argv, "env": env}
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace").strip()
        finally:
            writer.close()

    def attach(self, handle: ProcessHandle, offset: int) -> ProcessRun | None:
        """Re-attach to a runner started by an earlier gateway process, or None if nothing is left."""
        workdir = Path(handle.workdir or "")
        if not (workdir / OUTPUT).exists():
            return None
        if handle.runner_pid is None:
            # Launched, but the gateway died before it stored the pids: the runner wrote them down.
            pids = read_pids(workdir)
            if pids is None:
                return None
            handle = handle.model_copy(update={"runner_pid": pids["runner"], "child_pid": pids["child"],
                                               "runner_start": pids.get("runner_start")})
        return ProcessRun(self, handle, offset=offset)


class ProcessRun:
    """One runner-supervised process, followed from a byte offset of its output."""

    def __init__(self, supervisor: ProcessSupervisor, handle: ProcessHandle, offset: int) -> None:
        if handle.workdir is None or handle.runner_pid is None or handle.child_pid is None:
            raise ValueError("a process handle names its working dir, its runner and its program")
        self._sup = supervisor
        self.handle = handle
        self.workdir = Path(handle.workdir)
        self.runner_pid: int = handle.runner_pid
        self.child_pid: int = handle.child_pid
        self._offset = offset
        self._line = _LineBuffer()
        self._detached = asyncio.Event()
        self._exited = asyncio.Event()
        self.kill_requested = False

    @property
    def pid(self) -> int:
        return self.child_pid

    def _runner_alive(self) -> bool:
        pid = self.runner_pid
        started = self.handle.runner_start
        if started is not None:
            return bool(_proc_start_ticks(pid) == started)
        # No start time recorded: make sure the pid was not reused, by the runner's command line.
        try:
            return str(self.workdir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False

    async def _wait_exit(self) -> None:
        """Resolves when the runner has exited: pidfd readability, no polling."""
        pid = self.runner_pid
        if not self._runner_alive():
            return
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(fd, ready)
        try:
            if self._runner_alive():  # it may have exited between the check and the pidfd
                await done
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    def _read_available(self) -> tuple[list[str], int, bool]:
        """The complete lines in the next chunk of output, the offset after the last of them (where a replay
        starts), and whether anything was read: a chunk inside a long line completes no line, and the
        reader must go on rather than wait for more output that may never come."""
        with open(self.workdir / OUTPUT, "rb") as f:
            f.seek(self._offset)
            data = f.read(READ_CHUNK)
        if not data:
            return [], self._offset - self._line.size, False
        self._offset += len(data)
        lines: list[str] = []
        start = 0
        while (cut := data.find(b"\n", start)) >= 0:
            self._line.add(data[start:cut])
            lines.append(self._line.take())
            start = cut + 1
        self._line.add(data[start:])
        return lines, self._offset - self._line.size, True

    async def output(self) -> AsyncIterator[LogLines | Exited]:
        """Output lines as they are written, then the exit status once the runner is gone."""
        changed, watch = self._sup.watch(self.workdir / OUTPUT)
        exit_task = asyncio.create_task(self._wait_exit())
        detached = asyncio.create_task(self._detached.wait())
        try:
            last = 0.0
            while True:
                lines, offset, progressed = await asyncio.to_thread(self._read_available)
                if lines:
                    yield LogLines(lines, offset)
                    last = time.monotonic()
                if progressed:
                    continue  # more may be waiting past READ_CHUNK
                if exit_task.done():
                    self._exited.set()
                    break
                changed.clear()
                wait_for: set[asyncio.Future[Any]] = {exit_task, detached, asyncio.ensure_future(changed.wait())}
                await asyncio.wait(wait_for, timeout=FALLBACK_POLL if watch is None else 30.0,
                                   return_when=asyncio.FIRST_COMPLETED)
                for fut in wait_for - {exit_task, detached}:
                    fut.cancel()
                if detached.done():
                    return
                pause = MIN_FLUSH_INTERVAL - (time.monotonic() - last)
                if pause > 0 and not exit_task.done():
                    await asyncio.sleep(pause)  # coalesce a burst of small writes into one append
            # Drain what was written between the last read and the exit.
            while True:
                lines, offset, progressed = await asyncio.to_thread(self._read_available)
                if lines:
                    yield LogLines(lines, offset)
                if not progressed:
                    break
            if self._line.size:  # a last line without a newline is part of the log too
                yield LogLines([self._line.take()], self._offset)
            yield self._exit_status()
        finally:
            self._sup.unwatch(watch)
            exit_task.cancel()
            detached.cancel()

    def _exit_status(self) -> Exited:
        path = self.workdir / EXIT
        try:
            status = ProcessExit.parse(json.loads(path.read_text()))
        except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
            return Exited("KILLED" if self.kill_requested else "FAILED",
                          "the launcher died without recording an exit status")
        code = status.exit_code
        if code is None:
            return Exited("FAILED", status.error or "the program could not be started", status)
        if code == 0:
            return Exited("FINISHED", None, status)
        if self.kill_requested:
            return Exited("KILLED", f"killed on request (exit code {code})", status)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return Exited("FAILED", f"terminated by signal {name} (exit code {code})", status)
        return Exited("FAILED", f"exit code {code}", status)

    def signal_group(self, sig: signal.Signals) -> bool:
        try:
            os.killpg(self.child_pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    async def terminate(self, grace: float) -> None:
        """SIGTERM to the process group, then SIGKILL if it is still there after `grace` seconds."""
        self.kill_requested = True
        if not self.signal_group(signal.SIGTERM):
            return
        self.signal_group(signal.SIGCONT)  # a stopped group cannot act on SIGTERM
        # Wait on the runner's pidfd, not on the output reader: a kill may come before anyone reads.
        try:
            await asyncio.wait_for(self._wait_exit(), grace)
        except TimeoutError:
            self.signal_group(signal.SIGKILL)

    def detach(self) -> None:
        self._detached.set()


class _LineBuffer:
    """The line being read: its first LINE_LIMIT bytes, and how long it is so far."""

    def __init__(self) -> None:
        self._head = bytearray()
        self.size = 0

    def add(self, data: bytes) -> None:
        room = LINE_LIMIT - len(self._head)
        if room > 0:
            self._head += data[:room]
        self.size += len(data)

    def take(self) -> str:
        """The line as stored: invalid UTF-8 becomes U+FFFD; a CR before the newline (CRLF) is dropped; an
        over-long line is cut at a character boundary and marked."""
        head, size = bytes(self._head), self.size
        self._head.clear()
        self.size = 0
        if size <= LINE_LIMIT:
            return head.removesuffix(b"\r").decode(errors="replace")
        # An incremental decoder holds back a character cut in half instead of replacing it.
        text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
        return text + TRUNCATED.format(size)


def _prepare_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / OUTPUT).touch()


def read_pids(workdir: Path) -> dict[str, int] | None:
    """What the runner wrote down: runner and child pids, and the runner's start time."""
    try:
        data: dict[str, int] = json.loads((workdir / PIDS).read_text())
        return data
    except (OSError, ValueError):
        return None


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The gateway's environment without its own settings (which may hold credentials)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    env.update(extra or {})
    return env
