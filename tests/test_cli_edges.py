"""What a newcomer tripped over in the CLI (issue 20): the exit code of killing an ended batch, id
prefixes, trailing padding, messages broken in the middle, state lines that lagged behind a poll, a
missing password, and times without their zone."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.client import Client
from tests.gateway_process import GatewayProcess
from tests.helpers import basic
from tests.test_cli import BATCHGATE, PY, _started, client, run

# The fixtures env and gateway: imported, pytest finds them here as if this module had defined them.
from tests.test_cli import env as env
from tests.test_cli import gateway as gateway

PREFIX = "abcdef01"


def _id(n: int) -> str:
    return f"{PREFIX}-{n:04d}-4000-8000-000000000000"


async def test_kill_of_an_ended_batch_exits_4(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
        bg.wait(batch.id, timeout=30)
    again = await run(env, "kill", batch.id)
    assert again.code == 4, again
    assert f"batch {batch.id} is already FINISHED" in again.err and again.out == ""
    as_json = await run(env, "kill", batch.id, "-o", "json")
    assert as_json.code == 4 and as_json.json()["success"] is False


async def test_id_prefixes(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        for n in (1, 2):
            bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "name": f"twin{n}",
                       "conf": {"kyuubi.batch.id": _id(n)}})
        lone = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "print('lone')"], "name": "lone"})
        bobs = Client(gateway.url, user="bob", password="b-pass")
        with bobs:
            theirs = bobs.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
        for batch_id in (_id(1), _id(2), lone.id):
            bg.wait(batch_id, timeout=30)

    got = await run(env, "get", lone.id[:8], "-o", "json")
    assert got.code == 0 and got.json()["id"] == lone.id, got.err
    log = await run(env, "log", lone.id[:8])
    assert log.code == 0 and "lone" in log.out.splitlines()
    twin = await run(env, "get", f"{PREFIX}-000", "-o", "json")
    assert twin.code == 2 and _id(1) in twin.err and _id(2) in twin.err and "give more" in twin.err, twin
    one = await run(env, "details", f"{PREFIX}-0002", "-o", "json")
    assert one.code == 0 and one.json()["batch"]["id"] == _id(2), one.err
    ambiguous = await run(env, "kill", PREFIX)
    assert ambiguous.code == 2 and "the start of 2 batch ids" in ambiguous.err, ambiguous
    unknown = await run(env, "get", "ffffffff")
    assert unknown.code == 4 and "no batch you may see" in unknown.err
    others = await run(env, "get", theirs.id[:8])
    assert others.code == 4, "bob's batch is not alice's to find by prefix"
    not_an_id = await run(env, "get", "not-an-id")
    assert not_an_id.code == 4 and "not a valid batch id" in not_an_id.err


async def test_no_trailing_padding(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "name": "a" * 40})
        bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "name": "b"})
        bg.wait(batch.id, timeout=30)
    for args in (["list"], ["get", batch.id], ["details", batch.id]):
        result = await run(env, *args)
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines and all(line == line.rstrip() for line in lines), (args, [ln for ln in lines if ln != ln.rstrip()])


async def test_times_say_their_zone(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
        bg.wait(batch.id, timeout=30)
    in_paris = await run({**env, "TZ": "Europe/Paris"}, "get", batch.id)
    created = next(line for line in in_paris.out.splitlines() if line.startswith("created"))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T$", created), created
    listed = await run({**env, "TZ": "UTC"}, "list")
    assert re.search(r"\d\d:\d\d:\d\d UTC", listed.out), listed.out


async def test_missing_password_is_named(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "BATCHGATE_PASSWORD"}
    result = await run(bare, "list")
    assert result.code == 5
    assert "no password given for user 'alice'" in result.err and "BATCHGATE_PASSWORD" in result.err, result.err


async def test_missing_password_over_http(gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/api/v1/batches", headers=basic("alice")) as resp:
        assert resp.status == 401 and "no password given" in (await resp.json())["message"]


async def test_kill_on_interrupt_message_is_one_line(env: dict[str, str], gateway: GatewayProcess) -> None:
    proc = await asyncio.create_subprocess_exec(
        BATCHGATE, "submit", "--type", "LOCAL", "--resource", PY, "--name", "long", "--follow",
        "--kill-on-interrupt", "--", "-c", "import time\nprint('started', flush=True)\ntime.sleep(60)",
        env={**env, "COLUMNS": "60"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    await _started(proc, b"started")
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    line = next(ln for ln in err.decode().splitlines() if "interrupted" in ln)
    assert re.fullmatch(r"batchgate: interrupted; kill: kill requested for batch [0-9a-f-]{36}", line) or \
        re.fullmatch(r"batchgate: interrupted; kill: batch [0-9a-f-]{36} canceled", line), err.decode()


async def _requests(gateway: GatewayProcess, route: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.url}/metrics") as resp:
        text = await resp.text()
    pattern = re.compile(r'^batchgate_http_requests_total\{(.*)\} (\S+)$', re.M)
    return sum(float(value) for labels, value in pattern.findall(text)
               if f'route="{route}"' in labels and 'method="GET"' in labels)


async def _stderr_until(proc: asyncio.subprocess.Process, pattern: str, timeout: float = 60) -> str:
    assert proc.stderr is not None
    seen = ""
    while not re.search(pattern, seen):
        raw = await asyncio.wait_for(proc.stderr.readline(), timeout)
        assert raw, f"ended before {pattern!r}: {seen}"
        seen += raw.decode()
    return seen


async def test_waiting_follows_events_not_a_poll(env: dict[str, str], gateway: GatewayProcess, tmp_path: Path) -> None:
    """State lines come as the gateway's batch events arrive: waiting asks for the batch not once. Each
    batch runs until the test lets it finish (a flag file), so the RUNNING line is seen whatever the load."""
    def held(flag: Path) -> list[str]:
        return ["-c", f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"]

    with client(gateway) as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": held(tmp_path / "go-1")})
    before = await _requests(gateway, "/api/v1/batches/{batch_id}")
    proc = await asyncio.create_subprocess_exec(BATCHGATE, "get", batch.id, "--wait", env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = await _stderr_until(proc, rf"{batch.id} RUNNING after")
    (tmp_path / "go-1").touch()
    seen += (await asyncio.wait_for(proc.communicate(), 60))[1].decode()
    assert proc.returncode == 0 and f"{batch.id} FINISHED in" in seen, seen
    assert await _requests(gateway, "/api/v1/batches/{batch_id}") == before, "no polling GET of the batch"

    proc = await asyncio.create_subprocess_exec(BATCHGATE, "submit", "--type", "LOCAL", "--resource", PY,
                                                "--follow", "--", *held(tmp_path / "go-2"), env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = await _stderr_until(proc, r"RUNNING after")
    (tmp_path / "go-2").touch()
    seen += (await asyncio.wait_for(proc.communicate(), 60))[1].decode()
    assert proc.returncode == 0 and "FINISHED in" in seen, seen
    assert await _requests(gateway, "/api/v1/batches/{batch_id}") <= before + 1, "at most one read at the end"


async def _lines_until(proc: asyncio.subprocess.Process, check: Any, timeout: float = 30) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert raw, f"top ended: {lines}"
        lines.append(raw.decode().rstrip("\n"))
        if check(lines[-1]):
            return lines


async def test_top_shows_changes_as_they_happen(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        running = bg.submit({"batchType": "LOCAL", "resource": PY, "name": "already-running",
                             "args": ["-c", "import time; print('up', flush=True); time.sleep(60)"]})
    proc = await asyncio.create_subprocess_exec(BATCHGATE, "top", env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    try:
        head = await _lines_until(proc, lambda line: line.startswith("ID "))
        assert head[0].startswith("batchgate top") and " queued" in head[0], head
        await _lines_until(proc, lambda line: running.id in line)  # the snapshot's row
        with client(gateway) as bg, Client(gateway.url, user="bob", password="b-pass") as bob:
            theirs = bob.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
            new = bg.submit({"batchType": "LOCAL", "resource": PY, "name": "new-one",
                             "args": ["-c", "import time; time.sleep(0.5)"]})
            seen = await _lines_until(proc, lambda line: new.id in line and " FINISHED " in line)
            bg.kill(running.id)
            seen += await _lines_until(proc, lambda line: running.id in line and " CANCELED " in line)
        mine = [line for line in seen if new.id in line]
        assert any(" RUNNING " in line for line in mine), seen
        assert all(line == line.rstrip() for line in seen)
        assert not any(theirs.id in line for line in seen), "bob's batch is not alice's to see"
        assert re.match(r"\d\d:\d\d:\d\d \S+  " + new.id, mine[-1]), "each line says when, and in which zone"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 130


async def test_top_as_json_lines(env: dict[str, str], gateway: GatewayProcess) -> None:
    proc = await asyncio.create_subprocess_exec(BATCHGATE, "top", "-o", "json", env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    try:
        first = await _lines_until(proc, lambda line: True)
        assert json.loads(first[0]) == {"snapshot": []}
        with client(gateway) as bg:
            batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]})
            lines = await _lines_until(proc, lambda line: '"FINISHED"' in line)
        events = [json.loads(line) for line in lines]
        assert all(e["batch"]["id"] == batch.id for e in events) and events[-1]["batch"]["state"] == "FINISHED"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)


async def test_top_on_a_terminal(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": PY, "name": "on-screen",
                           "args": ["-c", "import time; print('up', flush=True); time.sleep(60)"]})

    def on_terminal() -> bytes:
        leader, follower = pty.openpty()
        proc = subprocess.Popen([BATCHGATE, "top"], env={**env, "TERM": "xterm-256color"}, stdin=follower,
                                stdout=follower, stderr=follower, close_fds=True)
        os.close(follower)
        try:
            out = b""
            deadline = time.monotonic() + 30
            while b"RUNNING" not in out and time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], 0.2)
                if ready:
                    out += os.read(leader, 4096)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            return out
        finally:
            os.close(leader)

    out = (await asyncio.to_thread(on_terminal)).decode(errors="replace")
    assert batch.id in out and "on-screen" in out and "RUNNING" in out, out
    with client(gateway) as bg:
        bg.kill(batch.id)
