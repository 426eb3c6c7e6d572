"""AsyncClient: the whole batchgate API over aiohttp, typed with the server's own pydantic models."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

import gateway
from gateway.client.errors import ClientError, GatewayUnreachable, error_for
from gateway.client.streams import BatchEvents, LogFollow
from gateway.client.workflows import AsyncWorkflows
from gateway.contract.batches import (
    CONF_BATCH_ID,
    TERMINAL_STATES,
    Batch,
    BatchDetails,
    BatchList,
    BatchRequest,
    BulkResponse,
    CloseBatchResponse,
    DropResponse,
    LocalLog,
)
from gateway.contract.engines import EngineList
from gateway.contract.overview import BatchStats, LimitsView
from gateway.contract.sessions import SessionInfo, SessionRevoked, SessionToken

DEFAULT_URL = "http://127.0.0.1:10099"
M = TypeVar("M", bound=BaseModel)
RetryHook = Callable[[int, float, str], None]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(status: int, reason: str | None, text: str, content_type: str) -> str:
    if "json" in content_type:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(message, str):
            return message
    snippet = " ".join(text.split())[:120]
    kind = content_type or "no content type"
    return f"{reason or 'error'} (not a batchgate answer: {kind}{': ' + snippet if snippet else ''})"


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(error, socket.gaierror):
        return f"unknown host {exc.host!r}"
    return error.strerror or str(error) or type(error).__name__


def _bool(value: bool) -> str:
    return "true" if value else "false"


class AsyncClient(AsyncWorkflows):
    """Talks to one gateway. Credentials: a session `token` (Bearer), or `user` and `password` (Basic).

    503 answers (the gateway's database is away) are retried `retries` times, waiting as `Retry-After`
    says (at most `max_retry_wait` seconds each). Submits carry a `kyuubi.batch.id`, so a retried submit
    never runs twice. Use it as `async with AsyncClient(...) as client:` or call `close()`.
    """

    def __init__(self, url: str = DEFAULT_URL, *, user: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 60.0, retries: int = 5,
                 max_retry_wait: float = 30.0, on_retry: RetryHook | None = None) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.on_retry = on_retry
        self._password = password
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def token(self) -> str | None:
        return self._token

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"batchgate-client/{gateway.__version__}", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        elif self.user is not None:
            pair = f"{self.user}:{self._password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout, 15.0), sock_read=self.timeout)
            # No cookie jar: a login's cookie is for the web page; this client sends the Bearer token.
            self._session = aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _open(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    json_body: Any = None, form: Callable[[], aiohttp.FormData] | None = None,
                    headers: Mapping[str, str] | None = None,
                    read_timeout: float | None = None) -> aiohttp.ClientResponse:
        """Send a request (retrying 503s) and return the open response of a success; raise otherwise."""
        attempt = 0
        while True:
            kwargs: dict[str, Any] = {"params": params, "headers": {**self._headers(), **(headers or {})}}
            if json_body is not None:
                kwargs["json"] = json_body
            if form is not None:
                kwargs["data"] = form()
            if read_timeout is not None:
                kwargs["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout, 15.0),
                                                          sock_read=read_timeout)
            try:
                resp = await self._http().request(method, self.url + path, **kwargs)
            except aiohttp.InvalidURL as exc:
                raise GatewayUnreachable(self.url, f"invalid URL ({exc})") from None
            except aiohttp.ClientConnectorError as exc:
                raise GatewayUnreachable(self.url, _connect_reason(exc)) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayUnreachable(self.url, str(exc) or type(exc).__name__) from None
            if resp.status < 400:
                return resp
            try:
                text = await resp.text(errors="replace")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayUnreachable(self.url, str(exc) or type(exc).__name__) from None
            finally:
                resp.release()
            message = _message(resp.status, resp.reason, text, resp.content_type)
            wait = _retry_after(resp.headers.get("Retry-After"))
            if resp.status == 503 and attempt < self.retries:
                attempt += 1
                delay = min(wait if wait is not None else 0.5 * 2 ** attempt, self.max_retry_wait)
                if self.on_retry is not None:
                    self.on_retry(attempt, delay, message)
                await asyncio.sleep(delay)
                continue
            raise error_for(resp.status, message, method=method, path=path, retry_after=wait)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self._open(method, path, **kwargs)
        try:
            text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayUnreachable(self.url, str(exc) or type(exc).__name__) from None
        finally:
            resp.release()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise ClientError(f"{method} {path}: the answer is not JSON: {text[:120]!r}") from None

    async def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(await self._call(method, path, **kwargs))

    # --- sessions --------------------------------------------------------------------------

    async def login(self, expires_in: int | None = None, *, use: bool = True) -> SessionToken:
        """Trade the Basic credentials for a session token; with `use`, later calls send the token."""
        body = {"expiresIn": expires_in} if expires_in is not None else None
        session = await self._model(SessionToken, "POST", "/api/v1/sessions", json_body=body)
        if use:
            self._token = session.token
        return session

    async def session(self) -> SessionInfo:
        return await self._model(SessionInfo, "GET", "/api/v1/sessions/current")

    async def logout(self) -> SessionRevoked:
        """Revoke the session this client uses; afterwards it falls back to its Basic credentials."""
        result = await self._model(SessionRevoked, "DELETE", "/api/v1/sessions/current")
        self._token = None
        return result

    # --- batches ---------------------------------------------------------------------------

    async def submit(self, request: BatchRequest | Mapping[str, Any], *,
                     resource_file: str | Path | None = None) -> Batch:
        """Submit a batch (with `resource_file`, uploaded as Kyuubi's multipart form does)."""
        req = request if isinstance(request, BatchRequest) else BatchRequest.model_validate(dict(request))
        if CONF_BATCH_ID not in req.conf:
            req = req.model_copy(update={"conf": {**req.conf, CONF_BATCH_ID: str(uuid.uuid4())}})
        body = req.model_dump(mode="json", by_alias=True, exclude_none=True)
        if resource_file is None:
            return await self._model(Batch, "POST", "/api/v1/batches", json_body=body)
        path = Path(resource_file)
        if not await asyncio.to_thread(path.is_file):
            raise ClientError(f"resource file {path} does not exist or is not a file")

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("batchRequest", json.dumps(body), content_type="application/json")
            data.add_field("resourceFile", path.open("rb"), filename=path.name,
                           content_type="application/octet-stream")
            return data

        return await self._model(Batch, "POST", "/api/v1/batches", form=form)

    async def batches(
        self, *, batch_type: str | None = None, state: str | Iterable[str] | None = None,
        user: str | None = None, name: str | None = None, create_time: int | None = None,
        end_time: int | None = None, key: str | None = None, sort: str | None = None,
        attempts_of: str | None = None, offset: int = 0, size: int = 100, desc: bool = False,
    ) -> BatchList:
        """One page of batches; `total` counts every match. `state` is one state or several."""
        params: dict[str, str] = {"from": str(offset), "size": str(size), "desc": _bool(desc)}
        if batch_type:
            params["batchType"] = batch_type
        if state:
            params["batchState"] = state if isinstance(state, str) else ",".join(state)
        for name_, value in (("batchUser", user), ("batchName", name), ("key", key), ("sort", sort),
                             ("attemptsOf", attempts_of)):
            if value:
                params[name_] = value
        if create_time:
            params["createTime"] = str(create_time)
        if end_time:
            params["endTime"] = str(end_time)
        return await self._model(BatchList, "GET", "/api/v1/batches", params=params)

    async def iter_batches(self, *, page_size: int = 500, **filters: Any) -> AsyncIterator[Batch]:
        """Every matching batch, page by page."""
        offset = 0
        while True:
            page = await self.batches(offset=offset, size=page_size, **filters)
            for batch in page.batches:
                yield batch
            offset += len(page.batches)
            if not page.batches or offset >= page.total:
                return

    async def batch(self, batch_id: str) -> Batch:
        return await self._model(Batch, "GET", f"/api/v1/batches/{batch_id}")

    async def engines(self) -> EngineList:
        """The gateway's engines and the batch types it accepts."""
        return await self._model(EngineList, "GET", "/api/v1/engines")

    async def kill(self, batch_id: str) -> CloseBatchResponse:
        return await self._model(CloseBatchResponse, "DELETE", f"/api/v1/batches/{batch_id}")

    async def log(self, batch_id: str, start: int = 0, size: int = 100) -> LocalLog:
        """Lines start..start+size-1 (0-based); start=-1 gives the last `size` lines."""
        return await self._model(LocalLog, "GET", f"/api/v1/batches/{batch_id}/localLog",
                                 params={"from": str(start), "size": str(size)})

    def follow_log(self, batch_id: str, start: int = 0) -> LogFollow:
        """Iterate over the log as it grows, until the batch ends (`follow.batch` is then its final state)."""
        return LogFollow(self, batch_id, start)

    def batch_events(self, batch_ids: Iterable[str] | None = None, *, snapshot: bool = True) -> BatchEvents:
        """Changes of batches as they happen, endless: first a snapshot (the batches named, or the caller's
        queued, paused and running ones; skipped with snapshot=False), then one change per event."""
        return BatchEvents(self, list(batch_ids) if batch_ids is not None else None, snapshot=snapshot)

    async def wait(self, batch_id: str, *, timeout: float | None = None,
                   on_change: Callable[[Batch], None] | None = None) -> Batch:
        """Wait until the batch is terminal; `on_change` sees each state it passes through, as it happens
        (the gateway's batch events, not a poll)."""
        async def follow() -> Batch:
            seen: str | None = None
            events = self.batch_events([batch_id])
            try:
                async for change in events:
                    for batch in change.batches:
                        if batch.id != batch_id:
                            continue
                        if on_change is not None and batch.state != seen:
                            on_change(batch)
                        seen = batch.state
                        if batch.state in TERMINAL_STATES:
                            return batch
            finally:
                await events.aclose()
            raise ClientError(f"the event stream of batch {batch_id} ended before the batch did")

        try:
            return await asyncio.wait_for(follow(), timeout)
        except TimeoutError:
            current = await self.batch(batch_id)
            raise TimeoutError(f"batch {batch_id} is still {current.state} after {timeout}s") from None

    # --- the summary views -------------------------------------------------------------------

    async def batch_stats(self, *, start: int | None = None, stop: int | None = None,
                          bucket: str | int | None = None) -> BatchStats:
        """Batch counts per time bucket (epoch ms; bucket in ms or like "5m", "1h"), of what you may see."""
        params = {k: str(v) for k, v in (("from", start), ("to", stop), ("bucket", bucket)) if v is not None}
        return await self._model(BatchStats, "GET", "/api/v1/stats/batches", params=params)

    async def limits(self) -> LimitsView:
        """Batches running and queued against the global, per-type and per-user limits."""
        return await self._model(LimitsView, "GET", "/api/v1/limits")

    # --- job control (docs/job-control.md) ----------------------------------------------------

    async def pause(self, batch_id: str) -> Batch:
        return await self._model(Batch, "POST", f"/api/v1/batches/{batch_id}/pause")

    async def resume(self, batch_id: str) -> Batch:
        return await self._model(Batch, "POST", f"/api/v1/batches/{batch_id}/resume")

    async def restart(self, batch_id: str) -> Batch:
        """Run a terminal batch again as a new batch; returns the new one."""
        return await self._model(Batch, "POST", f"/api/v1/batches/{batch_id}/restart")

    async def drop(self, batch_id: str) -> DropResponse:
        return await self._model(DropResponse, "DELETE", f"/api/v1/batches/{batch_id}/drop")

    async def details(self, batch_id: str) -> BatchDetails:
        return await self._model(BatchDetails, "GET", f"/api/v1/batches/{batch_id}/details")

    async def bulk(self, action: str, *, ids: Iterable[str] | None = None,
                   filter: Mapping[str, Any] | None = None) -> BulkResponse:
        """PAUSE, RESUME, CANCEL, RESTART or DROP many batches, by ids, by list filters, or both."""
        body: dict[str, Any] = {"action": action.upper()}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = dict(filter)
        return await self._model(BulkResponse, "PUT", "/api/v1/batches/status", json_body=body)
