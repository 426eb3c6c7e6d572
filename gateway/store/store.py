"""Store: the SQL of batches, on the Database (the repositories of logs, the audit log, sessions,
instances, jobs, schedules and projects are beside it)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.contract.batches import BatchState
from gateway.store.database import Database, T, Where
from gateway.store.records import BatchRecord, NewBatch


@dataclass(frozen=True)
class ListFilter:
    """Filters of GET /batches, already validated."""

    batch_type: str | None = None
    states: tuple[str, ...] = ()
    user: str | None = None
    name: str | None = None
    create_time: int = 0
    end_time: int = 0
    offset: int = 0
    size: int = 100
    desc: bool = False
    sort: str = "createTime"
    key: str | None = None
    ids: tuple[uuid.UUID, ...] = ()
    batch_types: tuple[str, ...] = ()  # any of these types (the Livy API lists SPARK and PYSPARK)
    attempts_of: str | None = None
    created_before: int = 0
    project: str | None = None
    # A non-admin's view: their own batches (as effective or real user) and their projects' batches.
    reader: str | None = None
    reader_projects: tuple[str, ...] = ()
    # Keyset position (create_time, id): rows strictly after it, for walking a changing match set.
    after: tuple[int, uuid.UUID] | None = None


def _counted_only(flt: ListFilter) -> bool:
    """Whether batch_counts can answer the total: filters by user, type and state only."""
    return flt == ListFilter(batch_type=flt.batch_type, batch_types=flt.batch_types, states=flt.states,
                             user=flt.user, offset=flt.offset, size=flt.size, desc=flt.desc, sort=flt.sort)


# An unfiltered list further than this from both ends is located through batch_time_counts.
WALK_LIMIT = 5_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

SORT_COLUMNS = {"createTime": "create_time", "endTime": "end_time", "name": "name", "duration": "duration"}


def _key_clauses(key: str) -> tuple[str, list[Any]]:
    """`key` matches an id prefix, or words of the name, the last by prefix (case-insensitive, index-served)."""
    hexchars = key.replace("-", "").lower()
    params: list[Any] = []
    parts: list[str] = []
    if hexchars and len(hexchars) <= 32 and all(c in "0123456789abcdef" for c in hexchars):
        low = uuid.UUID(hexchars.ljust(32, "0"))
        high = uuid.UUID(hexchars.ljust(32, "f"))
        params += [low, high]
        parts.append("(id between {0} and {1})")
    words = [w for w in re.split(r"[^0-9A-Za-z]+", key.lower()) if w]
    if words:
        # Whole words, and the last one by prefix (it may still be being typed): a prefix term cannot
        # use GIN's skipping, so `job:* & 123:*` would collect every `job…` row before intersecting.
        params.append(" & ".join([*words[:-1], f"{words[-1]}:*"]))
        slot = "{" + str(len(params) - 1) + "}"
        parts.append(
            "to_tsvector('simple', regexp_replace(coalesce(name, ''), '[^0-9A-Za-z]+', ' ', 'g'))"
            f" @@ to_tsquery('simple', {slot})"
        )
    if not parts:
        return "false", []
    return "(" + " or ".join(parts) + ")", params


@dataclass
class ClaimCandidate:
    id: uuid.UUID
    user: str
    batch_type: str


@dataclass
class ActiveCounts:
    total: int = 0
    by_user: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)


# The named queries of the subject this class still holds (batches).
STORE_FILES = ("batches.sql",)


async def write_batch(conn: asyncpg.Connection, new: NewBatch) -> asyncpg.Record | None:
    """The batch row with its audit row, and its SLAs with their deadlines, on a connection whose
    transaction the caller holds (several statements only when the batch has SLAs or was refused).
    None: a batch with this id exists, and nothing was written. The admission step's one write: the SLA
    rows use the schedules' named queries, so that they commit with the batch."""
    q = {**Database.queries("batches.sql"), **Database.queries("schedules.sql")}
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


def _record(row: asyncpg.Record) -> BatchRecord:
    return BatchRecord.model_validate(dict(row))


class ClaimSession:
    """One claiming transaction, holding the cross-instance claim lock."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._q = Database.queries("batches.sql")

    async def active_counts(self) -> ActiveCounts:
        counts = ActiveCounts()
        for row in await self._conn.fetch(self._q["active_counts"]):
            counts.total += row["n"]
            counts.by_user[row["batch_user"]] = counts.by_user.get(row["batch_user"], 0) + row["n"]
            counts.by_type[row["batch_type"]] = counts.by_type.get(row["batch_type"], 0) + row["n"]
        return counts

    async def candidates(self, limit: int) -> list[ClaimCandidate]:
        rows = await self._conn.fetch(self._q["claim_candidates"], limit)
        return [ClaimCandidate(r["id"], r["batch_user"], r["batch_type"]) for r in rows]

    async def claim(self, ids: list[uuid.UUID], instance: str) -> list[BatchRecord]:
        if not ids:
            return []
        return [_record(r) for r in await self._conn.fetch(self._q["claim_batches"], ids, instance)]

    async def set_wait_reason(self, ids: list[uuid.UUID], reason: str) -> list[uuid.UUID]:
        """Returns the ids whose reason changed, so that the caller logs it once per batch."""
        if not ids:
            return []
        return [r["id"] for r in await self._conn.fetch(self._q["set_wait_reason"], ids, reason)]


class Store:
    """All database access. Methods return models or plain values, never asyncpg records."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = {name: sql for file in STORE_FILES for name, sql in Database.queries(file).items()}

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> Store:
        """A Store on a Database of its own (tests and benchmarks; the app shares one Database)."""
        return cls(await Database.connect(dsn, min_size=min_size, max_size=max_size))

    @property
    def db(self) -> Database:
        return self._db

    @property
    def pool(self) -> asyncpg.Pool:
        return self._db.pool

    async def close(self) -> None:
        await self._db.close()

    async def _run(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await self._db.run(op)

    # --- batches -------------------------------------------------------------------------

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
                return _record(row), True
            existing = await conn.fetchrow(self._q["get_batch"], new.id)
            assert existing is not None  # a conflicting row exists, and batches are not deleted here
            return _record(existing), False

        return await self._run(op)

    async def file_chunks(self, batch_id: uuid.UUID, name: str) -> list[bytes]:
        rows = await self._fetch("file_chunks", batch_id, name)
        return [r["data"] for r in rows]

    async def get_batch(self, batch_id: uuid.UUID) -> BatchRecord | None:
        async def op(conn: asyncpg.Connection) -> BatchRecord | None:
            row = await conn.fetchrow(self._q["get_batch"], batch_id)
            return _record(row) if row else None

        return await self._run(op)

    async def get_batch_by_seq(self, seq: int) -> BatchRecord | None:
        """A batch by its sequence number (the Livy API's integer id)."""
        return await self._one("get_batch_by_seq", seq)

    async def count_batches_by_state(self) -> dict[tuple[str, str], int]:
        """(batch type, state) -> number of batches, for the metrics."""
        return {(r["batch_type"], r["state"]): r["n"] for r in await self._fetch("count_by_state")}

    async def compact_counts(self) -> None:
        """Fold the appended +n/-n rows of batch_counts and batch_time_counts (see schema.sql)."""
        await self._run(lambda conn: conn.execute(self._q["compact_counts"]))
        await self._run(lambda conn: conn.execute(self._q["compact_time_counts"]))

    async def list_batches(self, flt: ListFilter) -> tuple[int, list[BatchRecord]]:
        w = Where()
        if flt.batch_type:
            w.add("batch_type = {0}", flt.batch_type)
        if flt.batch_types:
            w.add("batch_type = any({0}::text[])", list(flt.batch_types))
        if flt.states:
            w.add("state = any({0}::text[])", list(flt.states))
        if flt.user:
            w.add("batch_user = {0}", flt.user)
        if flt.name:
            w.add("name = {0}", flt.name)
        if flt.create_time > 0:
            w.add("create_time >= {0}", flt.create_time)
        if flt.end_time > 0:
            # A batch ends after it is created: the second bound narrows the create_time index range too.
            w.add("end_time > 0 and end_time <= {0} and create_time <= {0}", flt.end_time)
        if flt.project:
            w.add("project = {0}", flt.project)
        if flt.reader is not None:
            w.add("(batch_user = {0} or real_user = {0} or project = any({1}::text[]))",
                  flt.reader, list(flt.reader_projects))
        if flt.created_before > 0:
            w.add("create_time < {0}", flt.created_before)
        if flt.ids:
            w.add("id = any({0}::uuid[])", list(flt.ids))
        if flt.attempts_of:
            w.add("(id = ({0}::text)::uuid or batch_info ->> 'restartRoot' = {0}::text)", flt.attempts_of)
        if flt.key:
            fragment, values = _key_clauses(flt.key)
            w.add(fragment, *values)
        if flt.after is not None:
            w.add("(create_time, id) > ({0}, {1})", *flt.after)
        clause, params = w.clause, w.params
        column = SORT_COLUMNS[flt.sort]
        if _counted_only(flt):
            # The same clause reads batch_counts: it only names columns that table has.
            count_sql = f"select coalesce(sum(n), 0)::bigint from batch_counts {clause}"
        else:
            count_sql = f"select count(*) from batches {clause}"

        def page_sql(descending: bool) -> str:
            # Nulls sort as the largest value (Postgres' default), so that both directions walk one index:
            # an unnamed batch is last by name, a batch still running is longest by duration.
            order = "desc" if descending else "asc"
            # Walk the index for ids only (index-only on a vacuumed table), then read the page's rows.
            return (
                f"select * from batches where id in (select id from batches {clause} "
                f"order by {column} {order}, id {order} limit ${len(params) + 1} offset ${len(params) + 2}) "
                f"order by {column} {order}, id {order}"
            )

        async def op(conn: asyncpg.Connection) -> tuple[int, list[BatchRecord]]:
            # One snapshot for the total and the page, so that the far-end walk below lands exactly.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                total: int = await conn.fetchval(count_sql, *params)
                if total <= flt.offset or flt.size == 0:
                    return total, []
                size = min(flt.size, total - flt.offset)
                from_end = total - flt.offset - size
                rows: list[asyncpg.Record] | None = None
                if min(flt.offset, from_end) > WALK_LIMIT and flt == ListFilter(
                        offset=flt.offset, size=flt.size, desc=flt.desc):
                    # Deep in the unfiltered list: jump to the minute that holds the page.
                    rows = await self._page_at(conn, from_end if flt.desc else flt.offset, size)
                    reverse = flt.desc
                if rows is None and from_end < flt.offset:
                    # Past the middle: walk from the other end, which skips fewer rows.
                    rows = await conn.fetch(page_sql(not flt.desc), *params, size, from_end)
                    reverse = True
                elif rows is None:
                    rows = await conn.fetch(page_sql(flt.desc), *params, size, flt.offset)
                    reverse = False
            if reverse:
                rows.reverse()
            return total, [_record(r) for r in rows]

        return await self._run(op)

    async def _page_at(self, conn: asyncpg.Connection, position: int, size: int) -> list[asyncpg.Record] | None:
        """`size` batches from row `position` on, in create_time order, located through batch_time_counts:
        the hour, then the minute holding that row, then a walk inside the minute. None if the counts do
        not reach that far (they are exact in this snapshot, so only a bug would get there)."""
        hour = await conn.fetchrow(self._q["locate_bucket"], HOUR_MS, position, -(2**62), 2**62, 0)
        if hour is None:
            return None
        minute = await conn.fetchrow(self._q["locate_bucket"], MINUTE_MS, position, hour["bucket"] * 60,
                                     hour["bucket"] * 60 + 60, hour["before"])
        if minute is None:
            return None
        rows: list[asyncpg.Record] = await conn.fetch(
            self._q["page_from_time"], minute["bucket"] * MINUTE_MS, position - minute["before"], size)
        return rows

    @asynccontextmanager
    async def claim_session(self) -> AsyncIterator[ClaimSession]:
        async with self._db.transaction() as conn:
            await conn.execute(self._q["lock_claims"])
            yield ClaimSession(conn)

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def op(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            rows: list[asyncpg.Record] = await conn.fetch(self._q[query], *args)
            return rows

        return await self._run(op)

    async def _one(self, query: str, *args: Any) -> BatchRecord | None:
        async def op(conn: asyncpg.Connection) -> BatchRecord | None:
            row = await conn.fetchrow(self._q[query], *args)
            return _record(row) if row else None

        return await self._run(op)

    # --- job control ---------------------------------------------------------------------

    async def pause_queued(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._one("pause_queued", batch_id)

    async def resume_queued(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._one("resume_queued", batch_id)

    async def request_control(self, batch_id: uuid.UUID, control: str, states: list[BatchState]) -> BatchRecord | None:
        return await self._one("request_control", batch_id, control, states)

    async def set_paused(self, batch_id: uuid.UUID, instance: str, info: dict[str, Any]) -> BatchRecord | None:
        return await self._one("set_paused", batch_id, instance, info)

    async def set_resumed(self, batch_id: uuid.UUID, instance: str, info: dict[str, Any]) -> BatchRecord | None:
        return await self._one("set_resumed", batch_id, instance, info)

    async def clear_control(self, batch_id: uuid.UUID, instance: str, info: dict[str, Any]) -> BatchRecord | None:
        return await self._one("clear_control", batch_id, instance, info)

    async def pending_controls(self, instance: str) -> list[tuple[uuid.UUID, str]]:
        return [(r["id"], r["control"]) for r in await self._fetch("pending_controls", instance)]

    async def merge_info(self, batch_id: uuid.UUID, instance: str, info: dict[str, Any]) -> BatchRecord | None:
        return await self._one("merge_info", batch_id, instance, info)

    async def save_details(self, batch_id: uuid.UUID, instance: str, details: dict[str, Any]) -> None:
        await self._run(lambda conn: conn.execute(self._q["save_details"], batch_id, instance, details))

    async def drop_batch(self, batch_id: uuid.UUID) -> bool:
        return bool(await self._fetch("drop_batch", batch_id))

    async def attempts(self, root: str) -> list[BatchRecord]:
        return [_record(r) for r in await self._fetch("attempts", root)]

    async def set_launching(
        self, batch_id: uuid.UUID, instance: str, handle: dict[str, Any], note: str
    ) -> BatchRecord | None:
        """The launch intent, with `note` appended to the log (None: not the owner, nothing written)."""
        return await self._one("set_launching", batch_id, instance, handle, note)

    async def purge_terminal(self, before_ms: int, limit: int) -> int:
        """Delete up to `limit` terminal batches that ended before `before_ms` (their logs are purged
        first, by the log repository); how many went."""
        return len(await self._fetch("purge_terminal", before_ms, limit))

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
            batch = [_record(r) for r in rows]
            yield batch
            after = batch[-1].id

    async def kill_requested_owned(self, instance: str) -> list[uuid.UUID]:
        rows = await self._fetch("kill_requested_owned", instance)
        return [r["id"] for r in rows]

    async def ring_queue(self) -> None:
        await self._run(lambda conn: conn.execute(self._q["ring_queue"]))
