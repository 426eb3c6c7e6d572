"""One admission path: the same forbidden request, sent through every route that creates batches, meets the
same refusal. Routes that answer at once answer with the same status and message (a job's routes name the
node first, Livy uses its own field names); a schedule tick, which nobody waits on, leaves an ERROR batch
whose diagnostic is that message, and launches nothing.

Restarts and ticks need a batch or a schedule made while the rule did not hold yet: a lenient gateway makes
them, stops, and a strict gateway on the same database (the rule tightened since) takes over.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.livy.models import livy_message
from tests.helpers import Api
from tests.test_auth import htpasswd

PASSWORDS = {"alice": "a-pass", "bob": "b-pass", "root": "r-pass"}
PY = sys.executable


@dataclass(frozen=True)
class Case:
    """A forbidden request: what bob sends, what the strict gateway answers, what the lenient one allowed."""

    name: str
    conf: dict[str, str]
    status: int
    message: str  # with {resource} where the message names the resource as the route sent it
    resource: str = "hello.py"  # a file in the work dir (LOCAL runs it with the gateway's Python)
    livy: bool = True  # Livy runs Spark only: a LOCAL rule has no Livy route


CASES = [
    Case("denied conf key", {"spark.driver.extraJavaOptions": "-Dx=1"}, 403,
         "conf.spark.driver.extraJavaOptions: this key is not allowed on this gateway (denied by '*.extraJavaOptions')"),
    Case("impersonation", {"kyuubi.session.proxy.user": "alice"}, 403,
         "conf.kyuubi.session.proxy.user: user bob may not act as alice"),
    Case("LOCAL program by its interpreter", {}, 400,
         "resource: {resource} runs with /bin/sh, which is not in the LOCAL allow-list", resource="evil.sh",
         livy=False),
]


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


class World:
    """Two gateways' settings on one database, the files the cases run, and bob's client on each."""

    def __init__(self, start_gateway: Callable[..., Awaitable[Api]], tmp_path: Path) -> None:
        self._start = start_gateway
        self.dir = tmp_path / "work"
        self.dir.mkdir()
        (self.dir / "hello.py").write_text("print('hello')\n")
        (self.dir / "evil.sh").write_text("echo pwned\n")
        self.users = htpasswd(tmp_path / "users", PASSWORDS)

    def path(self, name: str) -> str:
        return str(self.dir / name)

    async def gateway(self, *, lenient: bool) -> Api:
        extra: dict[str, Any] = {"local_programs": [PY]}
        if lenient:
            extra = {"conf_deny_lift": ["*.extraJavaOptions"], "impersonation": {"bob": ["alice"]},
                     "local_programs": [PY, "/bin/sh"]}
        api = await self._start(users_file=self.users, admin=["root"], engines=["LOCAL", "SPARK", "PYSPARK"],
                                **extra)
        return api.as_user("bob", PASSWORDS["bob"])


def request(case: Case, resource: str, **more: Any) -> dict[str, Any]:
    return {"batchType": "LOCAL", "resource": resource, "conf": case.conf, **more}


def job(name: str, node_request: dict[str, Any], variables: dict[str, str] | None = None,
        project: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "variables": variables or {},
                            "nodes": [{"id": "n", "request": node_request}]}
    if project:
        body["project"] = project
    return body


async def answer(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    status, body = await api.status_of(method, path, **kwargs)
    assert isinstance(body, dict), body
    return status, body.get("message") or body.get("msg") or json.dumps(body)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)
    return value


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_same_refusal_on_every_route(start_gateway, tmp_path: Path, case: Case) -> None:  # type: ignore[no-untyped-def]
    world = World(start_gateway, tmp_path)
    resource = world.path(case.resource)
    suffix = Path(case.resource).suffix
    # What the conf and impersonation cases need allowed; the LOCAL case's own file is the forbidden part.
    harmless = world.path("hello.py")

    # --- made while the rule did not hold: a finished batch, a project with an artifact, a job, a schedule.
    lenient = await world.gateway(lenient=True)
    admin_l = lenient.as_user("root", PASSWORDS["root"])
    await admin_l.call("POST", "/api/v1/projects", json={"name": "p", "members": {"bob": ["WRITE", "EXECUTE"]}})
    await lenient.call("POST", "/api/v1/projects/p/artifacts", data=make_zip({
        "ok.py": "print('ok')\n", f"evil{suffix}": "echo pwned\n" if suffix == ".sh" else "print(1)\n"}))
    old = await lenient.call("POST", "/api/v1/batches", json=request(case, resource))
    old = await lenient.wait_for(old["id"])
    assert old["state"] == "FINISHED", old
    await lenient.call("POST", "/api/v1/jobs", json=job("old", request(case, resource)))
    start = (int(time.time() * 1000) + 4000) // 1000 * 1000
    tick_schedule = await lenient.call("POST", "/api/v1/schedules", json={
        "job": "old", "every": "1h", "startAt": start})
    await lenient.client.close()  # the rule tightens: from here on only the strict gateway runs

    strict = await world.gateway(lenient=False)
    expected = case.message.format(resource=repr(resource))
    node = "nodes[n].request."

    # --- routes that answer at once
    got: dict[str, tuple[int, str]] = {}
    got["json"] = await answer(strict, "POST", "/api/v1/batches", json=request(case, resource))
    form = aiohttp.FormData()
    form.add_field("batchRequest", json.dumps(request(case, resource)), content_type="application/json")
    got["multipart"] = await answer(strict, "POST", "/api/v1/batches", data=form)
    restart = await answer(strict, "POST", f"/api/v1/batches/{old['id']}/restart")
    got["restart"] = restart
    status, bulk = await strict.status_of("PUT", "/api/v1/batches/status",
                                          json={"action": "RESTART", "ids": [old["id"]]})
    assert status == 200 and bulk["succeeded"] == 0, bulk
    got["bulk restart"] = (case.status, bulk["failed"][0]["message"])
    got["job save"] = await answer(strict, "POST", "/api/v1/jobs", json=job("new", request(case, resource)))
    # A variable carries the forbidden value (a conf key cannot come from a variable: the job has it).
    if case.conf.get("kyuubi.session.proxy.user"):
        variable_job = job("var", request(case, harmless, conf={"kyuubi.session.proxy.user": "${who}"}),
                           {"who": "bob"})
        variables = {"who": "alice"}
    elif not case.conf:
        variable_job = job("var", request(case, "${prog}"), {"prog": harmless})
        variables = {"prog": resource}
    else:
        variable_job, variables = None, {}
    target = "old"
    if variable_job is not None:
        await strict.call("POST", "/api/v1/jobs", json=variable_job)
        target = "var"
    got["trigger"] = await answer(strict, "POST", f"/api/v1/jobs/{target}/runs", json={"variables": variables})
    got["schedule"] = await answer(strict, "POST", "/api/v1/schedules", json={
        "job": target, "every": "1h", "variables": variables})
    if case.livy:
        livy = {"file": world.path("hello.py"), "conf": {k: v for k, v in case.conf.items()
                                                         if k != "kyuubi.session.proxy.user"}}
        if "kyuubi.session.proxy.user" in case.conf:
            livy["proxyUser"] = case.conf["kyuubi.session.proxy.user"]
        status, message = await answer(strict, "POST", "/livy/batches", json=livy)
        assert (status, message) == (case.status, livy_message(expected)), (status, message)
    for name, (status, message) in got.items():
        want = node + expected if name in ("job save", "trigger", "schedule") else expected
        assert (status, message) == (case.status, want), (name, status, message)

    # --- routes whose resource is a file the gateway writes at launch: an upload, an artifact
    artifact = f"artifact:{'evil.sh' if suffix == '.sh' else 'ok.py'}"
    expected_artifact = case.message.format(resource=repr(artifact))
    got_artifact = await answer(strict, "POST", "/api/v1/batches", json=request(case, artifact, project="p"))
    assert got_artifact == (case.status, expected_artifact)
    got_artifact_job = await answer(strict, "POST", "/api/v1/jobs",
                                    json=job("art", request(case, artifact), project="p"))
    assert got_artifact_job == (case.status, node + expected_artifact)
    upload_name = Path(resource).name
    form = aiohttp.FormData()
    form.add_field("batchRequest", json.dumps({"batchType": "LOCAL", "conf": case.conf}),
                   content_type="application/json")
    form.add_field("resourceFile", Path(resource).read_bytes(), filename=upload_name)
    got_upload = await answer(strict, "POST", "/api/v1/batches", data=form)
    assert got_upload == (case.status, case.message.format(resource=repr(upload_name)))

    # --- a tick nobody waits on: its run's node is an ERROR batch whose diagnostic is the refusal
    admin = strict.as_user("root", PASSWORDS["root"])

    async def fired() -> Any:
        body = await admin.call("GET", f"/api/v1/schedules/{tick_schedule['id']}/ticks")
        return next((t for t in body["ticks"] if t["outcome"] != "PENDING"), None)

    tick = await eventually(fired, 30, "the tick of the schedule made before the rule")
    assert tick["outcome"] == "FIRED", tick
    run = await eventually(lambda: _terminal_run(admin, tick["runId"]), 20, "the tick's run to end")
    assert run["state"] == "FAILED" and run["nodes"][0]["state"] == "FAILED", run
    batch = await admin.get(run["nodes"][0]["batchId"])
    assert batch["state"] == "ERROR" and batch["appDiagnostic"] == expected, batch
    assert batch["appId"] is None and batch["kyuubiInstance"] is None, "nothing was launched"
    assert any(expected in line for line in await admin.log(batch["id"]))
    audit = await admin.call("GET", f"/api/v1/audit?target={batch['id']}")
    assert [(a["action"], a["allowed"]) for a in audit["entries"]] == [("submit", False)], audit


async def _terminal_run(api: Api, run_id: str) -> Any:
    run = await api.call("GET", f"/api/v1/runs/{run_id}")
    return run if run["state"] in ("SUCCEEDED", "FAILED", "KILLED") else None


# --- each observed case, on its own ---------------------------------------------------------------------


@pytest.fixture
async def gate(start_gateway, tmp_path: Path) -> World:  # type: ignore[no-untyped-def]
    return World(start_gateway, tmp_path)


def as_(api: Api, user: str) -> Api:
    return api.as_user(user, PASSWORDS[user])


async def test_variables_replace_values_never_conf_keys(gate: World) -> None:
    bob = await gate.gateway(lenient=False)
    status, message = await answer(bob, "POST", "/api/v1/jobs", json=job(
        "keys", request(CASES[0], PY, conf={"${k}": "-Dx=1"}), {"k": "spark.app.name"}))
    assert status == 400 and message == ("nodes[n].request: key '${k}' holds a variable; variables replace "
                                         "values, never keys"), message


async def test_a_node_proxy_user_is_honoured_when_the_principal_may_impersonate(
        start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", PASSWORDS)
    api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"], impersonation={"bob": ["alice"]})
    bob, alice = as_(api, "bob"), as_(api, "alice")
    body = job("as-alice", {"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"],
                            "conf": {"kyuubi.session.proxy.user": "${who}"}}, {"who": "alice"})
    await bob.call("POST", "/api/v1/jobs", json={**body, "permissions": {"alice": ["READ", "EXECUTE"]}})
    run = await bob.call("POST", "/api/v1/jobs/as-alice/runs", json={})
    run = await eventually(lambda: _terminal_run(bob, run["id"]), 30, "bob's run")
    batch = await bob.get(run["nodes"][0]["batchId"])
    assert run["state"] == "SUCCEEDED" and batch["user"] == "alice" and batch["batchInfo"]["realUser"] == "bob"
    # alice may run the job, but not as herself acting for someone she may not be: bob's name is no proxy.
    status, message = await answer(alice, "POST", "/api/v1/jobs/as-alice/runs", json={"variables": {"who": "bob"}})
    assert (status, message) == (403, "nodes[n].request.conf.kyuubi.session.proxy.user: user alice may not act "
                                      "as bob")


async def test_the_allow_list_governs_the_interpreter_of_uploads_and_artifacts(gate: World) -> None:
    bob = await gate.gateway(lenient=False)
    root = as_(bob, "root")
    await root.call("POST", "/api/v1/projects", json={"name": "p", "members": {"bob": ["WRITE", "EXECUTE"]}})
    await bob.call("POST", "/api/v1/projects/p/artifacts", data=make_zip({
        "tools/ok.py": "print('ran from the artifact')\n", "evil.sh": "echo pwned\n"}))
    # python is on the list: an artifact's .py runs with it, and so does an uploaded .py.
    batch = await bob.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:tools/ok.py", "project": "p"})
    assert json.loads(batch["batchInfo"]["artifact"]) == {"path": "tools/ok.py", "version": 1}, "pinned"
    done = await bob.wait_for(batch["id"])
    assert done["state"] == "FINISHED" and "ran from the artifact" in await bob.full_log(batch["id"])
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL"}', content_type="application/json")
    form.add_field("resourceFile", b"print('uploaded')\n", filename="up.py")
    uploaded = await bob.call("POST", "/api/v1/batches", data=form)
    assert (await bob.wait_for(uploaded["id"]))["state"] == "FINISHED"
    # /bin/sh is not: the artifact's .sh is refused, directly and as a job's node.
    status, message = await answer(bob, "POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:evil.sh", "project": "p"})
    assert (status, message) == (400, "resource: 'artifact:evil.sh' runs with /bin/sh, which is not in the LOCAL "
                                      "allow-list")


async def test_rate_limits_count_direct_starts_not_the_nodes_of_a_run(
        start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api = await start_gateway(admin=["root"], submit_rate_per_minute=3)
    alice = api.as_user("alice")
    quick = {"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"]}
    await alice.call("POST", "/api/v1/jobs", json={"name": "wide", "nodes": [
        {"id": f"n{i}", "request": quick} for i in range(5)]})
    first = await alice.submit(resource=PY, args=["-c", "pass"])  # 1
    run = await alice.call("POST", "/api/v1/jobs/wide/runs", json={})  # 2: five nodes, one trigger
    run = await eventually(lambda: _terminal_run(alice, run["id"]), 30, "the wide run")
    assert run["state"] == "SUCCEEDED"
    await alice.wait_for(first["id"])
    await alice.call("POST", f"/api/v1/batches/{first['id']}/restart")  # 3
    status, body = await alice.status_of("POST", "/api/v1/batches", json=quick)
    assert status == 429 and "started 3 batches or runs in the last minute (limit 3)" in body["message"], body
    status, body = await alice.status_of("POST", "/api/v1/jobs/wide/runs", json={})
    assert status == 429, body
    # Another user's count is their own.
    assert (await api.as_user("bob").submit(resource=PY, args=["-c", "pass"]))["state"]


async def test_a_batch_and_its_sla_are_written_together_or_not_at_all(api: Api) -> None:
    alice, bob = api.as_user("alice"), api.as_user("bob")
    batch_id = "5b3b7a4e-0d1c-4b6f-9a51-3f2b1c0d9e8f"
    mine = await alice.submit(resource=PY, args=["-c", "pass"], conf={"kyuubi.batch.id": batch_id})
    # bob reuses alice's id with an SLA: refused, and no SLA of bob's is left behind for that batch.
    status, body = await bob.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": PY, "conf": {"kyuubi.batch.id": batch_id,
                                                       "batchgate.sla.finishWithin": "1h"}})
    assert status == 403, body
    assert (await api.call("GET", f"/api/v1/slas?batch={batch_id}"))["total"] == 0
    # A refused SLA term refuses the batch; a good one comes with it, once, however often it is sent.
    status, body = await alice.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": PY, "conf": {"batchgate.sla.finishWithin": "1h",
                                                       "batchgate.sla.webhook": "ftp://x"}})
    assert status == 400 and "conf.batchgate.sla.webhook" in body["message"], body
    again = "0c6f7d2e-58a4-4c3e-9f0b-6a1d2e3f4a5b"
    for _ in range(2):
        sent = await alice.submit(resource=PY, args=["-c", "pass"], conf={
            "kyuubi.batch.id": again, "batchgate.sla.finishWithin": "1h"})
        assert sent["id"] == again
    [sla] = (await api.call("GET", f"/api/v1/slas?batch={again}"))["slas"]
    assert sla["owner"] == "alice" and sla["rule"] == "FINISH_WITHIN"
    assert mine["id"] == batch_id


async def test_extra_resource_keys_are_conf_keys(api: Api) -> None:
    """extraResourcesMap names the conf key its files' paths are written into: the deny-list holds there too."""
    form = aiohttp.FormData()
    form.add_field("batchRequest", json.dumps({
        "batchType": "LOCAL", "resource": PY, "extraResourcesMap": {"spark.driver.extraClassPath": "evil.jar"}}),
        content_type="application/json")
    form.add_field("evil.jar", b"PK", filename="evil.jar")
    status, message = await answer(api, "POST", "/api/v1/batches", data=form)
    assert (status, message) == (403, "conf.spark.driver.extraClassPath: this key is not allowed on this gateway "
                                      "(denied by '*.extraClassPath')")
    total = (await api.call("GET", "/api/v1/batches"))["total"]
    assert total == 0


@pytest.mark.parametrize("key", ["SPARK.DRIVER.EXTRAJAVAOPTIONS", "spark.yarn.am.extraJavaOptions",
                                 "spark.executorEnv.LD_PRELOAD", "spark.kubernetes.driverEnv.X",
                                 "spark.yarn.appMasterEnv.PYTHONSTARTUP", "env.java.opts.taskmanager",
                                 "containerized.master.env.LD_PRELOAD", "spark.executor.extraLibraryPath"])
async def test_built_in_deny_list(api: Api, key: str) -> None:
    status, message = await answer(api, "POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": PY, "conf": {key: "x"}})
    assert status == 403 and message.startswith(f"conf.{key}: this key is not allowed"), message


@pytest.mark.parametrize("key", [" spark.driver.extraJavaOptions", "spark.driver.extraJavaOptions\t",
                                 "spark.driver.extra\u200bJavaOptions", "a b", "x\u2028y"])
async def test_conf_keys_with_whitespace_or_control_characters_are_refused(api: Api, key: str) -> None:
    status, message = await answer(api, "POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": PY, "conf": {key: "x"}})
    assert status == 400 and message.startswith("conf"), message


async def test_an_admin_lifts_one_built_in_entry_and_adds_patterns(start_gateway) -> None:  # type: ignore[no-untyped-def]
    api = await start_gateway(conf_deny_lift=["*.EXTRAJAVAOPTIONS"], conf_deny=["my.*.secret"])
    await api.submit(resource=PY, args=["-c", "pass"], conf={"spark.driver.extraJavaOptions": "-Xss4m"})
    for key, status in [("spark.driver.extraClassPath", 403), ("My.Team.SECRET", 403), ("my.secretive", 200)]:
        got, _ = await api.status_of("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "conf": {key: "x"}})
        assert got == status, key
    from gateway.settings import Settings

    with pytest.raises(ValueError, match="not built-in deny entries"):
        Settings(conf_deny_lift=["spark.driver.extraJavaOptions"])


# --- scheduled runs: no one runs code under another user's name ----------------------------------------


async def _one_tick(api: Api, job_name: str, **extra: Any) -> dict[str, Any]:
    """A schedule that fires once, a second from now; its tick once decided, with its run if it has one."""
    start = (int(time.time() * 1000) + 1999) // 1000 * 1000
    schedule = await api.call("POST", "/api/v1/schedules", json={
        "job": job_name, "every": "1h", "startAt": start, "endAt": start, **extra})

    async def decided() -> Any:
        body = await api.call("GET", f"/api/v1/schedules/{schedule['id']}/ticks")
        return next((t for t in body["ticks"] if t["outcome"] != "PENDING"), None)

    tick: dict[str, Any] = await eventually(decided, 20, "the tick")
    if tick.get("runId"):
        tick["run"] = await eventually(lambda: _terminal_run(api, tick["runId"]), 30, "the tick's run")
    return tick


async def test_a_schedule_runs_a_version_as_its_author_unless_the_owner_or_an_admin_saved_it(
        start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {**PASSWORDS, "sam": "s-pass"})
    api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"])
    alice, bob, root = as_(api, "alice"), as_(api, "bob"), as_(api, "root")
    sam = api.as_user("sam", "s-pass")
    body = job("etl", {"batchType": "LOCAL", "resource": PY, "args": ["-c", "import os; print(os.environ"
                                                                            "['BATCHGATE_USER'])"]})
    body["permissions"] = {"bob": ["READ", "WRITE", "EXECUTE"], "sam": ["READ", "SCHEDULE"]}
    body["variables"] = {"v": "1"}
    await alice.call("POST", "/api/v1/jobs", json=body)

    tick = await _one_tick(alice, "etl")  # alice saved it: her schedule runs it as alice
    assert tick["run"]["submitUser"] == "alice" and tick["run"]["state"] == "SUCCEEDED", tick

    await bob.call("PUT", "/api/v1/jobs/etl", json={**body, "description": "bob's change"})
    tick = await _one_tick(alice, "etl")  # bob's version: alice's schedule runs it as bob, not as alice
    assert tick["run"]["submitUser"] == "bob", tick
    batch = await alice.get(tick["run"]["nodes"][0]["batchId"])
    assert batch["user"] == "bob" and "bob" in await alice.full_log(batch["id"])

    # sam may schedule the job (setting the variables it declares): it runs bob's version as bob.
    tick = await _one_tick(sam, "etl", variables={"v": "2"})
    assert tick["run"]["submitUser"] == "bob" and tick["run"]["variables"]["v"] == "2", tick

    await root.call("PUT", "/api/v1/jobs/etl", json={**body, "description": "an admin's change"})
    tick = await _one_tick(alice, "etl")  # an admin saved it: the owner's schedule runs it as the owner
    assert tick["run"]["submitUser"] == "alice", tick
