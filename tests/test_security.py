"""Security: the authorization matrix, impersonation rules, input rules, rate limits, audit, secrets."""

from __future__ import annotations

import base64
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import Api
from tests.test_auth import htpasswd

PASSWORDS = {"alice": "a-pass", "bob": "b-pass", "root": "r-pass", "svc": "s-pass", "carol": "c-pass"}


@pytest.fixture
async def gate(start_gateway, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", PASSWORDS)
    api: Api = await start_gateway(
        users_file=users, admin=["root"], engines=["LOCAL", "SPARK", "PYSPARK"],
        impersonation={"svc": ["bob", "@etl"]}, groups={"etl": ["carol"]},
        conf_deny=["spark.driver.extraJavaOptions", "spark.executorEnv.*"],
        # Symlinks are resolved before the check, so the interpreter's real dir is what must be allowed.
        resource_dirs=[str(tmp_path / "allowed"), "/usr/bin", "/bin", str(Path(sys.executable).resolve().parent)],
        max_args=5, max_conf_entries=4, max_conf_bytes=200,
    )
    (tmp_path / "allowed").mkdir()
    return api


def as_(api: Api, user: str) -> Api:
    return api.as_user(user, PASSWORDS[user])


async def _batch(api: Api, python: str, user: str = "alice") -> dict[str, Any]:
    body = await as_(api, user).submit(resource=python, args=["-c", "import time; time.sleep(30)"])
    return body  # type: ignore[no-any-return]


async def test_authorization_matrix(gate: Api, python: str) -> None:
    batch = await _batch(gate, python)
    bid = batch["id"]
    callers: dict[str, dict[str, str]] = {
        "owner": {"Authorization": "Basic " + base64.b64encode(b"alice:a-pass").decode()},
        "other": {"Authorization": "Basic " + base64.b64encode(b"bob:b-pass").decode()},
        "admin": {"Authorization": "Basic " + base64.b64encode(b"root:r-pass").decode()},
        "anonymous": {},
        "wrong password": {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()},
    }
    submit_body = {"batchType": "LOCAL", "resource": python, "args": ["-c", "pass"],
                   "conf": {"kyuubi.batch.id": bid}}
    endpoints: list[tuple[str, str, dict[str, Any], dict[str, int]]] = [
        ("GET", f"/api/v1/batches/{bid}", {}, {"owner": 200, "other": 403, "admin": 200}),
        ("GET", f"/api/v1/batches/{bid}/localLog", {}, {"owner": 200, "other": 403, "admin": 200}),
        ("GET", "/api/v1/batches?batchUser=alice", {}, {"owner": 200, "other": 403, "admin": 200}),
        ("GET", "/api/v1/batches", {}, {"owner": 200, "other": 200, "admin": 200}),
        ("POST", "/api/v1/batches", {"json": submit_body}, {"owner": 200, "other": 403, "admin": 200}),
        ("GET", "/api/v1/audit", {}, {"owner": 403, "other": 403, "admin": 200}),
        ("DELETE", f"/api/v1/batches/{bid}", {}, {"other": 403, "owner": 200, "admin": 200}),
    ]
    for method, path, kwargs, expected in endpoints:
        for caller, headers in callers.items():
            want = expected.get(caller, 401)
            async with gate.client.request(method, path, headers=headers, **kwargs) as resp:
                body = await resp.json(content_type=None)
                assert resp.status == want, (method, path, caller, resp.status, body)
                if want >= 400:
                    assert body["message"], body
                if want == 401:
                    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # Follow streams check too (a 200 here would start streaming; only the refusals are checked).
    for caller in ("other", "anonymous", "wrong password"):
        async with gate.client.get(f"/api/v1/batches/{bid}/log/follow", headers=callers[caller]) as resp:
            assert resp.status == (403 if caller == "other" else 401)
    # The other user's list never shows alice's rows.
    listed = await as_(gate, "bob").call("GET", "/api/v1/batches?size=100")
    assert all(b["user"] == "bob" for b in listed["batches"])


async def test_impersonation_rules(gate: Api, python: str) -> None:
    svc = as_(gate, "svc")
    for_bob = await svc.submit(resource=python, args=["-c", "pass"], conf={"kyuubi.session.proxy.user": "bob"})
    assert for_bob["user"] == "bob" and for_bob["batchInfo"]["realUser"] == "svc"
    ok = await svc.submit(resource=python, args=["-c", "pass"], conf={"hive.server2.proxy.user": "carol"})
    assert ok["user"] == "carol", "group rule @etl covers carol"
    status, payload = await svc.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": python, "conf": {"kyuubi.session.proxy.user": "alice"}})
    assert status == 403 and "may not act as alice" in payload["message"]
    status, payload = await as_(gate, "bob").status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": python, "conf": {"kyuubi.session.proxy.user": "carol"}})
    assert status == 403
    # The impersonating user and the effective user may both read it.
    assert (await as_(gate, "bob").get(for_bob["id"]))["user"] == "bob"
    status, _ = await as_(gate, "bob").status_of("GET", f"/api/v1/batches/{ok['id']}")
    assert status == 403, "bob may not read carol's batch"
    assert (await as_(gate, "carol").get(ok["id"]))["user"] == "carol"
    assert (await svc.get(ok["id"]))["batchInfo"]["realUser"] == "svc"


@pytest.mark.parametrize(("conf", "status", "field"), [
    ({"spark.driver.extraJavaOptions": "-Dx=1"}, 403, "spark.driver.extraJavaOptions"),
    ({"spark.executorEnv.PATH": "/tmp"}, 403, "spark.executorEnv.PATH"),
    ({"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}, 400, "conf"),
    ({"big": "x" * 300}, 400, "conf"),
])
async def test_conf_rules(gate: Api, python: str, conf: dict[str, str], status: int, field: str) -> None:
    got, payload = await as_(gate, "alice").status_of(
        "POST", "/api/v1/batches", json={"batchType": "LOCAL", "resource": python, "conf": conf})
    assert got == status and field in payload["message"], payload


async def test_args_limit(gate: Api, python: str) -> None:
    status, payload = await as_(gate, "alice").status_of(
        "POST", "/api/v1/batches", json={"batchType": "LOCAL", "resource": python, "args": ["1"] * 6})
    assert status == 400 and "args" in payload["message"]


@pytest.mark.parametrize(("resource", "status"), [
    ("/etc/passwd", 403),
    ("ftp://example.org/job.jar", 400),
    ("file:///etc/shadow", 403),
    ("hdfs://nn/jobs/app.jar", 200),
])
async def test_resource_allow_list(gate: Api, resource: str, status: int) -> None:
    body = {"batchType": "SPARK", "resource": resource, "className": "org.example.Main"}
    got, payload = await as_(gate, "alice").status_of("POST", "/api/v1/batches", json=body)
    if status == 200:
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        assert "scheme" not in message and "allowed dirs" not in message, payload
    else:
        assert got == status and "resource" in payload["message"], payload


async def test_resource_dir_escape_by_dots(gate: Api, tmp_path: Path) -> None:
    sneaky = str(tmp_path / "allowed" / ".." / "outside.py")
    status, payload = await as_(gate, "root").status_of(
        "POST", "/api/v1/batches", json={"batchType": "LOCAL", "resource": sneaky})
    assert status == 403 and "outside the allowed dirs" in payload["message"]


@pytest.mark.parametrize(("name", "stored"), [
    ("../../../etc/passwd", "passwd"),
    ("/abs/path/x.py", "x.py"),
    ("..\\..\\win.py", "win.py"),
    ("a/../../b.py", "b.py"),
    (".hidden.py", "hidden.py"),
    ("we ird;$(rm).py", "we_ird___rm_.py"),
])
async def test_upload_names_never_escape(api: Api, name: str, stored: str) -> None:
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL"}', content_type="application/json")
    form.add_field("resourceFile", b"print('safe')\n", filename=name)
    batch = await api.call("POST", "/api/v1/batches", data=form)
    assert batch["batchInfo"]["uploadedFile"] == stored
    assert "/" not in stored and not stored.startswith(".")
    await api.wait_for(batch["id"])
    log = await api.full_log(batch["id"])
    if stored.endswith(".py"):
        assert "safe" in log
    else:  # not runnable as a program, but it was written inside the batch's own dir
        assert any(f"/batches/{batch['id']}/upload/{stored}" in line for line in log), log


@pytest.mark.parametrize("name", ["..", ".", "/", ""])
async def test_upload_names_that_are_nothing_are_400(api: Api, name: str) -> None:
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL"}', content_type="application/json")
    form.add_field("resourceFile", b"print(1)", filename=name or "x")
    if not name:
        form = aiohttp.FormData()
        form.add_field("batchRequest", '{"batchType": "LOCAL"}', content_type="application/json")
        form.add_field("resourceFile", b"print(1)", filename="")
    status, payload = await api.status_of("POST", "/api/v1/batches", data=form)
    assert status == 400 and "resourceFile" in payload["message"], payload


async def test_local_program_allow_list(start_gateway, tmp_path: Path, python: str) -> None:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {"alice": "a-pass"})
    api: Api = await start_gateway(users_file=users, engines=["LOCAL"], local_programs=["/bin/echo"])
    alice = api.as_user("alice", "a-pass")
    assert (await alice.submit(resource="/bin/echo", args=["ok"]))["state"]
    status, payload = await alice.status_of("POST", "/api/v1/batches", json={"batchType": "LOCAL", "resource": python})
    assert status == 400 and "allow-list" in payload["message"]


async def test_rate_limit_answers_429_with_retry_after(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(submit_rate_per_minute=3)
    for _ in range(3):
        await api.submit(resource=python, args=["-c", "pass"])
    async with api.client.post("/api/v1/batches", headers=api.headers,
                               json={"batchType": "LOCAL", "resource": python}) as resp:
        assert resp.status == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 61
        assert "rate limit" in (await resp.json())["message"]
    await api.as_user("someone-else").submit(resource=python, args=["-c", "pass"])


async def test_audit_log_records_submits_kills_and_denials(gate: Api, python: str) -> None:
    batch = await _batch(gate, python)
    await as_(gate, "bob").status_of("DELETE", f"/api/v1/batches/{batch['id']}")
    await gate.as_user("bob", "guess").status_of("GET", "/api/v1/batches")
    await as_(gate, "alice").kill(batch["id"])
    root = as_(gate, "root")
    page = await root.call("GET", f"/api/v1/audit?target={batch['id']}")
    actions = [(e["actor"], e["action"], e["allowed"]) for e in page["entries"]]
    assert ("alice", "submit", True) in actions and ("alice", "kill", True) in actions
    assert ("bob", "denied", False) in actions
    assert all(e["sourceIp"] == "127.0.0.1" for e in page["entries"])
    failed = await root.call("GET", "/api/v1/audit?action=auth_failed&actor=bob")
    assert failed["total"] >= 1 and not failed["entries"][0]["allowed"]
    paged = await root.call("GET", "/api/v1/audit?size=2")
    assert len(paged["entries"]) == 2 and paged["total"] >= 4
    times = [e["time"] for e in (await root.call("GET", "/api/v1/audit"))["entries"]]
    assert times == sorted(times, reverse=True)
    status, _ = await root.status_of("GET", "/api/v1/audit?since=abc")
    assert status == 400


async def test_secrets_are_masked_everywhere(api: Api, python: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    batch = await api.submit(resource=python, args=["-c", "pass"], conf={
        "spark.hadoop.fs.s3a.secret.key": secret, "db.password": secret, "api.token": secret})
    assert secret not in str(batch)
    await api.wait_for(batch["id"])
    assert secret not in str(await api.get(batch["id"]))
    assert secret not in str(await api.call("GET", "/api/v1/batches"))
    assert not any(secret in line for line in await api.full_log(batch["id"]))
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err, "secrets never reach the gateway's own log"


def test_mask_text_hides_key_value_pairs() -> None:
    from gateway.store.records import mask_text

    line = "spark-submit --conf spark.hadoop.fs.s3a.secret.key=abc --conf spark.app.name=x --password=hunter2"
    masked = mask_text(line)
    assert "abc" not in masked and "hunter2" not in masked and "spark.app.name=x" in masked
