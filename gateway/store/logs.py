"""LogRepository: the batch logs' SQL (logs.sql): numbered lines stored in chunks, read by window or by
tail, purged in small steps after their batches end."""

from __future__ import annotations

import uuid

import asyncpg

from gateway.store.database import Database

MAX_LINE_CHARS = 65 * 1024  # above engines.process.LINE_LIMIT and its marker: program lines are cut there


class LogRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("logs.sql")

    async def append(
        self, batch_id: uuid.UUID, lines: list[str], offset: int | None = None, owner: str | None = None
    ) -> int:
        """Store lines after the batch's last one; returns the number of the first.

        -1 means nothing was written: no such batch, or `owner` no longer owns it.
        """
        clipped = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " [truncated]" for ln in lines]
        clipped = [ln.replace("\x00", "\ufffd") for ln in clipped]
        first: int | None = await self._db.fetchval(self._q["append_log"], batch_id, clipped, offset, owner)
        return -1 if first is None else first

    async def read(self, batch_id: uuid.UUID, start: int, size: int) -> list[str]:
        """Lines [start, start + size) of a batch's log, fewer at its end."""
        if size <= 0:
            return []
        rows = await self._db.fetch(self._q["read_log"], batch_id, start, size)
        out: list[str] = []
        end = start + size
        for row in rows:
            first: int = row["first_line"]
            lines: list[str] = row["lines"]
            lo = max(start - first, 0)
            hi = min(end - first, len(lines))
            if hi > lo:
                out.extend(lines[lo:hi])
        return out

    async def read_chars(self, batch_id: uuid.UUID, start: int, size: int) -> list[tuple[int, list[str]]]:
        """The chunks holding characters [start, start + size) of a batch's log, as (offset of the chunk's
        first character, its lines). A log written before the counts existed is counted first, once."""

        async def op(conn: asyncpg.Connection) -> list[tuple[int, list[str]]]:
            await self._count(conn, batch_id)
            rows = await conn.fetch(self._q["read_log_chars"], batch_id, start, size)
            return [(row["first_char"], row["lines"]) for row in rows]

        return await self._db.run(op)

    async def chars(self, batch_id: uuid.UUID) -> int:
        """The length of a batch's log in characters (0: no log)."""

        async def op(conn: asyncpg.Connection) -> int:
            await self._count(conn, batch_id)
            return int(await conn.fetchval(self._q["log_char_end"], batch_id) or 0)

        return await self._db.run(op)

    async def _count(self, conn: asyncpg.Connection, batch_id: uuid.UUID) -> None:
        if await conn.fetchval(self._q["log_uncounted"], batch_id):
            async with conn.transaction():
                await conn.execute(self._q["lock_log"], batch_id)
                await conn.execute(self._q["count_log_chars"], batch_id)

    async def tails(self, batch_ids: list[uuid.UUID], lines: int) -> dict[uuid.UUID, list[str]]:
        """The last `lines` log lines of each batch, in one query."""
        if not batch_ids or lines <= 0:
            return {}
        chunks: dict[uuid.UUID, list[list[str]]] = {}
        for row in await self._db.fetch(self._q["log_tails"], batch_ids, lines):  # newest chunk first
            chunks.setdefault(row["batch_id"], []).append(row["lines"])
        tails: dict[uuid.UUID, list[str]] = {}
        for batch_id, parts in chunks.items():
            tail: list[str] = []
            for part in parts:
                tail[:0] = part
                if len(tail) >= lines:
                    break
            tails[batch_id] = tail[-lines:]
        return tails

    async def purge(self, before_ms: int, limit: int) -> int:
        """Delete up to `limit` log chunks of batches that ended before `before_ms`; how many went."""

        async def op(conn: asyncpg.Connection) -> int:
            status: str = await conn.execute(self._q["purge_log_chunks"], before_ms, limit)
            return int(status.split()[-1])

        return await self._db.run(op)
