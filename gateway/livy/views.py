"""LivyViews: the Livy batch API's answers (docs/livy.md). It asks the BatchService, as the Kyuubi API's
views do, and turns batch records into Livy's wire models (gateway/livy/models.py), so that the handlers
see no store record. A Livy batch is an ordinary SPARK or PYSPARK batch; its integer id is the batch row's
sequence number."""

from __future__ import annotations

from gateway.batches.service import BatchService
from gateway.contract.batches import BatchRequest, BatchState
from gateway.livy.models import (
    BATCH_LOG_LINES,
    LIVY_STATES,
    LivyAppInfo,
    LivyBatch,
    LivyBatchList,
    LivyBatchLog,
    LivyBatchState,
    LivyMessage,
    LivyState,
)
from gateway.security.auth import Principal
from gateway.store import BatchRecord, ListFilter

LIVY_TYPES = ("SPARK", "PYSPARK")
MAX_LOG = 100_000  # lines in one log response, even when a client asks for all (size < 0)


def livy_state(record: BatchRecord) -> LivyState:
    if record.state is BatchState.PAUSED:  # held: in the queue, or an application that was running
        return "running" if record.app_start_time else "starting"
    return LIVY_STATES.get(record.state, "starting")


def livy_batch(record: BatchRecord, log: list[str]) -> LivyBatch:
    """A batch as Livy shows it, with the last lines of its log."""
    return LivyBatch(
        id=record.seq, name=record.name, owner=record.real_user,
        proxy_user=record.batch_user if record.batch_user != record.real_user else None,
        state=livy_state(record), app_id=record.app_id,
        app_info=LivyAppInfo(driver_log_url=None, spark_ui_url=record.app_url), log=log,
    )


class LivyViews:
    def __init__(self, batches: BatchService) -> None:
        self._batches = batches

    async def submit(self, who: Principal, request: BatchRequest) -> LivyBatch:
        """The batch admitted (through the one admission path), as Livy answers a create: no log yet."""
        record, _ = await self._batches.submit(who, request)
        return livy_batch(record, [])

    async def list_batches(self, who: Principal, offset: int, size: int) -> LivyBatchList:
        """The caller's Spark and PySpark batches, `size` of them from `offset` (a size of 0: only the total)."""
        total, records = await self._batches.list_batches(
            who, ListFilter(batch_types=LIVY_TYPES, offset=offset, size=max(size, 1)))
        records = records[:size]
        tails = await self._batches.log_tails(records, BATCH_LOG_LINES)
        sessions = [livy_batch(r, tails.get(r.id, [])) for r in records]
        return LivyBatchList(from_=offset, total=total, sessions=sessions)

    async def get(self, who: Principal, seq: int) -> LivyBatch:
        record = await self._batches.get_by_seq(who, seq)
        tails = await self._batches.log_tails([record], BATCH_LOG_LINES)
        return livy_batch(record, tails.get(record.id, []))

    async def state(self, who: Principal, seq: int) -> LivyBatchState:
        record = await self._batches.get_by_seq(who, seq)
        return LivyBatchState(id=record.seq, state=livy_state(record))

    async def log(self, who: Principal, seq: int, start: int, size: int) -> LivyBatchLog:
        """Livy's paging: a negative size is all lines; a negative start is the tail; past the end is an
        empty page, not an error."""
        record = await self._batches.get_by_seq(who, seq)
        total = record.log_lines
        if size < 0:
            size = total if start < 0 else max(total - start, 0)
        if start < 0:
            start = max(total - size, 0)
        size = min(size, MAX_LOG)
        lines = await self._batches.read_log(who, str(record.id), start, size) if start < total and size else []
        return LivyBatchLog(id=record.seq, from_=start, total=total, log=lines)

    async def delete(self, who: Principal, seq: int) -> LivyMessage:
        record = await self._batches.get_by_seq(who, seq)
        await self._batches.kill(who, str(record.id))
        return LivyMessage(msg="deleted")
