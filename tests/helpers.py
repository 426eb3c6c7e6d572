"""Test helpers: a thin client for the gateway's HTTP API, and small utilities."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from aiohttp.test_utils import TestClient

TERMINAL = ("FINISHED", "ERROR", "CANCELED")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def info(batch: dict[str, Any], key: str) -> Any:
    """A structured batchInfo value: batchInfo is Kyuubi's map of strings, so such values travel as JSON."""
    return json.loads(batch["batchInfo"][key])


def basic(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Api:
    """Calls the live gateway over HTTP, as a client would."""

    def __init__(self, client: TestClient[Any, Any], app: web.Application, user: str = "admin",
                 password: str = "") -> None:
        self.client = client
        self.app = app
        self.headers = basic(user, password)

    def as_user(self, user: str, password: str = "") -> Api:
        return Api(self.client, self.app, user, password)

    async def call(self, method: str, path: str, *, expect: int | None = 200, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            if expect is not None:
                assert resp.status == expect, f"{method} {path} -> {resp.status} {body}"
            return body

    async def status_of(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            try:
                import json

                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def submit(self, batch_type: str = "LOCAL", resource: str | None = None, *,
                     args: list[str] | None = None, name: str | None = None,
                     conf: dict[str, str] | None = None, class_name: str | None = None,
                     expect: int = 200) -> Any:
        body: dict[str, Any] = {"batchType": batch_type, "resource": resource, "args": args or [],
                                "conf": conf or {}}
        if name is not None:
            body["name"] = name
        if class_name is not None:
            body["className"] = class_name
        return await self.call("POST", "/api/v1/batches", json=body, expect=expect)

    async def get(self, batch_id: str) -> Any:
        return await self.call("GET", f"/api/v1/batches/{batch_id}")

    async def wait_for(self, batch_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            batch = await self.get(batch_id)
            if batch["state"] in states:
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} still {batch['state']} after {timeout}s: {batch}")
            await asyncio.sleep(0.05)

    async def log(self, batch_id: str, start: int = 0, size: int = 10_000) -> list[str]:
        body = await self.call("GET", f"/api/v1/batches/{batch_id}/localLog?from={start}&size={size}")
        rows: list[str] = body["logRowSet"]
        assert body["rowCount"] == len(rows)
        return rows

    async def full_log(self, batch_id: str) -> list[str]:
        rows: list[str] = []
        while True:
            page = await self.log(batch_id, len(rows), 10_000)
            if not page:
                return rows
            rows.extend(page)

    async def kill(self, batch_id: str) -> Any:
        return await self.call("DELETE", f"/api/v1/batches/{batch_id}")
