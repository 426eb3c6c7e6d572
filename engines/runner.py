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
    _write_json(workdir / PIDS, {"runner": os.getpid(), "child": child.pid})
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


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: runner.py WORKDIR -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    workdir = Path(argv[0])
    if os.fork() != 0:
        return 0  # the gateway reaps this one at once; the grandchild is re-parented
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    # Keep only stdin, stdout (the pipe to the gateway) and stderr: an event loop may have left other
    # copies of the pipe open in us, and the gateway waits for the pipe's end-of-file.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 2)
    if devnull > 2:
        os.close(devnull)
    try:
        code = _supervise(workdir, argv[2:])
    except BaseException as exc:
        _write_json(workdir / EXIT, {"exit_code": None, "error": f"runner failed: {exc!r}"})
        code = 1
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
