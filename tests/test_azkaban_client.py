"""The `azkaban` client from PyPI (0.9.14) against a live gateway, unchanged: its command line builds a
project of two command jobs with a dependency, uploads it, runs the flow, reads the flow's and a job's
logs and schedules it by cron; its `Session` library waits for an execution to end, unschedules, sets and
reads an SLA, cancels a running flow, and logs in again by itself when its session is unknown."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.live_gateway import in_thread, live_gateway

pytestmark = pytest.mark.slow

AZKABAN = str(Path(sys.executable).parent / "azkaban")
USERS = {"alice": "a-pass"}
ENDED = ("SUCCEEDED", "FAILED", "KILLED")

PROJECT_MODULE = f"""
from azkaban import Job, Project

PY = {sys.executable!r}
PROJECT = Project('clidemo')
PROJECT.add_job('first', Job({{'type': 'command', 'command': PY + ' -c "print(\\'first job speaking\\')"'}}))
PROJECT.add_job('second', Job({{'type': 'command', 'dependencies': 'first',
                                'command': PY + ' -c "print(\\'second job speaking\\')"'}}))
"""


async def azkaban_cli(home: Path, *args: str, timeout: float = 120) -> str:
    """The `azkaban` command, with its own home (its ~/.azkabanrc keeps the session id)."""
    proc = await asyncio.create_subprocess_exec(
        AZKABAN, *args, cwd=str(home), env={**os.environ, "HOME": str(home)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"azkaban {' '.join(args)} exited {proc.returncode}: {text}"
    return text


async def _cli_run(tmp_path: Path, url: str) -> tuple[Path, str]:
    """Build, upload (creating the project) and run: the execution id the CLI printed."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "project.py").write_text(PROJECT_MODULE)
    built = home / "clidemo.zip"
    await azkaban_cli(home, "build", "-p", "project.py", str(built))
    with zipfile.ZipFile(built) as archive:
        assert sorted(archive.namelist()) == ["first.job", "second.job"]
    uploaded = await azkaban_cli(home, "upload", "-c", "-p", "clidemo", "-u", url, str(built))
    assert "Project clidemo successfully uploaded" in uploaded and "version: 1" in uploaded
    ran = await azkaban_cli(home, "run", "-p", "clidemo", "-u", url, "second")
    assert "Flow second successfully submitted (execution id: " in ran
    return home, ran.split("execution id: ")[1].split(")")[0]


def _ended(url: str, execid: str) -> str:
    """Waits for the execution's end through the library (blocking: call it in a thread)."""
    from azkaban.remote import Session

    session = Session(url=url)
    for _ in range(600):
        status = str(session.get_execution_status(execid)["status"])
        if status in ENDED:
            return status
        time.sleep(0.1)
    raise AssertionError(f"execution {execid} still {status}")


async def test_cli_builds_uploads_runs_and_schedules(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw:
        url = f"http://alice:a-pass@127.0.0.1:{gw.port}"
        home, execid = await _cli_run(tmp_path, url)
        assert await asyncio.to_thread(_ended, url, execid) == "SUCCEEDED"
        scheduled = await azkaban_cli(home, "schedule", "-p", "clidemo", "-u", url, "-x", "0 30 5 ? * *",
                                      "-z", "Europe/Paris", "second")
        assert "Flow second scheduled successfully." in scheduled

        from azkaban.remote import Session

        schedule = await asyncio.to_thread(Session(url=url).get_schedule, "clidemo", "second")
        assert schedule["cronExpression"] == "0 30 5 ? * *" and schedule["timezone"] == "Europe/Paris"
        assert schedule["submitUser"] == "alice" and schedule["nextExecTime"]


async def test_cli_reads_flow_and_job_logs(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw:
        url = f"http://alice:a-pass@127.0.0.1:{gw.port}"
        home, execid = await _cli_run(tmp_path, url)
        assert await asyncio.to_thread(_ended, url, execid) == "SUCCEEDED"
        flow_log = await azkaban_cli(home, "log", "-u", url, execid)
        # The flow's log is what the execution did (as Azkaban's flow log is); the programs' output is in
        # the jobs' logs.
        assert "job first SUCCEEDED" in flow_log and "job second SUCCEEDED" in flow_log
        assert "of job clidemo.second SUCCEEDED" in flow_log
        job_log = await azkaban_cli(home, "log", "-u", url, execid, "first")
        assert "first job speaking" in job_log and "second job speaking" not in job_log


def two_job_zip(path: Path, nap: float) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("first.job", f"type=command\ncommand={sys.executable} -c \"print('one')\"\n")
        archive.writestr("second.job", "type=command\ndependencies=first\n"
                                       f"command={sys.executable} -c \"import time; time.sleep({nap})\"\n")
    return path


def library_scenario(url: str, tmp_path: Path) -> dict[str, Any]:
    from azkaban.remote import Execution, Session
    from azkaban.util import AzkabanError

    seen: dict[str, Any] = {}
    session = Session(url=url)
    session.create_project("lib", "the library's project")
    seen["upload"] = session.upload_project("lib", str(two_job_zip(tmp_path / "lib.zip", 0)))
    seen["flows"] = session.get_workflows("lib")
    seen["jobs"] = session.get_workflow_info("lib", "second")
    execution = Execution(session, session.run_workflow("lib", "second")["execid"])
    deadline = time.monotonic() + 60
    while execution.status["status"] not in ENDED:  # waiting for the end, as the library's users do
        assert time.monotonic() < deadline, execution.status
        time.sleep(0.2)
    seen["ended"] = execution.status

    session.schedule_cron_workflow("lib", "second", "0 0 3 ? * *")
    schedule_id = session.get_schedule("lib", "second")["scheduleId"]
    session.set_sla(schedule_id, ["ops@example.com"], ["first,SUCCESS,01:30,true,false", ",FINISH,2:00,false,true"])
    seen["sla"] = session.get_sla(schedule_id)
    session.unschedule_workflow("lib", "second")
    try:
        session.get_schedule("lib", "second")
    except AzkabanError as exc:
        seen["unscheduled"] = str(exc)

    session.upload_project("lib", str(two_job_zip(tmp_path / "slow.zip", 120)))
    running = Execution(session, session.run_workflow("lib", "second")["execid"])
    deadline = time.monotonic() + 60
    while not any(n["id"] == "second" and n["status"] == "RUNNING" for n in running.status["nodes"]):
        assert time.monotonic() < deadline, running.status
        time.sleep(0.2)
    running.cancel()
    while running.status["status"] not in ENDED:
        assert time.monotonic() < deadline, running.status
        time.sleep(0.2)
    seen["cancelled"] = running.status
    try:
        running.cancel()
    except AzkabanError as exc:
        seen["cancel_again"] = str(exc)

    session.id = "an-unknown-session-id-1234"  # the server answers {"error" : "session"}: it logs in again
    seen["relogin"] = session.get_workflows("lib")
    seen["new_id"] = session.id
    return seen


async def test_session_library(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw:
        seen: dict[str, Any] = {}

        def scenario() -> None:
            seen.update(library_scenario(f"http://alice:a-pass@127.0.0.1:{gw.port}", tmp_path))

        await in_thread(scenario)
    assert seen["upload"]["version"] == "1"
    assert seen["flows"]["flows"] == [{"flowId": "second"}]
    assert [n["id"] for n in seen["jobs"]["nodes"]] == ["first", "second"]
    assert seen["ended"]["status"] == "SUCCEEDED"
    assert {n["id"]: n["status"] for n in seen["ended"]["nodes"]} == {"first": "SUCCEEDED", "second": "SUCCEEDED"}
    assert seen["sla"]["settings"] == [
        {"duration": "90m", "rule": "SUCCESS", "id": "first", "actions": ["EMAIL"]},
        {"duration": "120m", "rule": "FINISH", "id": "", "actions": ["KILL"]}]
    assert seen["sla"]["slaEmails"] == ["ops@example.com"]
    assert "Failed to get schedule" in seen["unscheduled"]
    assert seen["cancelled"]["status"] == "KILLED"
    assert "isn't running" in seen["cancel_again"]
    assert seen["relogin"]["flows"] == [{"flowId": "second"}]
    assert seen["new_id"] != "an-unknown-session-id-1234"
