"""GET /api/v1/batches/events: a snapshot, then each change of a batch the caller may see, as it happens
(fed by LISTEN/NOTIFY), for `batchgate top`, the CLI's waits and the web page's list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.helpers import Api, info

SLEEP = "import time; print('up', flush=True); time.sleep({})"


class Events:
    """The parsed events of one open stream."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 20) -> tuple[str, Any]:
        kind, data = "message", ""
        while True:
            raw = await asyncio.wait_for(self.resp.content.readline(), timeout)
            assert raw, "the stream ended"
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                data += line[len("data: "):]
            elif not line and data:
                return kind, json.loads(data)

    async def until(self, check: Any, timeout: float = 30) -> list[tuple[str, Any]]:
        """Events until one satisfies check(kind, data); returns all of them."""
        seen: list[tuple[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next(max(0.1, deadline - loop.time()))
            seen.append(event)
            if check(*event):
                return seen


@asynccontextmanager
async def events(api: Api, query: str = "") -> AsyncIterator[Events]:
    async with api.client.get(f"/api/v1/batches/events{query}", headers=api.headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        yield Events(resp)


def is_batch(batch_id: str, state: str) -> Any:
    return lambda kind, data: kind == "batch" and data["id"] == batch_id and data["state"] == state


async def test_snapshot_then_changes_within_the_callers_visibility(api: Api, python: str) -> None:
    alice, bob = api.as_user("alice"), api.as_user("bob")
    old = await alice.submit(resource=python, args=["-c", SLEEP.format(60)], name="old")
    await alice.wait_for(old["id"], ("RUNNING",))
    done = await alice.submit(resource=python, args=["-c", "print(1)"])
    await alice.wait_for(done["id"])
    bobs = await bob.submit(resource=python, args=["-c", SLEEP.format(60)])
    await bob.wait_for(bobs["id"], ("RUNNING",))

    async with events(alice) as stream:
        kind, data = await stream.next()
        assert kind == "snapshot"
        assert [b["id"] for b in data["batches"]] == [old["id"]], "active batches of hers only"
        new = await alice.submit(resource=python, args=["-c", SLEEP.format(0.5)], name="new")
        await bob.kill(bobs["id"])
        seen = await stream.until(is_batch(new["id"], "FINISHED"))
        states = [d["state"] for k, d in seen if k == "batch" and d["id"] == new["id"]]
        assert states[-1] == "FINISHED" and "RUNNING" in states, seen
        assert states == sorted(states, key=["INITIALIZED", "PENDING", "RUNNING", "FINISHED"].index), states
        assert all(d["id"] in (new["id"], old["id"]) for k, d in seen), "nothing of bob's"
        assert seen[-1][1]["name"] == "new" and info(seen[-1][1], "local")["exit_code"] == 0

    async with events(api) as stream:  # an admin sees everyone's
        kind, data = await stream.next()
        assert kind == "snapshot" and {b["id"] for b in data["batches"]} == {old["id"]}
        await alice.kill(old["id"])
        await stream.until(is_batch(old["id"], "CANCELED"))


async def test_named_batches_from_any_state(api: Api, python: str) -> None:
    alice = api.as_user("alice")
    ended = await alice.submit(resource=python, args=["-c", "print(1)"])
    await alice.wait_for(ended["id"])
    running = await alice.submit(resource=python, args=["-c", SLEEP.format(1)])
    async with events(alice, f"?batchId={ended['id']},{running['id']}") as stream:
        kind, data = await stream.next()
        assert kind == "snapshot" and {b["id"] for b in data["batches"]} == {ended["id"], running["id"]}
        other = await alice.submit(resource=python, args=["-c", "print(2)"])
        seen = await stream.until(is_batch(running["id"], "FINISHED"))
        assert all(d["id"] == running["id"] for k, d in seen), "only the batches named"
    assert other


async def test_a_named_batch_must_be_readable(api: Api, python: str) -> None:
    theirs = await api.as_user("bob").submit(resource=python, args=["-c", "print(1)"])
    status, body = await api.as_user("alice").status_of("GET", f"/api/v1/batches/events?batchId={theirs['id']}")
    assert status == 403 and "another user" in body["message"], body
    status, body = await api.status_of("GET", "/api/v1/batches/events?batchId=nope")
    assert status == 400 and body["message"].startswith("batchId:"), body
    status, body = await api.status_of("GET", "/api/v1/batches/events?batchId=" + "0" * 8 + "-0000-4000-8000-" + "0" * 12)
    assert status == 404, body
    status, body = await api.status_of("GET", "/api/v1/batches/events?snapshot=maybe")
    assert status == 400 and body["message"].startswith("snapshot:"), body


async def test_without_snapshot_only_changes(api: Api, python: str) -> None:
    async with events(api, "?snapshot=false") as stream:
        batch = await api.submit(resource=python, args=["-c", "print(1)"])
        kind, data = await stream.next()
        assert kind == "batch" and data["id"] == batch["id"], (kind, data)
        await stream.until(is_batch(batch["id"], "FINISHED"))
