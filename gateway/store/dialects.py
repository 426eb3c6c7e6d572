"""DialectIdRepository: the numbers and UUIDs that other systems' APIs give what batchgate names otherwise
(table dialect_ids; its queries in dialects.sql)."""

from __future__ import annotations

import uuid
from functools import partial

import asyncpg

from gateway.store.database import Database


class DialectIdRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("dialects.sql")

    async def numbers(self, kind: str, keys: list[str]) -> dict[str, tuple[int, uuid.UUID]]:
        """key -> (number, uuid) for every key, made where missing."""
        out: dict[str, tuple[int, uuid.UUID]] = {}
        wanted = sorted(set(keys))
        for _ in range(3):  # a key another transaction was making at the same moment shows on the next try
            missing = [k for k in wanted if k not in out]
            if not missing:
                break
            out.update(await self._db.run(partial(self._numbers, kind, missing)))
        return out

    async def _numbers(self, kind: str, keys: list[str], conn: asyncpg.Connection) -> dict[str, tuple[int, uuid.UUID]]:
        rows = await conn.fetch(self._q["dialect_ids"], kind, keys)
        return {r["key"]: (r["id"], r["uid"]) for r in rows}

    async def key(self, kind: str, number: int) -> str | None:
        if not 0 < number < 2**63:
            return None
        value: str | None = await self._db.fetchval(self._q["dialect_key"], kind, number)
        return value

    async def key_by_uid(self, kind: str, uid: uuid.UUID) -> str | None:
        value: str | None = await self._db.fetchval(self._q["dialect_key_by_uid"], kind, uid)
        return value

    async def forget(self, kind: str, keys: list[str]) -> None:
        await self._db.execute(self._q["forget_dialect_ids"], kind, keys)
