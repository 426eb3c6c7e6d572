"""InstanceRepository: the instances' SQL (instances.sql): each instance's lease and draining mark, the
takeover of a dead instance's batches (by the sweep or by an admin) and of orphaned ones, and the schema
marks that /readyz reads."""

from __future__ import annotations

import asyncpg

from gateway.store.database import Database
from gateway.store.migrate import SCHEMA_VERSION
from gateway.store.records import BatchRecord, batch_record


class InstanceRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("instances.sql")

    async def renew_lease(self, instance: str, address: str, lease_ms: int) -> int:
        """Register or renew an instance's lease (with the schema version its code knows); its end, epoch ms."""
        value: int = await self._db.fetchval(self._q["upsert_instance"], instance, address, lease_ms, SCHEMA_VERSION)
        return value

    async def set_draining(self, instance: str) -> None:
        await self._db.execute(self._q["set_draining"], instance)

    async def schema_marks(self) -> tuple[int, int]:
        """The database's newest schema version and its floor (gateway.store.migrate)."""
        row = await self._db.fetchrow(self._q["schema_marks"])
        assert row is not None  # an aggregate always returns its row
        return row["version"] or 0, row["code_floor"] or 0

    async def take_over_dead(self, instance: str) -> tuple[str | None, list[BatchRecord]]:
        """Claim one expired instance and its active batches, in one transaction."""

        async def op(conn: asyncpg.Connection) -> tuple[str | None, list[BatchRecord]]:
            async with conn.transaction():
                dead: str | None = await conn.fetchval(self._q["claim_dead_instance"], instance)
                if dead is None:
                    return None, []
                rows = await conn.fetch(self._q["take_over_batches"], dead, instance)
                return dead, [batch_record(r) for r in rows]

        return await self._db.run(op)

    async def reassign(self, dead: str, instance: str) -> tuple[int | None, list[BatchRecord]]:
        """Move the active batches of `dead` to `instance`, in one transaction, unless `dead` still holds
        its lease: then nothing moves and its lease end (epoch ms) is returned instead."""

        async def op(conn: asyncpg.Connection) -> tuple[int | None, list[BatchRecord]]:
            async with conn.transaction():
                lease = await conn.fetchrow(self._q["lock_instance"], dead)
                if lease is not None and lease["live"]:
                    return int(lease["lease_until"]), []
                await conn.execute(self._q["remove_instance"], dead)
                rows = await conn.fetch(self._q["take_over_batches"], dead, instance)
                return None, [batch_record(r) for r in rows]

        return await self._db.run(op)

    async def take_over_orphans(self, instance: str) -> list[BatchRecord]:
        """Active batches whose owner has no instance row at all, now this instance's (a few hundred a step)."""
        return [batch_record(r) for r in await self._db.fetch(self._q["orphaned_batches"], instance)]
