"""The launcher wrapper: `python engines/runner.py WORKDIR -- PROGRAM ARGS...` (standard library only).

It detaches from the gateway (double fork, new session), so that the application outlives a gateway
restart or crash. It sends the program's stdout and stderr to WORKDIR/output.log, which the gateway
tails, and writes WORKDIR/exit.json with the exit status and wait4() usage when the program ends.
It prints one line to its stdout for the gateway: "started <runner pid> <program pid>" or
"error <message>". No shell is involved anywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

OUTPUT = "output.log"
EXIT = "exit.json"
PIDS = "pids.json"


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _report(line: str) -> None:
    # The gateway that launched us may be gone already (killed mid-launch): that must not stop the run.
    try:
        os.write(1, (line + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(1)


def _start_ticks() -> int:
    """This process's start time in clock ticks since boot (field 22 of /proc/self/stat)."""
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _supervise(workdir: Path, argv: list[str]) -> int:
    # The gateway's signals to the program go to the program's own process group; the runner keeps
    # going so that it can record how the program ended.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    out = open(workdir / OUTPUT, "ab", buffering=0)  # handed to the child, closed after the spawn
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            process_group=0, close_fds=True,
        )
    except OSError as exc:
        message = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
        _write_json(workdir / EXIT, {"exit_code": None, "error": message})
        _report(f"error {message}")
        return 1
    out.close()
    # The start time tells this runner from a later process that reuses its pid. A gateway that died
    # before it stored the pids re-attaches from this file alone, and the command line does not name the
    # workdir when the runner was forked by the fork server.
    _write_json(workdir / PIDS, {"runner": os.getpid(), "child": child.pid, "runner_start": _start_ticks()})
    _report(f"started {os.getpid()} {child.pid}")
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except InterruptedError:
            continue
    result: dict[str, object] = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "user_seconds": round(usage.ru_utime, 3),
        "system_seconds": round(usage.ru_stime, 3),
        "max_rss_kb": usage.ru_maxrss,
    }
    _write_json(workdir / EXIT, result)
    return 0


def _detach_and_supervise(workdir: Path, argv: list[str], report_fd: int) -> None:
    """In a fresh child: leave the caller's session, fork once more, and supervise. Never returns."""
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    # Keep only stdin, stdout (the report channel) and stderr: an event loop may have left other
    # copies of the channel open in us, and the gateway waits for its end-of-file.
    if report_fd != 1:
        os.dup2(report_fd, 1)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 2)
    if devnull > 2:
        os.close(devnull)
    try:
        code = _supervise(workdir, argv)
    except BaseException as exc:
        _write_json(workdir / EXIT, {"exit_code": None, "error": f"runner failed: {exc!r}"})
        code = 1
    os._exit(code)


def serve(socket_path: str) -> int:
    """A fork server: one small process per gateway that forks a runner per launch request.

    Forking this process costs a millisecond; starting a Python interpreter per launch costs tens.
    A request is one JSON line {"workdir", "argv", "env"} on a Unix socket connection; the answer is
    the runner's report line. It exits when its standard input (a pipe from the gateway) closes.
    """
    import select
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(64)
    os.write(1, b"ready\n")
    while True:
        readable, _, _ = select.select([server.fileno(), 0], [], [])
        if 0 in readable and not os.read(0, 4096):
            return 0  # the gateway is gone
        if server.fileno() not in readable:
            continue
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            try:
                request = json.loads(data)
                workdir, argv, env = Path(request["workdir"]), list(request["argv"]), dict(request["env"])
            except (ValueError, KeyError, TypeError):
                conn.sendall(b"error malformed launch request\n")
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                os.environ.clear()
                os.environ.update(env)
                _detach_and_supervise(workdir, argv, conn.fileno())
            os.waitpid(pid, 0)  # the intermediate child exits at once; the runner is re-parented


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--serve":
        return serve(argv[1])
    if len(argv) < 3 or argv[1] != "--":
        print("usage: runner.py WORKDIR -- PROGRAM [ARGS...] | runner.py --serve SOCKET", file=sys.stderr)
        return 2
    if os.fork() != 0:
        return 0  # the gateway reaps this one at once; the grandchild is re-parented
    _detach_and_supervise(Path(argv[0]), argv[2:], 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
