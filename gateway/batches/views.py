"""BatchViews: the Kyuubi batch API's answers (/api/v1/batches). It asks the BatchService (admission,
permissions, logs) and returns the contract's models, so that the handlers see no store record. The other
dialects (Livy, Kylin, Datameer, Azkaban) translate batches into their own shapes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from gateway.batches.service import BatchService
from gateway.batches.uploads import Upload
from gateway.contract.batches import Batch, BatchList, BatchRequest, LocalLog
from gateway.security.auth import Principal
from gateway.store import ListFilter

DUPLICATED = "kyuubi.batch.duplicated"


class BatchViews:
    def __init__(self, batches: BatchService) -> None:
        self._batches = batches

    async def submit(self, who: Principal, request: BatchRequest, upload: Upload | None = None,
                     extras: dict[str, Upload] | None = None) -> Batch:
        """The batch admitted (or, for a known id, the one that exists, marked as Kyuubi marks a duplicate)."""
        record, duplicated = await self._batches.submit(who, request, upload, extras)
        batch = record.to_api()
        if duplicated:
            batch.batch_info[DUPLICATED] = "true"
        return batch

    async def list_batches(self, who: Principal, flt: ListFilter) -> BatchList:
        total, records = await self._batches.list_batches(who, flt)
        return BatchList(from_=flt.offset, total=total, batches=[r.to_api() for r in records])

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
