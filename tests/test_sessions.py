"""Sessions: Basic in, a token out; Bearer and cookie use; hashed storage, expiry, revocation, CSRF on
cookie writes, and no token in the gateway's log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.gateway_process import GatewayProcess
from tests.helpers import Api, basic
from tests.test_auth import htpasswd

USERS = {"alice": "a-pass", "bob": "b-pass", "root": "r-pass"}


@pytest.fixture
async def secured(start_gateway, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", USERS)
    api: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"])
    return api


async def login(api: Api, user: str = "alice", body: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Log in; returns the JSON body and the Set-Cookie header. The client's own cookie jar is emptied,
    so that every later request carries exactly the credentials the test gives it."""
    async with api.client.post("/api/v1/sessions", headers=basic(user, USERS[user]), json=body) as resp:
        assert resp.status == 200, await resp.text()
        payload: dict[str, Any] = await resp.json()
        set_cookie = resp.headers["Set-Cookie"]
        assert resp.headers["Cache-Control"] == "no-store"
    api.client.session.cookie_jar.clear()
    return payload, set_cookie


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"batchgate_session={token}"}


async def status(api: Api, method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    async with api.client.request(method, path, headers=headers, **kw) as resp:
        body = await resp.json(content_type=None) if resp.content_length != 0 else None
        api.client.session.cookie_jar.clear()
        return resp.status, body


async def test_login_gives_a_token_that_works_as_bearer_and_cookie(secured: Api, python: str) -> None:
    session, set_cookie = await login(secured)
    assert session["user"] == "alice" and len(session["token"]) >= 40 and session["csrfToken"]
    assert session["expiresAt"] > 0
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar["batchgate_session"]
    assert morsel.value == session["token"]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == 12 * 3600

    token = session["token"]
    code, batch = await status(secured, "POST", "/api/v1/batches", bearer(token),
                               json={"batchType": "LOCAL", "resource": python, "args": ["-c", "print(1)"]})
    assert code == 200 and batch["user"] == "alice", "Bearer needs no CSRF token: browsers never send it"
    code, listed = await status(secured, "GET", "/api/v1/batches", cookie(token))
    assert code == 200 and [b["id"] for b in listed["batches"]] == [batch["id"]]
    code, current = await status(secured, "GET", "/api/v1/sessions/current", bearer(token))
    assert code == 200 and current["user"] == "alice" and current["admin"] is False
    assert current["csrfToken"] == session["csrfToken"] and current["expiresAt"] == session["expiresAt"]
    code, current = await status(secured, "GET", "/api/v1/sessions/current", basic("alice", "a-pass"))
    assert code == 400 and "Basic" in current["message"]

    root, _ = await login(secured, "root")
    code, current = await status(secured, "GET", "/api/v1/sessions/current", bearer(root["token"]))
    assert code == 200 and current["admin"] is True


async def test_login_needs_valid_basic_credentials(secured: Api) -> None:
    for headers in ({}, basic("alice", "wrong"), basic("mallory", "x"), bearer("x" * 43)):
        code, body = await status(secured, "POST", "/api/v1/sessions", headers)
        assert code == 401 and body["message"], headers
    session, _ = await login(secured)
    code, body = await status(secured, "POST", "/api/v1/sessions", bearer(session["token"]))
    assert code == 401 and "Basic" in body["message"], "a session cannot mint another session"
    for bad in ({"expiresIn": "60"}, {"expiresIn": 0}, {"expiresIn": -5}, {"expiresIn": 10**9},
                {"expiresIn": 1.5}, {"other": 1}, [1]):
        code, body = await status(secured, "POST", "/api/v1/sessions", basic("alice", "a-pass"), json=bad)
        assert code == 400 and body["message"], bad
    code, body = await status(secured, "POST", "/api/v1/sessions", basic("alice", "a-pass"), data=b"{nope")
    assert code == 400 and "JSON" in body["message"]


async def test_tokens_are_stored_as_hashes(secured: Api, database_url: str) -> None:
    session, _ = await login(secured)
    token = session["token"]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select * from sessions")
        dump = repr([dict(r) for r in rows])
    finally:
        await conn.close()
    assert len(rows) == 1 and rows[0]["user_name"] == "alice"
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert token not in dump and session["csrfToken"] not in dump


async def test_a_session_expires(secured: Api) -> None:
    session, set_cookie = await login(secured, body={"expiresIn": 1})
    assert "Max-Age=1" in set_cookie
    token = session["token"]
    code, _ = await status(secured, "GET", "/api/v1/batches", bearer(token))
    assert code == 200
    await asyncio.sleep(1.3)
    for headers in (bearer(token), cookie(token)):
        async with secured.client.get("/api/v1/batches", headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer"), "no browser password dialog"
            assert "expired" in (await resp.json())["message"]


async def test_revoking_one_session_leaves_the_others(secured: Api) -> None:
    first, _ = await login(secured)
    second, _ = await login(secured)
    assert first["token"] != second["token"]
    code, _ = await status(secured, "GET", "/api/v1/batches", bearer(first["token"]))
    assert code == 200, "a new login does not end the user's other sessions"

    async with secured.client.delete("/api/v1/sessions/current", headers=bearer(first["token"])) as resp:
        assert resp.status == 200 and (await resp.json())["success"] is True
        assert "batchgate_session=\"\"" in resp.headers["Set-Cookie"] or "Max-Age=0" in resp.headers["Set-Cookie"]
    secured.client.session.cookie_jar.clear()
    for headers in (bearer(first["token"]), cookie(first["token"])):
        code, body = await status(secured, "GET", "/api/v1/batches", headers)
        assert code == 401 and "revoked" in body["message"]
    code, _ = await status(secured, "GET", "/api/v1/batches", bearer(second["token"]))
    assert code == 200
    code, _ = await status(secured, "DELETE", "/api/v1/sessions/current", bearer(first["token"]))
    assert code == 401
    code, body = await status(secured, "DELETE", "/api/v1/sessions/current", basic("alice", "a-pass"))
    assert code == 400
    audit = await secured.as_user("root", "r-pass").call("GET", "/api/v1/audit?actor=alice")
    actions = [e["action"] for e in audit["entries"]]
    assert actions.count("login") == 2 and actions.count("logout") == 1


async def test_cookie_writes_need_the_csrf_token(secured: Api, python: str) -> None:
    session, _ = await login(secured)
    token, csrf = session["token"], session["csrfToken"]
    other, _ = await login(secured, "bob")
    body = {"batchType": "LOCAL", "resource": python, "args": ["-c", "print(1)"]}
    for headers in (cookie(token), {**cookie(token), "X-CSRF-Token": "forged"},
                    {**cookie(token), "X-CSRF-Token": other["csrfToken"]}):
        code, answer = await status(secured, "POST", "/api/v1/batches", headers, json=body)
        assert code == 403 and "X-CSRF-Token" in answer["message"], headers
    listed = await secured.as_user("alice", "a-pass").call("GET", "/api/v1/batches")
    assert listed["total"] == 0, "a refused write did nothing"

    code, batch = await status(secured, "POST", "/api/v1/batches", {**cookie(token), "X-CSRF-Token": csrf},
                               json=body)
    assert code == 200 and batch["user"] == "alice"
    code, _ = await status(secured, "DELETE", f"/api/v1/batches/{batch['id']}", cookie(token))
    assert code == 403, "a kill is a write too"
    code, _ = await status(secured, "DELETE", "/api/v1/sessions/current", cookie(token))
    assert code == 403, "so is a logout"
    code, _ = await status(secured, "GET", f"/api/v1/batches/{batch['id']}", cookie(token))
    assert code == 200, "reads need no CSRF token"
    code, _ = await status(secured, "DELETE", "/api/v1/sessions/current", {**cookie(token), "X-CSRF-Token": csrf})
    assert code == 200
    audit = await secured.as_user("root", "r-pass").call("GET", "/api/v1/audit?actor=alice&action=denied")
    assert audit["total"] >= 3


async def test_bad_tokens_and_page_requests_get_a_bearer_challenge(secured: Api) -> None:
    for token in ("short", "x" * 43, "a b c d e f g h i j k l m n o p", "é" * 30):
        code, body = await status(secured, "GET", "/api/v1/batches", {"Authorization": f"Bearer {token}"})
        assert code == 401 and body["message"], token
    async with secured.client.get("/api/v1/batches", headers={"X-Requested-With": "fetch"}) as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    async with secured.client.get("/api/v1/batches") as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic"), "API clients: Basic"


async def test_open_mode_sessions(api: Api) -> None:
    async with api.client.post("/api/v1/sessions", headers=basic("carol")) as resp:
        assert resp.status == 200
        session = await resp.json()
    api.client.session.cookie_jar.clear()
    assert session["user"] == "carol"
    code, current = await status(api, "GET", "/api/v1/sessions/current", bearer(session["token"]))
    assert code == 200 and current["user"] == "carol"
    code, _ = await status(api, "GET", "/api/v1/sessions/current", {})
    assert code == 401, "no credentials in open mode: no session, so the page shows its login form"
    code, _ = await status(api, "POST", "/api/v1/sessions", {})
    assert code == 401, "open mode still needs a user name to log in"


async def test_no_token_or_password_in_the_gateway_log(tmp_path: Path, database_url: str) -> None:
    users = htpasswd(tmp_path / "users", USERS)
    gateway = await GatewayProcess(
        tmp_path / "data", database_url=database_url,
        extra_args=["--users-file", str(users), "--engines", "LOCAL"],
        env={"BATCHGATE_LOG_LEVEL": "debug"},
    ).start()
    secrets: list[str] = ["a-pass", base64.b64encode(b"alice:a-pass").decode()]
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.post(gateway.url + "/api/v1/sessions", headers=basic("alice", "a-pass")) as resp:
                session = await resp.json()
            token, csrf = session["token"], session["csrfToken"]
            secrets += [token, csrf]
            body = {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "print('hi')"]}
            async with http.post(gateway.url + "/api/v1/batches", json=body, headers=bearer(token)) as resp:
                assert resp.status == 200
            async with http.post(gateway.url + "/api/v1/batches", json=body, headers=cookie(token)) as resp:
                assert resp.status == 403
            async with http.get(gateway.url + "/api/v1/batches", headers=bearer(token + "x")) as resp:
                assert resp.status == 401
            async with http.delete(gateway.url + "/api/v1/sessions/current",
                                   headers={**cookie(token), "X-CSRF-Token": csrf}) as resp:
                assert resp.status == 200
            async with http.get(gateway.url + "/api/v1/batches", headers=bearer(token)) as resp:
                assert resp.status == 401
    finally:
        await gateway.stop()
    text = gateway.log_path.read_text()
    assert "session.created" in text and "session.revoked" in text, "the events are logged ..."
    for secret in secrets:
        assert secret not in text, "... but never a token, a CSRF token or a password"


async def test_session_lifetimes_come_from_the_settings(start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", USERS)
    api: Api = await start_gateway(users_file=users, engines=["LOCAL"], session_seconds=600,
                                   session_max_seconds=3600)
    session, set_cookie = await login(api)
    assert session["expiresIn"] == 600 and "Max-Age=600" in set_cookie
    assert abs(session["expiresAt"] - (time.time() * 1000 + 600_000)) < 60_000
    session, set_cookie = await login(api, body={"expiresIn": 3600})
    assert session["expiresIn"] == 3600 and "Max-Age=3600" in set_cookie
    code, body = await status(api, "POST", "/api/v1/sessions", basic("alice", USERS["alice"]),
                              json={"expiresIn": 3601})
    assert code == 400 and "expiresIn" in body["message"] and "3600" in body["message"]
