"""Server-sent event streams: a batch log (LogFollow), a run's changes (RunEvents) and the changes of
batches (BatchEvents), each resuming after a dropped connection where it stopped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from gateway.client.errors import GatewayUnreachable
from gateway.contract.batches import Batch, BatchSnapshot
from gateway.contract.jobs import Run

if TYPE_CHECKING:
    from gateway.client.aio import AsyncClient


@dataclass(frozen=True)
class LogLine:
    """One line of a batch log and its absolute, 0-based line number."""

    number: int
    text: str


@dataclass(frozen=True)
class RunEvent:
    """A change of a run (`node` is None) or of one of its nodes."""

    id: int
    kind: str
    state: str
    time: int
    node: str | None = None


@dataclass(frozen=True)
class BatchChange:
    """`snapshot`: `batches` is the whole view (the batches named, or the caller's queued, paused and
    running ones), replacing what came before; `batch`: one batch changed (`batches` holds it)."""

    kind: str
    batches: list[Batch]


@dataclass
class _Event:
    type: str = "message"
    data: str = ""
    id: str | None = None


async def _sse(resp: aiohttp.ClientResponse) -> AsyncIterator[_Event]:
    """Server-sent events from a response, with lines of any length."""
    buffer = b""
    event = _Event()
    data: list[str] = []
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").removesuffix("\r")
            if not line:
                if data or event.type != "message":
                    event.data = "\n".join(data)
                    yield event
                event, data = _Event(), []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event.type = value
            elif field == "id":
                event.id = value


class _Stream:
    """Reads one server-sent event stream, reconnecting (up to the client's `retries` times in a row)
    where it stopped when the connection drops: a gateway restart, a database outage, a proxy timeout."""

    def __init__(self, client: AsyncClient, path: str) -> None:
        self._client = client
        self._path = path
        self._resp: aiohttp.ClientResponse | None = None
        self._events: AsyncIterator[_Event] | None = None
        self._failures = 0
        self._ended = False

    def _resume(self) -> tuple[dict[str, str], dict[str, str]]:
        """Query parameters and headers that resume after the last event seen."""
        return {}, {}

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._events = None
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    async def _next_event(self) -> _Event | None:
        """The next event, or None when the connection dropped."""
        try:
            if self._events is None:
                params, headers = self._resume()
                self._resp = await self._client._open(
                    "GET", self._path, params=params, headers={"Accept": "text/event-stream", **headers},
                    read_timeout=max(self._client.timeout, 60.0))
                self._events = _sse(self._resp)
            # The gateway sends a keepalive every 15 s: a longer silence means a dead stream, whatever
            # the socket says, and it is picked up again.
            return await asyncio.wait_for(self._events.__anext__(), max(self._client.timeout, 60.0))
        except GatewayUnreachable:
            if not self._failures:
                raise  # the first connection: a wrong URL fails at once
            return None
        except (StopAsyncIteration, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
            return None

    async def _event(self) -> _Event | None:
        """The next event of the stream, or None at its end."""
        while not self._ended:
            event = await self._next_event()
            if event is None:
                await self.aclose()
                self._failures += 1
                if self._failures > self._client.retries:
                    raise GatewayUnreachable(self._client.url, f"the stream {self._path} keeps dropping")
                await asyncio.sleep(min(0.2 * 2 ** self._failures, 5.0))
                continue
            self._failures = 0
            if event.type == "end":
                self._ended = True
                await self.aclose()
            return event
        return None


class LogFollow(_Stream):
    """An async iterator of `LogLine`s until the batch ends; then `batch` holds its final state."""

    def __init__(self, client: AsyncClient, batch_id: str, start: int) -> None:
        super().__init__(client, f"/api/v1/batches/{batch_id}/log/follow")
        self.batch_id = batch_id
        self.position = start
        self.batch: Batch | None = None

    def _resume(self) -> tuple[dict[str, str], dict[str, str]]:
        return {"from": str(self.position)}, {}

    def __aiter__(self) -> LogFollow:
        return self

    async def __anext__(self) -> LogLine:
        while (event := await self._event()) is not None:
            if event.type == "log" and event.id is not None:
                number = int(event.id)
                self.position = number + 1
                return LogLine(number, event.data)
            if event.type == "end":
                self.batch = Batch.model_validate_json(event.data)
        raise StopAsyncIteration


class RunEvents(_Stream):
    """An async iterator of `RunEvent`s until the run ends; then `run` holds its final state."""

    def __init__(self, client: AsyncClient, run_id: str) -> None:
        super().__init__(client, f"/api/v1/runs/{run_id}/events")
        self.run_id = run_id
        self.last_id: str | None = None
        self.run: Run | None = None

    def _resume(self) -> tuple[dict[str, str], dict[str, str]]:
        return {}, ({"Last-Event-ID": self.last_id} if self.last_id else {})

    def __aiter__(self) -> RunEvents:
        return self

    async def __anext__(self) -> RunEvent:
        while (event := await self._event()) is not None:
            if event.type in ("run", "node") and event.id is not None:
                self.last_id = event.id
                data = json.loads(event.data)
                return RunEvent(int(event.id), event.type, data["state"], data.get("time", 0), data.get("node"))
            if event.type == "end":
                self.run = Run.model_validate_json(event.data)
        raise StopAsyncIteration


class BatchEvents(_Stream):
    """An async iterator of `BatchChange`s, endless: a snapshot, then each change as it happens. After a
    dropped connection it starts again with a fresh snapshot."""

    def __init__(self, client: AsyncClient, batch_ids: list[str] | None = None, *, snapshot: bool = True) -> None:
        super().__init__(client, "/api/v1/batches/events")
        self._params = {"batchId": ",".join(batch_ids)} if batch_ids else {}
        self._snapshot = snapshot
        self._connected = False

    def _resume(self) -> tuple[dict[str, str], dict[str, str]]:
        # A first connection without a snapshot stays so; a reconnection needs one to catch up.
        snapshot = self._snapshot or self._connected
        self._connected = True
        return {**self._params, "snapshot": "true" if snapshot else "false"}, {}

    def __aiter__(self) -> BatchEvents:
        return self

    async def __anext__(self) -> BatchChange:
        while (event := await self._event()) is not None:
            if event.type == "snapshot":
                return BatchChange("snapshot", BatchSnapshot.model_validate_json(event.data).batches)
            if event.type == "batch":
                return BatchChange("batch", [Batch.model_validate_json(event.data)])
        raise StopAsyncIteration
