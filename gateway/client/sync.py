"""Client: the blocking twin of AsyncClient. It runs an AsyncClient on an event loop of its own, in a
background thread, so it works the same in scripts, in threads and inside programs that run a loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from gateway.client.aio import DEFAULT_URL, AsyncClient, RetryHook
from gateway.client.streams import BatchChange, LogFollow, LogLine, RunEvent, RunEvents
from gateway.client.workflows import SyncWorkflows
from gateway.contract.batches import (
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
from gateway.contract.jobs import Run
from gateway.contract.overview import BatchStats, LimitsView
from gateway.contract.sessions import SessionInfo, SessionRevoked, SessionToken

T = TypeVar("T")
_DONE = object()
_BACKLOG = 1000


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="batchgate-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # Ctrl-C stops the request on the loop too
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SyncStream(Generic[T]):
    """A blocking iterator over an async event stream running on the client's loop. Closing it (or
    leaving a `with` block, or Ctrl-C in the loop) stops following; the batch or run goes on."""

    def __init__(self, loop: _Loop, stream: AsyncIterator[T], closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loop = loop
        self._stream = stream
        self._closer = closer
        self._queue: queue.Queue[object] = queue.Queue()
        self._task: concurrent.futures.Future[None] | None = None
        self._space = asyncio.Event()

    async def _pump(self) -> None:
        try:
            async for item in self._stream:
                if self._queue.qsize() >= _BACKLOG:
                    # A slow reader slows the stream down: wait until it has taken half the backlog.
                    self._space.clear()
                    await self._space.wait()
                self._queue.put(item)
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            self._queue.put(exc)
            raise
        finally:
            await self._closer()
        self._queue.put(_DONE)

    def __iter__(self) -> Iterator[T]:
        if self._task is None:
            self._task = asyncio.run_coroutine_threadsafe(self._pump(), self._loop.loop)
        finished = False
        try:
            while True:
                item = self._queue.get()
                if self._queue.qsize() == _BACKLOG // 2:
                    self._loop.loop.call_soon_threadsafe(self._space.set)
                if item is _DONE or isinstance(item, asyncio.CancelledError):
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item  # type: ignore[misc]
        finally:
            if not finished:
                self.close()  # Ctrl-C or a break: stop following

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncLogFollow(SyncStream[LogLine]):
    """Lines of a batch log until the batch ends; then `batch` is its final state."""

    def __init__(self, loop: _Loop, follow: LogFollow) -> None:
        super().__init__(loop, follow, follow.aclose)
        self._follow = follow

    @property
    def batch(self) -> Batch | None:
        return self._follow.batch

    @property
    def position(self) -> int:
        return self._follow.position


class SyncRunEvents(SyncStream[RunEvent]):
    """Changes of a run and its nodes until the run ends; then `run` is its final state."""

    def __init__(self, loop: _Loop, events: RunEvents) -> None:
        super().__init__(loop, events, events.aclose)
        self._events = events

    @property
    def run(self) -> Run | None:
        return self._events.run


class Client(SyncWorkflows):
    """A blocking client for the whole API; see AsyncClient for what each call does."""

    aio: AsyncClient

    def __init__(self, url: str = DEFAULT_URL, *, user: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 60.0, retries: int = 5,
                 max_retry_wait: float = 30.0, on_retry: RetryHook | None = None) -> None:
        self._loop = _Loop()
        self.aio = AsyncClient(url, user=user, password=password, token=token, timeout=timeout,
                               retries=retries, max_retry_wait=max_retry_wait, on_retry=on_retry)

    @property
    def url(self) -> str:
        return self.aio.url

    @property
    def token(self) -> str | None:
        return self.aio.token

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self.aio.close())
            self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    # --- sessions --------------------------------------------------------------------------

    def login(self, expires_in: int | None = None, *, use: bool = True) -> SessionToken:
        return self._run(self.aio.login(expires_in, use=use))

    def session(self) -> SessionInfo:
        return self._run(self.aio.session())

    def logout(self) -> SessionRevoked:
        return self._run(self.aio.logout())

    # --- batches ---------------------------------------------------------------------------

    def submit(self, request: BatchRequest | Mapping[str, Any], *, resource_file: str | Path | None = None) -> Batch:
        return self._run(self.aio.submit(request, resource_file=resource_file))

    def batches(
        self, *, batch_type: str | None = None, state: str | Iterable[str] | None = None,
        user: str | None = None, name: str | None = None, create_time: int | None = None,
        end_time: int | None = None, key: str | None = None, sort: str | None = None,
        attempts_of: str | None = None, offset: int = 0, size: int = 100, desc: bool = False,
    ) -> BatchList:
        return self._run(self.aio.batches(
            batch_type=batch_type, state=state, user=user, name=name, create_time=create_time,
            end_time=end_time, key=key, sort=sort, attempts_of=attempts_of, offset=offset, size=size, desc=desc,
        ))

    def iter_batches(self, *, page_size: int = 500, **filters: Any) -> Iterator[Batch]:
        offset = 0
        while True:
            page = self.batches(offset=offset, size=page_size, **filters)
            yield from page.batches
            offset += len(page.batches)
            if not page.batches or offset >= page.total:
                return

    def batch(self, batch_id: str) -> Batch:
        return self._run(self.aio.batch(batch_id))

    def engines(self) -> EngineList:
        """The gateway's engines and the batch types it accepts."""
        return self._run(self.aio.engines())

    def kill(self, batch_id: str) -> CloseBatchResponse:
        return self._run(self.aio.kill(batch_id))

    def log(self, batch_id: str, start: int = 0, size: int = 100) -> LocalLog:
        return self._run(self.aio.log(batch_id, start, size))

    def follow_log(self, batch_id: str, start: int = 0) -> SyncLogFollow:
        return SyncLogFollow(self._loop, self.aio.follow_log(batch_id, start))

    def batch_events(self, batch_ids: Iterable[str] | None = None, *,
                     snapshot: bool = True) -> SyncStream[BatchChange]:
        events = self.aio.batch_events(batch_ids, snapshot=snapshot)
        return SyncStream(self._loop, events, events.aclose)

    def run_events(self, run_id: str) -> SyncRunEvents:
        return SyncRunEvents(self._loop, self.aio.run_events(run_id))

    def wait(self, batch_id: str, *, timeout: float | None = None,
             on_change: Callable[[Batch], None] | None = None) -> Batch:
        return self._run(self.aio.wait(batch_id, timeout=timeout, on_change=on_change))

    # --- the summary views -------------------------------------------------------------------

    def batch_stats(self, *, start: int | None = None, stop: int | None = None,
                    bucket: str | int | None = None) -> BatchStats:
        return self._run(self.aio.batch_stats(start=start, stop=stop, bucket=bucket))

    def limits(self) -> LimitsView:
        return self._run(self.aio.limits())

    # --- job control -------------------------------------------------------------------------

    def pause(self, batch_id: str) -> Batch:
        return self._run(self.aio.pause(batch_id))

    def resume(self, batch_id: str) -> Batch:
        return self._run(self.aio.resume(batch_id))

    def restart(self, batch_id: str) -> Batch:
        return self._run(self.aio.restart(batch_id))

    def drop(self, batch_id: str) -> DropResponse:
        return self._run(self.aio.drop(batch_id))

    def details(self, batch_id: str) -> BatchDetails:
        return self._run(self.aio.details(batch_id))

    def bulk(self, action: str, *, ids: Iterable[str] | None = None,
             filter: Mapping[str, Any] | None = None) -> BulkResponse:
        return self._run(self.aio.bulk(action, ids=ids, filter=filter))
