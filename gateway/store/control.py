"""ControlRepository: job control's SQL (control.sql): a queued batch paused or resumed at once, a launched
one asked to (its owner told by trigger) and the owner's answer, drop, the details saved, a restart's
attempts."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from gateway.contract.batches import BatchState
from gateway.store.database import Database
from gateway.store.records import BatchRecord, batch_record


class ControlRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("control.sql")

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._db.fetch(self._q[query], *args)

    async def _one(self, query: str, *args: Any) -> BatchRecord | None:
        row = await self._db.fetchrow(self._q[query], *args)
        return batch_record(row) if row else None

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
        await self._db.execute(self._q["save_details"], batch_id, instance, details)

    async def drop_batch(self, batch_id: uuid.UUID) -> bool:
        return bool(await self._fetch("drop_batch", batch_id))

    async def attempts(self, root: str) -> list[BatchRecord]:
        return [batch_record(r) for r in await self._fetch("attempts", root)]
