"""Authentication and ownership: Basic against an htpasswd bcrypt file; users see only their batches."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import bcrypt
import pytest

from gateway.settings import Settings
from tests.helpers import Api


def htpasswd(path: Path, users: dict[str, str]) -> Path:
    # htpasswd -B writes $2y$; bcrypt writes $2b$. Both must work.
    lines = []
    for i, (user, password) in enumerate(users.items()):
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        if i % 2 == 0:
            digest = "$2y$" + digest[4:]
        lines.append(f"{user}:{digest}")
    path.write_text("# users\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
async def secured(start_gateway, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {"alice": "a-pass", "bob": "b-pass", "root": "r-pass"})
    api: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"])
    return api


async def test_missing_and_wrong_credentials_are_401(secured: Api) -> None:
    for headers in ({}, {"Authorization": "Basic " + "YWxpY2U6d3Jvbmc="},  # alice:wrong
                    {"Authorization": "Basic !!!"}, {"Authorization": "Bearer abc"}):
        anon = Api(secured.client, secured.app)
        anon.headers = headers
        status, payload = await anon.status_of("GET", "/api/v1/batches")
        assert status == 401 and payload["message"], (headers, payload)
    async with secured.client.get("/api/v1/batches") as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    status, _ = await secured.as_user("mallory", "x").status_of("GET", "/api/v1/batches")
    assert status == 401
    status, _ = await secured.as_user("alice", "b-pass").status_of("GET", "/api/v1/batches")
    assert status == 401, "another user's password does not work"


async def test_health_needs_no_credentials(secured: Api) -> None:
    async with secured.client.get("/healthz") as resp:
        assert resp.status == 200


async def test_users_see_and_kill_only_their_own(secured: Api, python: str) -> None:
    alice = secured.as_user("alice", "a-pass")
    bob = secured.as_user("bob", "b-pass")
    root = secured.as_user("root", "r-pass")
    batch = await alice.submit(resource=python, args=["-c", "import time; time.sleep(60)"])
    assert batch["user"] == "alice"
    await alice.wait_for(batch["id"], ("RUNNING",), timeout=20)

    for method, path in (("GET", f"/api/v1/batches/{batch['id']}"),
                         ("GET", f"/api/v1/batches/{batch['id']}/localLog"),
                         ("GET", f"/api/v1/batches/{batch['id']}/log/follow"),
                         ("DELETE", f"/api/v1/batches/{batch['id']}")):
        status, payload = await bob.status_of(method, path)
        assert status == 403 and "another user" in payload["message"], (method, path, payload)
    assert (await alice.get(batch["id"]))["state"] == "RUNNING", "bob's kill did nothing"

    listed = await bob.call("GET", "/api/v1/batches")
    assert listed["total"] == 0 and listed["batches"] == []
    status, payload = await bob.status_of("GET", "/api/v1/batches?batchUser=alice")
    assert status == 403 and "batchUser" in payload["message"]
    assert (await alice.call("GET", "/api/v1/batches"))["total"] == 1
    assert (await root.call("GET", "/api/v1/batches?batchUser=alice"))["total"] == 1

    result = await root.kill(batch["id"])
    assert result["success"] is True
    assert (await alice.wait_for(batch["id"]))["state"] == "CANCELED"


async def test_impersonation_needs_admin(secured: Api, python: str) -> None:
    alice = secured.as_user("alice", "a-pass")
    root = secured.as_user("root", "r-pass")
    status, payload = await alice.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": python, "conf": {"kyuubi.session.proxy.user": "bob"}})
    assert status == 403 and "may not act as bob" in payload["message"]
    batch = await root.submit(resource=python, args=["-c", "pass"], conf={"hive.server2.proxy.user": "bob"})
    assert batch["user"] == "bob" and batch["batchInfo"]["realUser"] == "root"
    bob = secured.as_user("bob", "b-pass")
    assert (await bob.get(batch["id"]))["id"] == batch["id"], "the effective user sees the batch"


async def test_local_engine_is_off_by_default_with_users_file(start_gateway, tmp_path: Path, python: str) -> None:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {"alice": "a-pass"})
    api: Api = await start_gateway(users_file=users)
    status, payload = await api.as_user("alice", "a-pass").status_of(
        "POST", "/api/v1/batches", json={"batchType": "LOCAL", "resource": python})
    assert status == 400 and "LOCAL is not enabled" in payload["message"]


def test_open_mode_refuses_a_public_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Settings(host="0.0.0.0", data_dir=tmp_path)
    Settings(host="0.0.0.0", data_dir=tmp_path, users_file=tmp_path / "u")  # fine with a users file


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATCHGATE_PORT", "12345")
    monkeypatch.setenv("BATCHGATE_ADMIN", "ann, ben")
    monkeypatch.setenv("BATCHGATE_ENGINES", "spark,local")
    monkeypatch.setenv("BATCHGATE_MAX_RUNNING_PER_TYPE", "SPARK=2,local=5")
    settings = Settings(data_dir=tmp_path)
    assert settings.instance.port == 12345 and settings.security.admin == ["ann", "ben"]
    assert settings.enabled_engines == {"SPARK", "LOCAL"}
    assert settings.queue.max_running_per_type == {"SPARK": 2, "LOCAL": 5}


async def _status_within(api: Api, user: str, password: str, wanted: int, seconds: float = 10.0) -> None:
    """The status of GET /batches as this user becomes `wanted` within `seconds` (the file is watched)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status, _ = await api.as_user(user, password).status_of("GET", "/api/v1/batches")
        if status == wanted:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{user}: still {status}, not {wanted}"
        await asyncio.sleep(0.1)


async def test_the_users_file_is_followed_as_an_operator_changes_it(start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Written in place, replaced by a rename (as editors and `htpasswd` do), swapped behind a symlink (as a
    mounted Kubernetes secret is), and broken for a moment: the gateway follows, and never serves nobody."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "v1").mkdir()
    htpasswd(secret / "v1" / "users", {"alice": "a-pass", "root": "r-pass"})
    (secret / "..data").symlink_to("v1")
    (secret / "users").symlink_to("..data/users")
    api: Api = await start_gateway(users_file=secret / "users", admin=["root"], engines=["LOCAL"])
    await _status_within(api, "alice", "a-pass", 200)
    await _status_within(api, "bob", "b-pass", 401)

    # Kubernetes: a new directory, then the ..data symlink swapped by a rename.
    (secret / "v2").mkdir()
    htpasswd(secret / "v2" / "users", {"alice": "a-pass", "bob": "b-pass", "root": "r-pass"})
    (secret / "..data_tmp").symlink_to("v2")
    os.rename(secret / "..data_tmp", secret / "..data")
    await _status_within(api, "bob", "b-pass", 200)

    # A plain file, replaced by a rename: alice is gone, and her cached credentials with her.
    plain = tmp_path / "plain"
    plain.mkdir()
    users = htpasswd(plain / "users", {"bob": "b-pass", "root": "r-pass"})
    api2: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"])
    await _status_within(api2, "bob", "b-pass", 200)
    htpasswd(plain / "users.new", {"root": "r-pass", "carol": "c-pass"})
    os.rename(plain / "users.new", users)
    await _status_within(api2, "carol", "c-pass", 200)
    await _status_within(api2, "bob", "b-pass", 401)

    # Written in place; a line that is not a user keeps the users read last, until it is mended.
    users.write_text(users.read_text() + "not a user line\n")
    await asyncio.sleep(0.5)
    await _status_within(api2, "carol", "c-pass", 200)
    htpasswd(users, {"root": "r-pass", "dave": "d-pass"})
    await _status_within(api2, "dave", "d-pass", 200)
    await _status_within(api2, "carol", "c-pass", 401)
