"""ClaimRepository: the claims' SQL (claims.sql). The scheduler claims queued batches in one transaction
under a cross-instance lock, so that the limits it counts there hold across instances."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from gateway.store.database import Database
from gateway.store.records import BatchRecord, batch_record


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


class ClaimSession:
    """One claiming transaction, holding the cross-instance claim lock."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._q = Database.queries("claims.sql")

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
        return [batch_record(r) for r in await self._conn.fetch(self._q["claim_batches"], ids, instance)]

    async def set_wait_reason(self, ids: list[uuid.UUID], reason: str) -> list[uuid.UUID]:
        """Returns the ids whose reason changed, so that the caller logs it once per batch."""
        if not ids:
            return []
        return [r["id"] for r in await self._conn.fetch(self._q["set_wait_reason"], ids, reason)]


class ClaimRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("claims.sql")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClaimSession]:
        """A claiming transaction, holding the claim lock until the block ends."""
        async with self._db.transaction() as conn:
            await conn.execute(self._q["lock_claims"])
            yield ClaimSession(conn)
