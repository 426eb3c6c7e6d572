"""Upgrades keep everything (docs/operations.md, Upgrades).

- Offline, from the first release: batchgate at b3e5fe5, installed from this repository's history into a
  venv of its own, fills a database through its API and is stopped with a batch still running; today's
  code starts on the same database, migrates it, and reads everything back the same; the first release
  then refuses the migrated database and changes nothing.
- Rolling: the next release is a copy of today's source tree plus one expand migration; it starts beside
  an instance of today's code, migrates while that instance serves, and takes over when it stops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import bcrypt
import pytest
from aiohttp import web

from gateway.store.migrate import SCHEMA_VERSION, load_migrations
from tests import first_release
from tests.catalog import snapshot
from tests.conftest import MakeDatabase
from tests.gateway_process import GatewayProcess, free_port
from tests.helpers import TERMINAL, basic

pytestmark = pytest.mark.slow

FIRST_RELEASE = "b3e5fe5"
REPO = Path(__file__).resolve().parents[1]
USERS = {"alice": "a-pass", "bob": "b-pass", "root": "r-pass", "sched": "s-pass"}
# Fast leases, so that takeovers happen within the test; one running batch per user, so that a second
# batch of a user stays queued while the first runs.
ENV = {"BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "3", "BATCHGATE_MAX_RUNNING_PER_USER": "1"}
PY = sys.executable
# Runs until the test creates the file it names (or 10 minutes pass: a failed test leaves nothing behind).
HELD = ("import os, sys, time\n"
        "print('held: started', flush=True)\n"
        "end = time.time() + 600\n"
        "while not os.path.exists(sys.argv[1]) and time.time() < end: time.sleep(0.1)\n"
        "print('held: released', flush=True)\n")


@pytest.fixture(scope="session")
def first_release_python() -> Path:
    return first_release.install(FIRST_RELEASE)


class Client:
    """One user's calls to a gateway process, as any HTTP client makes them."""

    def __init__(self, http: aiohttp.ClientSession, base: str, user: str = "root",
                 headers: dict[str, str] | None = None) -> None:
        self.http, self.base = http, base
        self.headers = headers if headers is not None else basic(user, USERS[user])

    async def status(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.status(method, path, **kwargs)
        assert status == 200, f"{method} {path} -> {status} {body}"
        return body

    async def until(self, path: str, check: Callable[[Any], bool], what: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            body = await self.call("GET", path)
            if check(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}; last: {body}")
            await asyncio.sleep(0.2)

    async def batch_state(self, batch_id: str, states: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
        body: dict[str, Any] = await self.until(f"/api/v1/batches/{batch_id}", lambda b: b["state"] in states,
                                                f"batch {batch_id} in {states}")
        return body

    async def submit(self, args: list[str], **extra: Any) -> str:
        body = await self.call("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": PY, "args": args, **extra})
        return str(body["id"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[Any]]]:
    """An SLA webhook that records what it is sent."""
    posts: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", posts
    await runner.cleanup()


def users_file(path: Path) -> Path:
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                            for u, p in USERS.items()))
    return path


def gateway(tmp_path: Path, url: str, port: int, *, python: str = PY, cwd: Path | None = None,
            instance: str = "g1", env: dict[str, str] | None = None) -> GatewayProcess:
    return GatewayProcess(tmp_path / f"data-{instance}", database_url=url, port=port, instance_id=instance,
                          env=ENV if env is None else env, python=python, cwd=cwd,
                          extra_args=["--users-file", str(tmp_path / "users"), "--admin", "root",
                                      "--engines", "LOCAL"])


def job(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra,
            "nodes": [{"id": "work", "request": {"batchType": "LOCAL", "resource": PY, "args": ["-c", code]}}]}


def project_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", "print('from the artifact')\n")
        archive.writestr("lib/util.py", "X = 1\n")
    return buffer.getvalue()


async def fill(root: Client, tmp_path: Path, webhook: str) -> dict[str, Any]:
    """Everything the first release keeps, made through its API. Returns the ids to read back."""
    alice = Client(root.http, root.base, "alice")
    bob = Client(root.http, root.base, "bob")
    sched = Client(root.http, root.base, "sched")
    made: dict[str, Any] = {"release": str(tmp_path / "release-held")}
    batches: dict[str, str] = {}
    batches["finished"] = await alice.submit(["-c", "for i in range(3000): print(f'line {i} of the log', flush=True)"],
                                             name="long log")
    await alice.batch_state(batches["finished"])
    batches["error"] = await alice.submit(["-c", "import sys; print('going wrong'); sys.exit(3)"])
    await alice.batch_state(batches["error"])
    batches["canceled"] = await alice.submit(["-c", "import time; print('sleeping', flush=True); time.sleep(60)"])
    await alice.batch_state(batches["canceled"], ("RUNNING",))
    await alice.call("DELETE", f"/api/v1/batches/{batches['canceled']}")
    await alice.batch_state(batches["canceled"])
    batches["running"] = await bob.submit(["-c", HELD, made["release"]], name="held")
    await bob.until(f"/api/v1/batches/{batches['running']}/localLog?from=0&size=100",
                    lambda b: "held: started" in b["logRowSet"], "the held batch running")
    form = aiohttp.FormData()
    form.add_field("batchRequest", json.dumps({"batchType": "LOCAL", "args": ["kept"], "name": "uploaded"}),
                   content_type="application/json")
    form.add_field("resourceFile", b"import sys\nprint('from upload', sys.argv[1])\n", filename="up.py")
    batches["queued"] = str((await bob.call("POST", "/api/v1/batches", data=form))["id"])
    batches["paused"] = await bob.submit(["-c", "print('resumed and ran')"])
    await bob.call("POST", f"/api/v1/batches/{batches['paused']}/pause")
    made["batches"] = batches

    await alice.call("POST", "/api/v1/jobs", json=job("etl", "print('etl v1')", description="nightly"))
    runs = [(await alice.call("POST", "/api/v1/jobs/etl/runs"))["id"]]
    await alice.until(f"/api/v1/runs/{runs[0]}", lambda r: r["state"] == "SUCCEEDED", "run of v1")
    await alice.call("PUT", "/api/v1/jobs/etl", json=job("etl", "print('etl v2')", description="nightly, v2"))
    runs.append((await alice.call("POST", "/api/v1/jobs/etl/runs"))["id"])
    await alice.until(f"/api/v1/runs/{runs[1]}", lambda r: r["state"] == "SUCCEEDED", "run of v2")
    made["runs"] = runs

    await alice.call("POST", "/api/v1/jobs", json=job("slow", "import time; time.sleep(2); print('slow')"))
    sla = await alice.call("POST", "/api/v1/slas", json={"job": "slow", "rule": "FINISH_WITHIN", "duration": "1s",
                                                         "actions": ["ALERT"], "webhook": webhook})
    made["sla"] = sla["id"]
    slow_run = (await alice.call("POST", "/api/v1/jobs/slow/runs"))["id"]
    await alice.until(f"/api/v1/runs/{slow_run}", lambda r: r["state"] == "SUCCEEDED", "the slow run")
    await alice.until(f"/api/v1/slas/{sla['id']}/breaches",
                      lambda b: b["total"] == 1 and b["breaches"][0]["actionsDone"], "the breach alerted")
    made["runs"].append(slow_run)

    await sched.call("POST", "/api/v1/jobs", json=job("tick", "print('tick')"))
    schedule = await sched.call("POST", "/api/v1/schedules", json={"job": "tick", "every": "2s"})
    made["schedule"] = schedule["id"]
    await sched.until(f"/api/v1/schedules/{schedule['id']}/ticks",
                      lambda t: sum(x["outcome"] == "FIRED" for x in t["ticks"]) >= 2, "two fired ticks")

    await root.call("POST", "/api/v1/projects", json={
        "name": "proj", "description": "kept", "members": {"alice": ["WRITE", "EXECUTE"], "bob": ["READ"]}})
    await alice.call("POST", "/api/v1/projects/proj/artifacts", data=project_zip(),
                     headers={"Content-Type": "application/zip"})
    async with root.http.post(root.base + "/api/v1/sessions", headers=basic("alice", USERS["alice"])) as resp:
        assert resp.status == 200, await resp.text()
        made["token"] = (await resp.json())["token"]
    return made


WINDOWS = ((0, 100), (1500, 200), (2950, 100), (3000, 10))


async def read_back(root: Client, made: dict[str, Any]) -> dict[str, Any]:
    """Every read a client makes of what `fill` made, except what keeps changing on its own (the ticking
    schedule's runs and batches, audit rows and ticks after this moment: compared by `settled`)."""
    seen: dict[str, Any] = {}
    for user in ("alice", "bob"):
        seen[f"list {user}"] = await root.call("GET", f"/api/v1/batches?batchUser={user}&size=1000")
    for name, batch_id in made["batches"].items():
        batch = await root.call("GET", f"/api/v1/batches/{batch_id}")
        seen[f"batch {name}"] = batch
        seen[f"livy {name}"] = await root.call("GET", f"/livy/batches/{batch['batchInfo']['livyId']}")
        for start, size in WINDOWS:
            seen[f"log {name} {start}"] = await root.call(
                "GET", f"/api/v1/batches/{batch_id}/localLog?from={start}&size={size}")
    seen["livy log"] = await root.call(
        "GET", f"/livy/batches/{seen['batch finished']['batchInfo']['livyId']}/log?from=2990&size=20")
    for path in ("/api/v1/jobs/etl", "/api/v1/jobs/etl/runs", "/api/v1/jobs/etl/log", "/api/v1/jobs/slow",
                 "/api/v1/jobs/tick", f"/api/v1/slas/{made['sla']}", f"/api/v1/slas/{made['sla']}/breaches",
                 "/api/v1/slas", "/api/v1/projects/proj", "/api/v1/projects/proj/artifacts",
                 "/api/v1/projects/proj/log", "/api/v1/projects"):
        seen[path] = await root.call("GET", path)
    for run_id in made["runs"]:
        seen[f"run {run_id}"] = await root.call("GET", f"/api/v1/runs/{run_id}")
        seen[f"run {run_id} events"] = await root.call("GET", f"/api/v1/runs/{run_id}/events")
        seen[f"run {run_id} log"] = await root.call("GET", f"/api/v1/runs/{run_id}/nodes/work/log")
    schedule = await root.call("GET", f"/api/v1/schedules/{made['schedule']}")
    seen["schedule"] = {k: v for k, v in schedule.items() if k not in ("nextFireTimes", "lastFire", "updatedAt")}
    seen["session"] = await Client(root.http, root.base, headers={"Authorization": f"Bearer {made['token']}"}).call(
        "GET", "/api/v1/sessions/current")
    return seen


async def settled(root: Client, made: dict[str, Any]) -> dict[str, Any]:
    """Rows that never change once written, by id: audit rows, the schedule's ticks and finished runs."""
    audit = await root.call("GET", "/api/v1/audit?size=10000")
    ticks = await root.call("GET", f"/api/v1/schedules/{made['schedule']}/ticks?size=1000")
    runs = await root.call("GET", "/api/v1/jobs/tick/runs?size=1000")
    return {
        "audit": {e["id"]: e for e in audit["entries"]},
        "ticks": {t["fireTime"]: t for t in ticks["ticks"] if t["outcome"] == "FIRED"},
        "runs": {r["id"]: r for r in runs["runs"] if r["state"] == "SUCCEEDED"},
    }


async def database_digest(url: str) -> dict[str, Any]:
    """The schema from the catalog and every table's content, to tell whether anything changed."""
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch(
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'")]
        contents = {t: await conn.fetchval(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                                           f"from {t} x") for t in tables}
    finally:
        await conn.close()
    return {"catalog": await snapshot(url), "contents": contents}


async def test_offline_upgrade_from_the_first_release_keeps_everything(
        first_release_python: Path, empty_database: MakeDatabase, http: aiohttp.ClientSession, tmp_path: Path,
        receiver: tuple[str, list[Any]]) -> None:
    url = await empty_database()
    users_file(tmp_path / "users")
    port = free_port()
    elsewhere = tmp_path / "cwd"  # so that `python -m gateway` finds the installed first release
    elsewhere.mkdir()
    old = await gateway(tmp_path, url, port, python=str(first_release_python), cwd=elsewhere).start()
    root = Client(http, old.url)
    try:
        await upgrade_first_release(old, root, url, port, tmp_path, first_release_python, elsewhere, receiver[0])
    finally:
        (tmp_path / "release-held").touch()  # the held batch ends whatever happened


async def upgrade_first_release(old: GatewayProcess, root: Client, url: str, port: int, tmp_path: Path,
                                first_release_python: Path, elsewhere: Path, webhook: str) -> None:
    try:
        made = await fill(root, tmp_path, webhook)
        before, kept = await read_back(root, made), await settled(root, made)
    finally:
        assert await old.stop() == 0, old.log_path.read_text()
    # The held batch outlives its gateway: applications are detached, not killed.
    assert await asyncpg_value(url, "select max(version) from schema_version") == 1

    upgraded_at = int(time.time() * 1000)
    new = await gateway(tmp_path, url, port).start()
    try:
        assert (await root.status("GET", "/readyz"))[0] == 200
        assert await asyncpg_value(url, "select max(version) from schema_version") == SCHEMA_VERSION
        after, later = await read_back(root, made), await settled(root, made)
        found = changes(before, without_reattach_note(after, made["batches"]["running"]))
        assert found == [], "\n".join(found)
        for kind, rows in kept.items():
            assert changes(rows, {k: v for k, v in later[kind].items() if k in rows}) == [], kind

        # The running batch was re-attached: it finishes, with the lines of both lives in its log.
        batches = made["batches"]
        Path(made["release"]).touch()
        held = await root.batch_state(batches["running"])
        assert held["state"] == "FINISHED" and held["kyuubiInstance"] == "g1", held
        log = (await root.call("GET", f"/api/v1/batches/{batches['running']}/localLog?size=100"))["logRowSet"]
        assert "held: started" in log and "held: released" in log
        # The queued batch ran next, from the file uploaded to the first release.
        queued = await root.batch_state(batches["queued"])
        assert queued["state"] == "FINISHED", queued
        assert "from upload kept" in (await root.call(
            "GET", f"/api/v1/batches/{batches['queued']}/localLog?size=100"))["logRowSet"]
        await root.call("POST", f"/api/v1/batches/{batches['paused']}/resume")
        assert (await root.batch_state(batches["paused"]))["state"] == "FINISHED"
        # The schedule fires on.
        await root.until(f"/api/v1/schedules/{made['schedule']}/ticks?size=1000",
                         lambda t: any(x["fireTime"] > upgraded_at and x["outcome"] == "FIRED" for x in t["ticks"]),
                         "a tick fired by the new release")
    finally:
        assert await new.stop() == 0, new.log_path.read_text()

    # The first release, started again on the migrated database, refuses clearly and changes nothing.
    unchanged = await database_digest(url)
    code, output = await run_to_exit(first_release_python, elsewhere, [
        "serve", "--database-url", url, "--port", str(port), "--data-dir", str(tmp_path / "data-g1"),
        "--instance-id", "g1", "--users-file", str(tmp_path / "users"), "--engines", "LOCAL"])
    assert code != 0
    assert f"database schema is version {SCHEMA_VERSION}, this batchgate knows 1" in output, output
    assert await database_digest(url) == unchanged


def without_reattach_note(seen: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """The reads of `read_back` as they were before the running batch was re-attached: its log gained one
    line then, "[batchgate] re-attached by g1" (checked here), and nothing else."""
    seen = json.loads(json.dumps(seen))
    note = seen["log running 0"]["logRowSet"].pop()
    assert note.endswith("[batchgate] re-attached by g1"), note
    seen["log running 0"]["rowCount"] -= 1
    assert seen["livy running"]["log"].pop() == note
    for batch in (seen["batch running"], *(b for b in seen["list bob"]["batches"] if b["id"] == batch_id)):
        batch["batchInfo"]["logLines"] = str(int(batch["batchInfo"]["logLines"]) - 1)
    return seen


def changes(before: Any, after: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as paths (empty when they are equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [line for key in sorted(set(before) | set(after), key=str)
                for line in changes(before.get(key, "<missing>"), after.get(key, "<missing>"), f"{where}.{key}")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [line for i, (b, a) in enumerate(zip(before, after, strict=True))
                for line in changes(b, a, f"{where}[{i}]")]
    if ".batchInfo." in where and isinstance(after, str) and not isinstance(before, str):
        # A deliberate change of the wire format since the first release: batchInfo is Kyuubi's map of
        # strings, so its other values travel as JSON text (docs/kyuubi.md). The value must be the same.
        after = json.loads(after)
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


async def asyncpg_value(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def run_to_exit(python: Path, cwd: Path, args: list[str], timeout: float = 120) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(str(python), "-m", "gateway", *args, cwd=cwd,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def next_release(dest: Path) -> tuple[Path, int]:
    """Today's source tree plus one expand step, as the next release would ship it: a new column with a
    default, at the floor of today's last migration. Returns the tree and the version it knows."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("gateway", "engines"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    shutil.copy(REPO / "schema.sql", dest / "schema.sql")
    version, floor = SCHEMA_VERSION + 1, load_migrations()[-1].floor
    change = "alter table batches add column rolling_note text not null default 'next release'"
    (dest / "gateway" / "store" / "migrations" / f"{version:04d}_rolling_note.sql").write_text(
        f"-- floor: {floor}\n-- A test-only expand step (tests/test_upgrades.py).\n{change};\n")
    with open(dest / "schema.sql", "a") as schema:
        schema.write(f"\n{change.replace('add column', 'add column if not exists')};\n")
    return dest, version


def counting(marker: Path, seconds: float, wait: str = "") -> list[str]:
    """A program that records its batch id once it has run, so that a second run would show."""
    return ["-c", f"import os, time\nprint('started', flush=True)\ntime.sleep({seconds})\n{wait}\n"
                  f"with open({str(marker)!r}, 'a') as f: f.write(os.environ['BATCHGATE_BATCH_ID'] + '\\n')\n"]


async def test_rolling_upgrade_with_an_expand_step_loses_nothing(
        database_url: str, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    users_file(tmp_path / "users")
    marker = tmp_path / "ran.txt"
    tree, version = next_release(tmp_path / "next")
    env = {k: v for k, v in ENV.items() if k != "BATCHGATE_MAX_RUNNING_PER_USER"}
    old = await gateway(tmp_path, database_url, free_port(), instance="a", env=env).start()
    new = gateway(tmp_path, database_url, free_port(), cwd=tree, instance="b", env=env)
    clients = {"a": Client(http, old.url, "alice"), "b": Client(http, new.url, "bob")}
    submitted: dict[str, str] = {}  # batch id -> the instance that accepted it
    answers: collections.Counter[tuple[str, int | str]] = collections.Counter()
    in_service = ["a"]
    stopping: set[str] = set()

    async def traffic() -> None:
        """Submits and readiness probes, as users and a load balancer send them to the instances in service."""
        while True:
            for name in list(in_service):

                def label(name: str = name) -> str:  # when the answer came: a stop may have begun since
                    return f"{name} stopping" if name in stopping else name

                try:
                    status, body = await clients[name].status("POST", "/api/v1/batches", json={
                        "batchType": "LOCAL", "resource": PY, "args": counting(marker, 1.0)})
                    answers[(label(), status)] += 1
                    if status == 200:
                        submitted[body["id"]] = name
                    status, _ = await clients[name].status("GET", "/readyz")
                    answers[(label(), f"readyz {status}")] += 1
                except aiohttp.ClientError as exc:
                    if name not in stopping:
                        raise
                    answers[(label(), type(exc).__name__)] += 1
            await asyncio.sleep(0.3)

    # A batch that runs on the old instance until the test lets it end: the new one must take it over.
    release = tmp_path / "release"
    held = await clients["a"].submit(counting(marker, 0, f"end = time.time() + 600\nwhile not os.path.exists("
                                                         f"{str(release)!r}) and time.time() < end: time.sleep(0.1)"))
    submitted[held] = "a"
    await clients["a"].until(f"/api/v1/batches/{held}", lambda b: b["state"] == "RUNNING", "a batch running on a")
    load = asyncio.create_task(traffic())
    try:
        await rolling(old, new, database_url, version, in_service, stopping)
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        if old.proc is not None and old.proc.returncode is None:
            await old.stop()
    try:
        reader = Client(http, new.url, "root")
        await reader.until(f"/api/v1/batches/{held}", lambda b: b["kyuubiInstance"] == "b", "the takeover")
        release.touch()
        finals = {i: await reader.batch_state(i) for i in submitted}
        assert {b["state"] for b in finals.values()} == {"FINISHED"}, finals
        ran = collections.Counter(marker.read_text().split())
        assert set(ran) == set(submitted) and max(ran.values()) == 1, "every batch ran, and only once"
        assert finals[held]["kyuubiInstance"] == "b"
        log = (await reader.call("GET", f"/api/v1/batches/{held}/localLog?size=100"))["logRowSet"]
        assert any("taken over by b from a" in line for line in log), log
        assert await asyncpg_fetch(database_url, "select distinct rolling_note from batches") == [("next release",)]
    finally:
        release.touch()
        await new.stop()
    assert {name for name, _ in answers} >= {"a", "b"} and answers[("a", "readyz 200")] > 0, answers
    assert answers[("b", 200)] > 0 and sum(n for (name, _), n in answers.items() if name == "a") > 10, answers
    failed = {k: n for k, n in answers.items() if k[1] not in (200, "readyz 200")}
    assert all(name == "a stopping" and what in (503, "readyz 503", "ClientConnectorError")
               for name, what in failed), answers


async def rolling(old: GatewayProcess, new: GatewayProcess, database_url: str, version: int,
                  in_service: list[str], stopping: set[str]) -> None:
    """Start the next release beside the old one, serve with both, then stop the old one."""
    await asyncio.sleep(2)
    await new.start()  # it migrates while the old instance serves
    assert await asyncpg_value(database_url, "select max(version) from schema_version") == version
    assert await asyncpg_fetch(database_url, "select id, schema_known from instances order by id") == [
        ("a", SCHEMA_VERSION), ("b", version)]
    in_service.append("b")
    await asyncio.sleep(3)
    # Stop the old instance while it runs batches: the new one takes them over.
    stopping.add("a")
    assert await old.stop() == 0, old.log_path.read_text()
    in_service.remove("a")
    await asyncio.sleep(1)


async def asyncpg_fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def test_the_frozen_first_release_schema_is_the_released_one() -> None:
    """tests/migrations/schema_v1.sql, which the catalog comparison migrates from, is b3e5fe5's schema.sql."""
    released = subprocess.run(["git", "-C", str(REPO), "show", f"{FIRST_RELEASE}:schema.sql"],
                              capture_output=True, check=True).stdout
    assert (REPO / "tests" / "migrations" / "schema_v1.sql").read_bytes() == released
