"""BatchViews: the Kyuubi batch API's answers (/api/v1/batches). It asks the BatchService (admission,
permissions, logs) and BatchControl (pause, resume, restart, drop, bulk actions, details) and returns the
contract's models, so that the handlers see no store record; `list_filter` turns the wire's list query (the
contract's BatchQuery) into the store's filter. The other dialects translate batches into their own shapes in
their own views (gateway/livy/views.py, gateway/kylin/views.py, …)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from gateway.batches.control import BatchControl
from gateway.batches.service import BatchService
from gateway.batches.uploads import Upload
from gateway.contract.batches import (
    Batch,
    BatchDetails,
    BatchList,
    BatchQuery,
    BatchRequest,
    BulkFailure,
    BulkResponse,
    DropResponse,
    LocalLog,
    Step,
)
from gateway.security.auth import Principal
from gateway.store import ListFilter

DUPLICATED = "kyuubi.batch.duplicated"


def list_filter(query: BatchQuery) -> ListFilter:
    """The store's filter for the wire's list query (its sort key is the store's to map onto a column)."""
    return ListFilter(
        batch_type=query.batch_type, states=tuple(s.value for s in query.states), user=query.user,
        name=query.name, key=query.key, project=query.project, attempts_of=query.attempts_of,
        create_time=query.create_time, end_time=query.end_time, offset=query.offset, size=query.size,
        sort=query.sort, desc=query.desc,
    )


class BatchViews:
    def __init__(self, batches: BatchService, control: BatchControl) -> None:
        self._batches = batches
        self._control = control

    async def submit(self, who: Principal, request: BatchRequest, upload: Upload | None = None,
                     extras: dict[str, Upload] | None = None) -> Batch:
        """The batch admitted (or, for a known id, the one that exists, marked as Kyuubi marks a duplicate)."""
        record, duplicated = await self._batches.submit(who, request, upload, extras)
        batch = record.to_api()
        if duplicated:
            batch.batch_info[DUPLICATED] = "true"
        return batch

    async def list_batches(self, who: Principal, query: BatchQuery) -> BatchList:
        total, records = await self._batches.list_batches(who, list_filter(query))
        return BatchList(from_=query.offset, total=total, batches=[r.to_api() for r in records])

    async def count(self, who: Principal, query: BatchQuery) -> int:
        """How many batches match the query (Kyuubi's admin batch count): admins only."""
        return await self._batches.count(who, list_filter(query))

    async def bulk(self, who: Principal, action: str, ids: list[str], query: BatchQuery | None) -> BulkResponse:
        """One action on batches by id, or on those the query matches, each authorized on its own."""
        result = await self._control.bulk(who, action, ids, list_filter(query) if query is not None else None)
        return BulkResponse(
            matched=result.matched, succeeded=result.succeeded,
            failed=[BulkFailure(**f) for f in result.failed], failures_truncated=result.failures_truncated,
        )

    async def pause(self, who: Principal, batch_id: str) -> Batch:
        return (await self._control.pause(who, batch_id)).to_api()

    async def resume(self, who: Principal, batch_id: str) -> Batch:
        return (await self._control.resume(who, batch_id)).to_api()

    async def restart(self, who: Principal, batch_id: str) -> Batch:
        """The new attempt."""
        return (await self._control.restart(who, batch_id)).to_api()

    async def drop(self, who: Principal, batch_id: str) -> DropResponse:
        await self._control.drop(who, batch_id)
        return DropResponse(success=True, msg=f"batch {batch_id} dropped")

    async def details(self, who: Principal, batch_id: str) -> BatchDetails:
        """The batch with its lifecycle and engine steps, its counters and the attempts the caller may read."""
        batch, steps, counters, attempts = await self._control.details(who, batch_id)
        return BatchDetails(batch=batch.to_api(), steps=[Step.model_validate(s) for s in steps], counters=counters,
                            attempts=[a.to_api() for a in attempts])

    async def get(self, who: Principal, batch_id: str) -> Batch:
        return (await self._batches.get(who, batch_id)).to_api()

    async def local_log(self, who: Principal, batch_id: str, start: int, size: int) -> LocalLog:
        """Lines [start, start + size) of the log; a start of -1 (Kyuubi's) means its last `size` lines."""
        if start < 0:
            record = await self._batches.get(who, batch_id)
            start = max(record.log_lines - size, 0)
        rows = await self._batches.read_log(who, batch_id, start, size)
        return LocalLog(log_row_set=rows, row_count=len(rows))

    async def follow_log(self, who: Principal, batch_id: str,
                         start: int) -> tuple[uuid.UUID, AsyncIterator[tuple[int, list[str]]]]:
        """The batch's id and its log from line `start` on, as it grows, until the batch ends (read permission
        is checked now, before any stream opens)."""
        record, lines = await self._batches.follow_log(who, batch_id, start)
        return record.id, lines

    async def current(self, batch_id: uuid.UUID) -> Batch | None:
        """The batch as it is now (after a follow ends), None if it is gone."""
        record = await self._batches.current(batch_id)
        return record.to_api() if record is not None else None
