"""The LOCAL engine through the API: the state machine, exit codes, kill, no shell."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from engines.base import Exited, LogLines
from engines.process import ProcessSupervisor
from engines.process_handle import ProcessHandle
from tests.helpers import Api, info


async def test_lifecycle_states_and_fields(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "import time; print('up', flush=True); time.sleep(1.5)"])
    running = await api.wait_for(batch["id"], ("RUNNING",), timeout=20)
    assert running["appState"] == "RUNNING" and running["appId"].startswith("local-")
    assert running["appStartTime"] >= running["createTime"] and running["kyuubiInstance"]
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED"
    assert final["endTime"] >= final["appStartTime"] > 0
    assert info(final, "local")["exit_code"] == 0
    assert info(final, "local")["max_rss_kb"] > 0


async def test_failure_is_error_with_exit_code(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "import sys; print('boom'); sys.exit(3)"])
    final = await api.wait_for(batch["id"])
    assert final["state"] == "ERROR" and final["appState"] == "FAILED"
    assert "exit code 3" in final["appDiagnostic"]
    log = await api.full_log(batch["id"])
    assert "boom" in log
    assert any("[batchgate] state ERROR: exit code 3" in line for line in log)


async def test_program_killed_by_signal_reports_it(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    final = await api.wait_for(batch["id"])
    assert final["state"] == "ERROR" and "SIGSEGV" in final["appDiagnostic"]


async def test_no_shell_arguments_are_literal(api: Api, tmp_path: Path) -> None:
    evil = tmp_path / "pwned"
    batch = await api.submit(resource="/bin/echo", args=["$(touch", f"{evil})", "; rm -rf /", "|", "*"])
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED"
    assert f"$(touch {evil}) ; rm -rf / | *" in await api.full_log(batch["id"])
    assert not evil.exists()


async def test_py_and_sh_resources_and_own_workdir(api: Api, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import os, sys\nprint('cwd', os.getcwd())\nprint('arg', sys.argv[1])\n")
    shell = tmp_path / "hello.sh"
    shell.write_text('echo "sh says $1"\n')  # not executable on purpose: run with /bin/sh
    py_batch = await api.submit(resource=str(script), args=["x"])
    sh_batch = await api.submit(resource=str(shell), args=["y"])
    assert (await api.wait_for(py_batch["id"]))["state"] == "FINISHED"
    assert (await api.wait_for(sh_batch["id"]))["state"] == "FINISHED"
    log = await api.full_log(py_batch["id"])
    assert "arg x" in log
    cwd = next(line for line in log if line.startswith("cwd "))
    assert cwd.endswith(py_batch["id"]), "each batch runs in its own working dir"
    assert "sh says y" in await api.full_log(sh_batch["id"])


async def test_program_on_path_and_environment(api: Api) -> None:
    batch = await api.submit(resource="env")
    await api.wait_for(batch["id"])
    log = await api.full_log(batch["id"])
    assert f"BATCHGATE_BATCH_ID={batch['id']}" in log
    assert not any(line.startswith("BATCHGATE_DATABASE_URL") for line in log), "gateway settings never leak"


async def test_kill_running_batch_is_canceled(api: Api, python: str) -> None:
    program = "import time; print('sleeping', flush=True); time.sleep(120)"
    batch = await api.submit(resource=python, args=["-c", program])
    await api.wait_for(batch["id"], ("RUNNING",), timeout=20)
    result = await api.kill(batch["id"])
    assert result["success"] is True and result["msg"]
    final = await api.wait_for(batch["id"], timeout=10)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED"
    pid = int(final["appId"].split("-")[1])
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    again = await api.kill(batch["id"])
    assert again["success"] is False and "CANCELED" in again["msg"]
    assert any("kill requested by admin" in line for line in await api.full_log(batch["id"]))


async def test_kill_escalates_to_sigkill_after_grace(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(kill_grace_seconds=1.0)
    program = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('ignoring TERM', flush=True)\ntime.sleep(120)")
    batch = await api.submit(resource=python, args=["-c", program])
    await api.wait_for(batch["id"], ("RUNNING",), timeout=20)
    while "ignoring TERM" not in await api.full_log(batch["id"]):
        await asyncio.sleep(0.05)
    await api.kill(batch["id"])
    final = await api.wait_for(batch["id"], timeout=10)
    assert final["state"] == "CANCELED"
    assert info(final, "local")["exit_code"] == -9


async def test_kill_kills_the_whole_process_group(api: Api, python: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    program = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('spawned', flush=True)\ntime.sleep(120)"
    )
    batch = await api.submit(resource=python, args=["-c", program])
    while not pidfile.exists() or not pidfile.read_text():
        await asyncio.sleep(0.05)
    grandchild = int(pidfile.read_text())
    await api.kill(batch["id"])
    await api.wait_for(batch["id"], timeout=10)
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        if "Z" in Path(f"/proc/{grandchild}/stat").read_text().split(")")[1].split()[0]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the program's child outlived the kill")


async def test_kill_queued_batch_before_launch(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_running=1)
    blocker = await api.submit(resource=python, args=["-c", "import time; time.sleep(60)"])
    await api.wait_for(blocker["id"], ("RUNNING",), timeout=20)
    queued = await api.submit(resource=python, args=["-c", "print('never')"])
    await asyncio.sleep(0.3)
    assert (await api.get(queued["id"]))["state"] == "INITIALIZED"
    result = await api.kill(queued["id"])
    assert result["success"] is True
    final = await api.get(queued["id"])
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED" and final["endTime"] > 0
    await api.kill(blocker["id"])
    await api.wait_for(blocker["id"])
    await asyncio.sleep(0.3)
    assert (await api.get(queued["id"]))["state"] == "CANCELED", "a canceled batch never starts later"


async def test_state_visible_right_after_exit(api: Api, python: str) -> None:
    # The exit is seen through pidfd and NOTIFY, not a polling interval: FINISHED shows up promptly.
    batch = await api.submit(resource=python, args=["-c", "pass"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    await api.wait_for(batch["id"], timeout=10)
    assert loop.time() - start < 5


async def test_reattach_from_the_runners_own_record_while_it_runs(tmp_path: Path, python: str) -> None:
    # A gateway that died between the launch and storing the pids re-attaches from pids.json alone. The
    # fork server's runners carry its command line, not the workdir: the recorded start time must do.
    supervisor = ProcessSupervisor()
    await supervisor.start()
    try:
        workdir = tmp_path / "w"
        run = await supervisor.launch([python, "-c", "import time; time.sleep(1.5); print('done')"], workdir, {})
        again = supervisor.attach(ProcessHandle(workdir=str(workdir)), 0)
        assert again is not None and again.handle.runner_pid == run.handle.runner_pid
        events = [event async for event in again.output()]
        assert isinstance(events[-1], Exited) and events[-1].app_state == "FINISHED", events[-1]
        assert any(isinstance(e, LogLines) and "done" in e.lines for e in events)
    finally:
        await supervisor.close()
