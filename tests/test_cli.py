"""The installed `batchgate` console script against a live gateway: every subcommand, exit codes,
--output json, request files, config file permissions, clear errors, Ctrl-C, and the spinner on a
terminal versus plain lines when piped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from tests.gateway_process import GatewayProcess, free_port
from tests.live_gateway import live_gateway

BATCHGATE = str(Path(sys.executable).parent / "batchgate")
PY = sys.executable
TICKER = "import time\nfor i in range(8):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.05)"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
async def gateway(tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    async with live_gateway(tmp_path, database_url) as gw:
        yield gw


@pytest.fixture
def env(gateway: GatewayProcess, tmp_path: Path) -> dict[str, str]:
    """The environment of every run: the gateway and alice's credentials, and no config file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    return {**clean, "BATCHGATE_URL": gateway.url, "BATCHGATE_USER": "alice", "BATCHGATE_PASSWORD": "a-pass",
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "COLUMNS": "200"}


async def run(env: dict[str, str], *args: str, stdin: bytes | None = None, timeout: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        BATCHGATE, *args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def client(gateway: GatewayProcess) -> Client:
    return Client(gateway.url, user="alice", password="a-pass")


async def test_submit_follow_exits_with_the_batch_result(env: dict[str, str]) -> None:
    ok = await run(env, "submit", "--type", "LOCAL", "--resource", PY, "--name", "ticks", "--follow",
                   "--arg", "-c", "--arg", TICKER)
    assert ok.code == 0, ok.err
    assert [ln for ln in ok.out.splitlines() if ln.startswith("tick")] == [f"tick {i}" for i in range(8)]
    assert "FINISHED" in ok.err and "submitted" in ok.err, "progress goes to stderr, the log to stdout"
    assert "⠋" not in ok.err, "no spinner when piped"

    failed = await run(env, "submit", "--type", "LOCAL", "--resource", PY, "--follow", "--",
                       "-c", "import sys; print('boom'); sys.exit(3)")
    assert failed.code == 1, failed.err
    assert "boom" in failed.out and "ERROR" in failed.err and "exit code 3" in failed.err

    waited = await run(env, "submit", "--type", "LOCAL", "--resource", PY, "--wait", "-o", "json", "--",
                       "-c", "print('qu' + 'iet')")
    assert waited.code == 0 and waited.json()["state"] == "FINISHED" and "quiet" not in waited.out

    numbered = await run(env, "submit", "--type", "LOCAL", "--resource", PY, "--follow", "-o", "json", "--",
                         "-c", "print('a'); print('b')")
    events = [json.loads(line) for line in numbered.out.splitlines()]
    assert numbered.code == 0 and [e["line"] for e in events[:-1]] == list(range(len(events) - 1))
    assert {"a", "b"} <= {e["text"] for e in events[:-1]} and events[-1]["batch"]["state"] == "FINISHED"


async def test_submit_from_request_files(env: dict[str, str], tmp_path: Path, gateway: GatewayProcess) -> None:
    as_json = tmp_path / "req.json"
    as_json.write_text(json.dumps({"batchType": "LOCAL", "resource": PY, "name": "from-json",
                                   "args": ["-c", "print('json')"], "conf": {"a": "1", "b": "2"}}))
    as_yaml = tmp_path / "req.yaml"
    as_yaml.write_text(f"batchType: LOCAL\nresource: {PY}\nname: from-yaml\nargs: ['-c', \"print('yaml')\"]\n")

    made = await run(env, "submit", "-f", str(as_json), "--conf", "b=3", "--name", "renamed", "-o", "json")
    assert made.code == 0, made.err
    batch = made.json()
    assert batch["name"] == "renamed" and batch["state"] == "INITIALIZED"
    with client(gateway) as bg:
        assert bg.wait(batch["id"], timeout=30).state == "FINISHED"
    from_yaml = await run(env, "submit", "-f", str(as_yaml), "--follow")
    assert from_yaml.code == 0 and "yaml" in from_yaml.out.splitlines()
    from_stdin = await run(env, "submit", "-f", "-", "-o", "json",
                           stdin=json.dumps({"batchType": "LOCAL", "resource": PY, "args": ["-c", "1"]}).encode())
    assert from_stdin.code == 0 and from_stdin.json()["batchType"] == "LOCAL"

    broken = tmp_path / "broken.yaml"
    broken.write_text("batchType: [LOCAL\n")
    for args, words in (
        (["submit", "-f", str(broken)], "not valid"),
        (["submit", "-f", str(tmp_path / "missing.json")], "missing.json"),
        (["submit", "--resource", PY], "--type"),
        (["submit", "--type", "LOCAL", "--resource", PY, "--conf", "novalue"], "key=value"),
    ):
        bad = await run(env, *args)
        assert bad.code == 2 and words in bad.err, (args, bad.err)
    refused = await run(env, "submit", "--type", "LOCAL")
    assert refused.code == 4 and "resource: required" in refused.err, "the gateway's own message"
    unknown = await run(env, "submit", "--type", "NOPE", "--resource", PY)
    assert unknown.code == 4 and "batchType: must be one of" in unknown.err, "the gateway knows the types, not the CLI"


@pytest.mark.slow
async def test_every_batch_subcommand(env: dict[str, str], gateway: GatewayProcess) -> None:
    with client(gateway) as bg:
        done = bg.submit({"batchType": "LOCAL", "resource": PY, "name": "nightly-etl", "args": ["-c", TICKER]})
        bg.wait(done.id, timeout=30)
        slow = bg.submit({"batchType": "LOCAL", "resource": PY, "name": "slow",
                          "args": ["-c", "import time; print('up', flush=True); time.sleep(60)"]})
        deadline = time.monotonic() + 20
        while bg.batch(slow.id).state != "RUNNING":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    listed = await run(env, "list", "-o", "json")
    assert listed.code == 0 and listed.json()["total"] == 2
    assert [b["id"] for b in listed.json()["batches"]] == [slow.id, done.id], "newest first"
    assert [b["id"] for b in (await run(env, "list", "--asc", "-o", "json")).json()["batches"]] == [done.id, slow.id]
    for args, expected in (
        (["--state", "FINISHED"], [done.id]), (["--state", "running,finished"], [slow.id, done.id]),
        (["--name", "slow"], [slow.id]), (["--key", "etl"], [done.id]), (["--type", "SPARK"], []),
        (["--since", "1h"], [slow.id, done.id]), (["--since", "2999-01-01"], []), (["--until", "1d"], []),
        (["--size", "1", "--from", "1"], [done.id]), (["--all", "--state", "FINISHED,RUNNING"], [slow.id, done.id]),
        (["--sort", "name", "--asc"], [done.id, slow.id]),
    ):
        result = await run(env, "list", *args, "-o", "json")
        assert result.code == 0, (args, result.err)
        assert [b["id"] for b in result.json()["batches"]] == expected, args
    table = await run(env, "list")
    assert table.code == 0 and "nightly-etl" in table.out and "RUNNING" in table.out and "1-2 of 2" in table.err
    assert (await run(env, "list", "--batch-user", "bob")).code == 4, "another user's list needs admin"

    got = await run(env, "get", done.id, "-o", "json")
    assert got.code == 0 and got.json()["id"] == done.id and got.json()["state"] == "FINISHED"
    shown = await run(env, "get", done.id)
    assert "nightly-etl" in shown.out and "FINISHED" in shown.out

    whole = await run(env, "log", done.id)
    lines = whole.out.splitlines()
    assert whole.code == 0 and [ln for ln in lines if ln.startswith("tick")] == [f"tick {i}" for i in range(8)]
    window = await run(env, "log", done.id, "--from", "2", "--size", "3", "-o", "json")
    assert window.json() == {"logRowSet": lines[2:5], "rowCount": 3}
    tail = await run(env, "log", done.id, "--from", "-1", "--size", "2")
    assert tail.out.splitlines() == lines[-2:]
    numbered = await run(env, "log", done.id, "-n", "--from", "3", "--size", "1")
    assert numbered.out.split() [0] == "3" and lines[3] in numbered.out
    followed = await run(env, "log", done.id, "-f", "--from", "1")
    assert followed.code == 0 and followed.out.splitlines() == lines[1:]

    details = await run(env, "details", done.id, "-o", "json")
    assert details.code == 0 and details.json()["counters"]["exitCode"] == 0
    assert "queued" in (await run(env, "details", done.id)).out

    paused = await run(env, "pause", slow.id, "-o", "json")
    assert paused.code == 0 and paused.json()["state"] == "PAUSED"
    assert (await run(env, "pause", done.id)).code == 4, "a finished batch cannot be paused (409)"
    resumed = await run(env, "resume", slow.id, "-o", "json")
    assert resumed.code == 0 and resumed.json()["state"] == "RUNNING"
    killed = await run(env, "kill", slow.id, "-o", "json")
    assert killed.code == 0 and killed.json()["success"] is True
    waited = await run(env, "get", slow.id, "--wait")
    assert waited.code == 3 and "CANCELED" in waited.err, "exit 3 for a canceled batch"
    again = await run(env, "kill", slow.id)
    assert again.code == 4 and "already" in again.err, "a kill that killed nothing is not a success"

    restarted = await run(env, "restart", done.id, "--follow")
    assert restarted.code == 0 and "tick 7" in restarted.out
    restarted_json = await run(env, "restart", done.id, "-o", "json")
    new_id = restarted_json.json()["id"]
    assert restarted_json.json()["batchInfo"]["restartOf"] == done.id
    with client(gateway) as bg:
        bg.wait(new_id, timeout=30)
    dropped = await run(env, "drop", new_id, "-o", "json")
    assert dropped.code == 0 and dropped.json()["success"] is True
    assert (await run(env, "get", new_id)).code == 4

    engines = await run(env, "engines", "-o", "json")
    assert engines.code == 0 and engines.json()["batchTypes"] == ["LOCAL"], "the live gateway enables LOCAL only"
    table = await run(env, "engines")
    assert table.code == 0 and "spark" in table.out and "SPARK, PYSPARK" in table.out


async def test_credentials_and_errors(env: dict[str, str], gateway: GatewayProcess) -> None:
    wrong = await run({**env, "BATCHGATE_PASSWORD": "nope"}, "list")
    assert wrong.code == 5 and "authentication failed" in wrong.err and "invalid user name or password" in wrong.err
    assert "nope" not in wrong.err
    flag_wins = await run({**env, "BATCHGATE_PASSWORD": "nope"}, "list", "--password", "a-pass")
    assert flag_wins.code == 0, flag_wins.err
    as_bob = await run(env, "list", "--user", "bob", "--password", "b-pass", "-o", "json")
    assert as_bob.code == 0 and as_bob.json()["total"] == 0

    port = free_port()
    nowhere = await run({**env, "BATCHGATE_URL": f"http://127.0.0.1:{port}"}, "list")
    assert nowhere.code == 6 and "cannot reach the gateway" in nowhere.err and "connection refused" in nowhere.err
    flag_url = await run(env, "list", "--url", f"http://127.0.0.1:{port}")
    assert flag_url.code == 6, "--url wins over BATCHGATE_URL"
    bad_url = await run({**env, "BATCHGATE_URL": "not a url"}, "list")
    assert bad_url.code == 6 and "not a url" in bad_url.err
    not_ours = await run({**env, "BATCHGATE_URL": gateway.url + "/nothing-here"}, "list")
    assert not_ours.code == 4 and "404" in not_ours.err


async def test_config_file_and_its_permissions(env: dict[str, str], tmp_path: Path, gateway: GatewayProcess) -> None:
    bare = {k: v for k, v in env.items() if k not in ("BATCHGATE_URL", "BATCHGATE_USER", "BATCHGATE_PASSWORD")}
    config = tmp_path / "xdg" / "batchgate" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{gateway.url}"\nuser = "alice"\npassword = "a-pass"\n')

    config.chmod(0o644)
    exposed = await run(bare, "list")
    assert exposed.code == 7 and "readable by others" in exposed.err and "chmod 600" in exposed.err
    config.chmod(0o620)
    assert (await run(bare, "list")).code == 7, "group-writable: refused"
    config.chmod(0o600)
    private = await run(bare, "list", "-o", "json")
    assert private.code == 0 and private.json()["total"] == 0, private.err

    no_secret = tmp_path / "plain.toml"
    no_secret.write_text(f'url = "{gateway.url}"\nuser = "bob"\n')
    no_secret.chmod(0o644)
    shared = await run({**bare, "BATCHGATE_PASSWORD": "b-pass"}, "list", "--config", str(no_secret), "-o", "json")
    assert shared.code == 0, "a file without secrets may be readable by others"
    no_secret.chmod(0o646)
    assert (await run({**bare, "BATCHGATE_PASSWORD": "b-pass"}, "list", "--config", str(no_secret))).code == 7

    env_wins = await run({**bare, "BATCHGATE_USER": "bob", "BATCHGATE_PASSWORD": "b-pass"}, "submit", "--type",
                         "LOCAL", "--resource", PY, "-o", "json", "--", "-c", "pass")
    assert env_wins.code == 0 and env_wins.json()["user"] == "bob", "the environment wins over the file"

    def login() -> str:
        with client(gateway) as bg:
            return bg.login().token

    token = await asyncio.to_thread(login)
    with_token = tmp_path / "token.toml"
    with_token.write_text(f'url = "{gateway.url}"\ntoken = "{token}"\n')
    with_token.chmod(0o600)
    by_token = await run(bare, "list", "--config", str(with_token), "-o", "json")
    assert by_token.code == 0, by_token.err

    broken = tmp_path / "broken.toml"
    broken.write_text('url = "unterminated\n')
    broken.chmod(0o600)
    invalid = await run(bare, "list", "--config", str(broken))
    assert invalid.code == 7 and "not valid TOML" in invalid.err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('passwd = "x"\n')
    unknown.chmod(0o600)
    assert "unknown key 'passwd'" in (await run(bare, "list", "--config", str(unknown))).err
    missing = await run(bare, "list", "--config", str(tmp_path / "nope.toml"))
    assert missing.code == 7 and "does not exist" in missing.err


async def _started(proc: asyncio.subprocess.Process, marker: bytes) -> bytes:
    assert proc.stdout is not None
    seen = b""
    while marker not in seen:
        chunk = await asyncio.wait_for(proc.stdout.read(1024), 30)
        assert chunk, f"ended before {marker!r}: {seen!r}"
        seen += chunk
    return seen


@pytest.mark.parametrize("kill", [False, True])
async def test_ctrl_c_stops_following(env: dict[str, str], gateway: GatewayProcess, kill: bool) -> None:
    extra = ["--kill-on-interrupt"] if kill else []
    proc = await asyncio.create_subprocess_exec(
        BATCHGATE, "submit", "--type", "LOCAL", "--resource", PY, "--name", "long", "--follow", *extra, "--",
        "-c", "import time\nprint('started', flush=True)\ntime.sleep(60)",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    await _started(proc, b"started")
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err
    with client(gateway) as bg:
        batch = bg.batches(name="long").batches[0]
        if kill:
            assert "kill" in err.decode()
            assert bg.wait(batch.id, timeout=30).state == "CANCELED"
        else:
            assert "goes on" in err.decode()
            await asyncio.sleep(0.5)
            assert bg.batch(batch.id).state == "RUNNING", "Ctrl-C does not kill the batch by default"
            bg.kill(batch.id)


def _read_pty(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


async def test_spinner_on_a_terminal(env: dict[str, str]) -> None:
    def on_terminal() -> tuple[int, bytes]:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [BATCHGATE, "submit", "--type", "LOCAL", "--resource", PY, "--wait", "--",
             "-c", "import time; time.sleep(2)"],
            env={**env, "TERM": "xterm-256color"}, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        )
        os.close(follower)
        try:
            out = _read_pty(leader, proc, 40)
            return proc.wait(timeout=10), out
        finally:
            os.close(leader)

    code, out = await asyncio.to_thread(on_terminal)
    text = out.decode(errors="replace")
    assert code == 0, text
    assert any(frame in text for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"), f"a spinner: {text!r}"
    assert "RUNNING" in text and "s  " in text, "the state and the elapsed time"
    assert "FINISHED in" in text


def _yaml_job(tmp_path: Path, name: str, fail: bool = False) -> Path:
    path = tmp_path / f"{name}.yaml"
    code = f"import sys; print('node', sys.argv[1]); sys.exit(1 if sys.argv[1] == 'd' and {fail} else 0)"
    nodes = "".join(
        f"  - id: {n}\n    dependsOn: [{', '.join(deps)}]\n"
        f"    request: {{batchType: LOCAL, resource: {PY}, args: ['-c', \"{code}\", {n}]}}\n"
        for n, deps in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]))
    )
    path.write_text(f"name: {name}\ndescription: a diamond\nnodes:\n{nodes}")
    return path


@pytest.mark.slow
async def test_jobs_runs_and_schedules_commands(env: dict[str, str], tmp_path: Path) -> None:
    created = await run(env, "jobs", "create", "-f", str(_yaml_job(tmp_path, "diamond")), "-o", "json")
    assert created.code == 0, created.err
    assert created.json()["version"] == 1 and len(created.json()["nodes"]) == 4
    updated = await run(env, "jobs", "update", "diamond", "-f", str(_yaml_job(tmp_path, "diamond")), "-o", "json")
    assert updated.json()["version"] == 2
    listed = await run(env, "jobs", "list")
    assert listed.code == 0 and "diamond" in listed.out
    shown = await run(env, "jobs", "get", "diamond")
    assert shown.code == 0 and "b, c" in shown.out, "the graph: d depends on b and c"
    history = await run(env, "jobs", "history", "diamond", "-o", "json")
    assert {e["action"] for e in history.json()["entries"]} >= {"created", "updated"}

    ran = await run(env, "jobs", "run", "diamond", "--follow")
    assert ran.code == 0, ran.err
    assert "node d: SUCCEEDED" in ran.out and "run: SUCCEEDED" in ran.out
    run_id = (await run(env, "runs", "list", "--job", "diamond", "-o", "json")).json()["runs"][0]["id"]
    got = await run(env, "runs", "get", run_id, "-o", "json")
    assert got.json()["state"] == "SUCCEEDED" and {n["state"] for n in got.json()["nodes"]} == {"SUCCEEDED"}
    assert "node b" in (await run(env, "runs", "log", run_id, "b")).out
    watched = await run(env, "runs", "watch", run_id, "-o", "json")
    assert watched.code == 0 and json.loads(watched.out.splitlines()[-1])["run"]["state"] == "SUCCEEDED"

    await run(env, "jobs", "create", "-f", str(_yaml_job(tmp_path, "broken", fail=True)))
    failing = await run(env, "jobs", "run", "broken", "--follow")
    assert failing.code == 1 and "node d: FAILED" in failing.out
    broken_run = (await run(env, "runs", "list", "--state", "FAILED", "-o", "json")).json()["runs"][0]["id"]
    retried = await run(env, "runs", "retry", broken_run, "-o", "json")
    assert retried.code == 0 and retried.json()["attempt"] == 2
    assert (await run(env, "runs", "watch", broken_run)).code == 1, "it fails again"

    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"name": "slow", "nodes": [
        {"id": "nap", "request": {"batchType": "LOCAL", "resource": PY, "args": ["-c", "import time; time.sleep(60)"]}},
        {"id": "after", "dependsOn": ["nap"], "request": {"batchType": "LOCAL", "resource": PY, "args": ["-c", "1"]}},
    ]}))
    assert (await run(env, "jobs", "create", "-f", str(slow))).code == 0
    live = (await run(env, "jobs", "run", "slow", "-o", "json")).json()["id"]
    paused = await run(env, "runs", "pause", live, "-o", "json")
    assert paused.code == 0 and paused.json()["state"] == "PAUSED", paused.err
    assert (await run(env, "runs", "resume", live, "-o", "json")).code == 0
    assert (await run(env, "runs", "cancel", live)).code == 0
    assert (await run(env, "runs", "watch", live)).code == 3, "exit 3: KILLED"
    assert (await run(env, "runs", "get", "not-a-run")).code == 4

    made = await run(env, "schedules", "create", "--job", "diamond", "--cron", "*/5 * * * *", "-o", "json")
    assert made.code == 0, made.err
    schedule = made.json()
    assert len(schedule["nextFireTimes"]) == 5 and schedule["enabled"] is True
    table = await run(env, "schedules", "list")
    assert table.code == 0 and "*/5 * * * *" in table.out and schedule["id"] in table.out
    assert "next fires" in (await run(env, "schedules", "get", schedule["id"])).out
    off = await run(env, "schedules", "update", schedule["id"], "--disable", "--every", "2h", "-o", "json")
    assert off.code == 0 and off.json()["enabled"] is False and off.json()["every"] == "2h", off.err
    assert (await run(env, "schedules", "ticks", schedule["id"], "-o", "json")).json()["total"] == 0
    bad = await run(env, "schedules", "create", "--job", "diamond", "--cron", "99 * * * *")
    assert bad.code == 4 and "99 * * * *" in bad.err
    assert (await run(env, "schedules", "delete", schedule["id"])).code == 0
    assert (await run(env, "jobs", "delete", "broken")).code == 0
