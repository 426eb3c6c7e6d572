"""BatchRepository: the batches' SQL (batches.sql): the admission step's one write, reads, the lifecycle an
owner writes (launching, launched, app facts, finished), kills, retention, the counts and the queue bell.
The list is in batch_list.py, claims in claims.py, job control in control.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateway.contract.batches import BatchState
from gateway.store.batch_list import ListFilter, list_page
from gateway.store.database import Database
from gateway.store.records import BatchRecord, NewBatch, batch_record


async def write_batch(conn: asyncpg.Connection, new: NewBatch) -> asyncpg.Record | None:
    """The batch row with its audit row, and its SLAs with their deadlines, on a connection whose
    transaction the caller holds (several statements only when the batch has SLAs or was refused).
    None: a batch with this id exists, and nothing was written. The admission step's one write: the SLA
    rows use the SLAs' named queries, so that they commit with the batch."""
    q = {**Database.queries("batches.sql"), **Database.queries("slas.sql")}
    if new.refusal is None:
        row: asyncpg.Record | None = await conn.fetchrow(
            q["insert_batch"], new.id, new.batch_type, new.user, new.real_user, new.name, new.resource,
            new.class_name, new.conf, new.args, new.priority, new.project, new.info, new.source_ip)
    else:
        row = await conn.fetchrow(
            q["insert_refused_batch"], new.id, new.batch_type, new.user, new.real_user, new.name, new.resource,
            new.class_name, new.conf, new.args, new.priority, new.project, new.info, new.source_ip,
            new.refusal, [new.note or new.refusal])
    if row is None:
        return None
    for sla in new.slas if new.refusal is None else ():
        created = await conn.fetchval(
            q["insert_sla"], sla.id, new.user, None, None, new.id, None, sla.rule, sla.duration_ms, sla.actions,
            sla.webhook, sla.emails, None)
        if created is not None:
            await conn.execute(q["insert_batch_deadline"], sla.id, str(new.id), row["create_time"],
                               row["create_time"] + sla.duration_ms)
    return row


class BatchRepository:
    """Methods return records or plain values, never asyncpg rows."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("batches.sql")

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._db.fetch(self._q[query], *args)

    async def _one(self, query: str, *args: Any) -> BatchRecord | None:
        row = await self._db.fetchrow(self._q[query], *args)
        return batch_record(row) if row else None

    async def insert_new_batch(
        self, new: NewBatch, files: list[tuple[str, AsyncIterator[bytes]]] | None = None
    ) -> tuple[BatchRecord, bool]:
        """Write an admitted batch with its audit row, its SLA rows and its files, in one transaction.
        Returns (batch, created): False for a known id (an idempotent submit), and then nothing is written."""

        async def op(conn: asyncpg.Connection) -> tuple[BatchRecord, bool]:
            if not files and not new.slas and new.copy_files_from is None:
                row = await write_batch(conn, new)  # one statement: no transaction needed
            else:
                async with conn.transaction():
                    row = await write_batch(conn, new)
                    if row is not None:
                        for name, chunks in files or []:
                            number = 0
                            async for chunk in chunks:
                                await conn.execute(self._q["insert_file_chunk"], new.id, name, number, chunk)
                                number += 1
                        if new.copy_files_from is not None:
                            await conn.execute(self._q["copy_files"], new.copy_files_from, new.id)
            if row is not None:
                return batch_record(row), True
            existing = await conn.fetchrow(self._q["get_batch"], new.id)
            assert existing is not None  # a conflicting row exists, and batches are not deleted here
            return batch_record(existing), False

        return await self._db.run(op)

    async def file_chunks(self, batch_id: uuid.UUID, name: str) -> list[bytes]:
        rows = await self._fetch("file_chunks", batch_id, name)
        return [r["data"] for r in rows]

    async def get_batch(self, batch_id: uuid.UUID) -> BatchRecord | None:
        async def op(conn: asyncpg.Connection) -> BatchRecord | None:
            row = await conn.fetchrow(self._q["get_batch"], batch_id)
            return batch_record(row) if row else None

        return await self._db.run(op)

    async def get_batch_by_seq(self, seq: int) -> BatchRecord | None:
        """A batch by its sequence number (the Livy API's integer id)."""
        return await self._one("get_batch_by_seq", seq)

    async def count_batches_by_state(self) -> dict[tuple[str, str], int]:
        """(batch type, state) -> number of batches, for the metrics."""
        return {(r["batch_type"], r["state"]): r["n"] for r in await self._fetch("count_by_state")}

    async def compact_counts(self) -> None:
        """Fold the appended +n/-n rows of batch_counts and batch_time_counts (see schema.sql)."""
        await self._db.run(lambda conn: conn.execute(self._q["compact_counts"]))
        await self._db.run(lambda conn: conn.execute(self._q["compact_time_counts"]))

    async def list_batches(self, flt: ListFilter) -> tuple[int, list[BatchRecord]]:
        """GET /batches: the total that match and one page of them (gateway/store/batch_list.py)."""
        return await self._db.run(lambda conn: list_page(conn, self._q, flt))

    async def set_launching(
        self, batch_id: uuid.UUID, instance: str, handle: dict[str, Any], note: str
    ) -> BatchRecord | None:
        """The launch intent, with `note` appended to the log (None: not the owner, nothing written)."""
        return await self._one("set_launching", batch_id, instance, handle, note)

    async def set_launched(
        self, batch_id: uuid.UUID, instance: str, handle: dict[str, Any]
    ) -> BatchRecord | None:
        return await self._one("set_launched", batch_id, instance, handle)

    async def update_app(
        self,
        batch_id: uuid.UUID,
        instance: str,
        *,
        app_id: str | None = None,
        app_url: str | None = None,
        app_state: str | None = None,
        running: bool = False,
        diagnostic: str | None = None,
        handle: dict[str, Any] | None = None,
    ) -> BatchRecord | None:
        return await self._one(
            "update_app", batch_id, instance, app_id, app_url, app_state, running, diagnostic, handle
        )

    async def finish_batch(
        self,
        batch_id: uuid.UUID,
        instance: str,
        *,
        state: BatchState,
        app_state: str | None,
        diagnostic: str | None,
        info: dict[str, Any] | None = None,
        note: str,
    ) -> BatchRecord | None:
        """The terminal state, with `note` appended to the log (None: not the owner, nothing written)."""
        return await self._one(
            "finish_batch", batch_id, instance, state, app_state, diagnostic, info or {}, note
        )

    async def cancel_queued(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._one("cancel_queued", batch_id)

    async def request_kill(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._one("request_kill", batch_id)

    async def owned_active(self, instance: str, page: int = 200) -> AsyncIterator[list[BatchRecord]]:
        """Pages of this instance's active batches, so that recovery never loads thousands at once."""
        after = uuid.UUID(int=0)
        while True:
            rows = await self._fetch("owned_active", instance, after, page)
            if not rows:
                return
            batch = [batch_record(r) for r in rows]
            yield batch
            after = batch[-1].id

    async def kill_requested_owned(self, instance: str) -> list[uuid.UUID]:
        rows = await self._fetch("kill_requested_owned", instance)
        return [r["id"] for r in rows]

    async def purge_terminal(self, before_ms: int, limit: int) -> int:
        """Delete up to `limit` terminal batches that ended before `before_ms` (their logs are purged
        first, by the log repository); how many went."""
        return len(await self._fetch("purge_terminal", before_ms, limit))

    async def ring_queue(self) -> None:
        await self._db.run(lambda conn: conn.execute(self._q["ring_queue"]))
