"""/healthz and /readyz: no credentials, no internals; /readyz follows Postgres, the schema and the lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.helpers import Api
from tests.pg_control import DedicatedPostgres
from tests.test_auth import htpasswd


async def probe(api: Api, path: str) -> tuple[int, Any, dict[str, str]]:
    async with api.client.get(path) as resp:  # no Authorization header
        return resp.status, await resp.json(), dict(resp.headers)


async def wait_ready(api: Api, status: int, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        code, body, _ = await probe(api, "/readyz")
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/readyz still {code} {body}"
        await asyncio.sleep(0.1)


async def test_ready_and_alive_without_credentials(start_gateway: Callable[..., Awaitable[Api]],
                                                   tmp_path: Path) -> None:
    users = htpasswd(tmp_path / "users", {"alice": "a-pass"})
    api = await start_gateway(users_file=users, engines=["LOCAL"])
    assert (await probe(api, "/healthz"))[:2] == (200, {"status": "ok"})
    status, body, _ = await probe(api, "/readyz")
    assert status == 200
    assert body == {"status": "ready", "checks": {"database": "ok", "schema": "ok", "lease": "ok"}}
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200


async def test_schema_from_a_newer_release_is_not_ready(start_gateway: Callable[..., Awaitable[Api]],
                                                        database_url: str) -> None:
    api = await start_gateway()
    conn = await asyncpg.connect(database_url)
    try:
        # A newer release's contract step: its floor is above what this release knows.
        await conn.execute("insert into schema_version (version, name, code_floor) values (999, 'future', 999)")
        body = await wait_ready(api, 503)
        assert body["checks"] == {"database": "ok", "schema": "failing", "lease": "ok"}
        await conn.execute("delete from schema_version where version = 999")
        await wait_ready(api, 200)
    finally:
        await conn.close()


@pytest.mark.slow
async def test_postgres_down_is_not_ready_but_alive(start_gateway: Callable[..., Awaitable[Api]]) -> None:
    pg = DedicatedPostgres()
    api: Api | None = None
    try:
        api = await start_gateway(database_url=pg.url, heartbeat_seconds=0.5, lease_seconds=3,
                                  metrics_state_seconds=0)
        await wait_ready(api, 200)
        await asyncio.to_thread(pg.stop)

        status, body, headers = await probe(api, "/readyz")
        assert status == 503 and headers.get("Retry-After")
        assert body == {"status": "unavailable", "checks": {"database": "failing", "schema": "failing",
                                                            "lease": "failing"}}
        text = str(body).lower()
        assert "postgres" not in text and "error" not in text and "/" not in text, "no internals leak"
        assert (await probe(api, "/healthz"))[:2] == (200, {"status": "ok"})
        async with api.client.get("/metrics") as resp:
            assert resp.status == 200, "a scrape still answers"
            assert "batchgate_database_up 0.0" in await resp.text()

        await asyncio.to_thread(pg.start)
        body = await wait_ready(api, 200, timeout=30)
        assert body["checks"] == {"database": "ok", "schema": "ok", "lease": "ok"}
        for _ in range(50):
            async with api.client.get("/metrics") as resp:
                if "batchgate_database_up 1.0" in await resp.text():
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("batchgate_database_up stays 0 after Postgres is back")
    finally:
        if api is not None:
            await api.client.close()  # before its database goes away for good
        await asyncio.to_thread(pg.close)
