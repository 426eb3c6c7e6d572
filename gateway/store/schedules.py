"""ScheduleRepository: the SQL of schedules and their ticks (queries in schedules.sql); SLAs, deadlines and
breaches are in slas.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from gateway.contract.schedules import TickOutcome
from gateway.store.database import Database
from gateway.store.rows import QueryRepository, as_model, fetch_model, write_job_log


class ScheduleRecord(BaseModel):
    id: uuid.UUID
    job: str
    owner: str
    description: str | None
    cron: str | None
    every: str | None
    timezone: str
    variables: dict[str, str]
    concurrency: str
    catchup: str
    catchup_bound: int
    start_at: int | None
    end_at: int | None
    anchor: int
    enabled: bool
    next_fire: int | None
    last_fire: int | None
    created_at: int
    updated_at: int


class TickRecord(BaseModel):
    schedule_id: uuid.UUID
    fire_time: int
    instance: str
    outcome: TickOutcome
    reason: str | None
    run_id: uuid.UUID | None
    claimed_at: int
    updated_at: int


@dataclass(frozen=True)
class Busy:
    run_id: uuid.UUID | None
    firing: bool
    queued: int


class TickTransaction:
    """One due schedule, locked until the transaction ends: decide its ticks and move it on."""

    def __init__(self, conn: asyncpg.Connection, q: dict[str, str], schedule: ScheduleRecord) -> None:
        self._conn = conn
        self._q = q
        self.schedule = schedule

    async def lock_job(self) -> None:
        await self._conn.execute(self._q["lock_schedule_job"], self.schedule.job)

    async def busy(self) -> Busy:
        row = await self._conn.fetchrow(self._q["job_busy"], self.schedule.job)
        return Busy(row["run_id"], row["firing"], row["queued"])

    async def insert_tick(self, fire_time: int, instance: str, outcome: TickOutcome, reason: str | None) -> bool:
        row = await self._conn.fetchrow(self._q["insert_tick"], self.schedule.id, fire_time, instance, outcome,
                                        reason)
        if row is not None and outcome in (TickOutcome.PENDING, TickOutcome.QUEUED):
            await self._conn.execute(self._q["register_tick_deadlines"], self.schedule.id, fire_time)
        return row is not None

    async def advance(self, next_fire: int | None, last_fire: int | None) -> None:
        await self._conn.execute(self._q["advance_schedule"], self.schedule.id, next_fire, last_fire)

    async def job_log(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        await write_job_log(self._conn, self.schedule.job, actor, action, detail)


class ScheduleRepository(QueryRepository):
    def __init__(self, db: Database) -> None:
        super().__init__(db, "schedules.sql")

    async def job_log(self, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self._db.run(lambda conn: write_job_log(conn, job, actor, action, detail))

    # --- schedules -----------------------------------------------------------------------

    async def create_schedule(self, values: dict[str, Any], actor: str) -> ScheduleRecord:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(self._q["insert_schedule"], *_schedule_args(values, creating=True))
            record = as_model(ScheduleRecord, row)
            await write_job_log(conn, record.job, actor, "schedule_created", _schedule_detail(record))
            return record

    async def update_schedule(self, schedule_id: uuid.UUID, values: dict[str, Any], actor: str,
                              changes: list[str]) -> ScheduleRecord | None:
        async with self._db.transaction() as conn:
            record = await fetch_model(conn, ScheduleRecord, self._q["update_schedule"], schedule_id,
                                *_schedule_args(values, creating=False))
            if record is None:
                return None
            if not record.enabled:
                await conn.execute(self._q["skip_queued_ticks"], schedule_id, "the schedule was disabled")
            await write_job_log(conn, record.job, actor, "schedule_updated",
                           {**_schedule_detail(record), "changed": changes})
            return record

    async def get_schedule(self, schedule_id: uuid.UUID) -> ScheduleRecord | None:
        return await self._get(ScheduleRecord, "get_schedule", schedule_id)

    async def delete_schedule(self, schedule_id: uuid.UUID, actor: str) -> ScheduleRecord | None:
        async with self._db.transaction() as conn:
            record = await fetch_model(conn, ScheduleRecord, self._q["delete_schedule"], schedule_id)
            if record is not None:
                await write_job_log(conn, record.job, actor, "schedule_deleted", {"schedule": str(schedule_id)})
            return record

    async def list_schedules(self, *, job: str | None, reader: str | None, reader_projects: tuple[str, ...],
                             offset: int, size: int) -> tuple[int, list[ScheduleRecord]]:
        return await self._page(ScheduleRecord, "list_schedules", job, reader, list(reader_projects), offset=offset,
                                size=size)

    async def last_ticks(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, TickRecord]:
        if not ids:
            return {}
        return {r["schedule_id"]: as_model(TickRecord, r) for r in await self._fetch("last_ticks", ids)}

    async def list_ticks(self, schedule_id: uuid.UUID, offset: int, size: int) -> tuple[int, list[TickRecord]]:
        return await self._page(TickRecord, "list_ticks", schedule_id, offset=offset, size=size)

    # --- the ticker ----------------------------------------------------------------------

    async def next_fire(self) -> int | None:
        value: int | None = await self._value("next_fire")
        return value

    async def due_schedules(self, now: int, limit: int) -> list[uuid.UUID]:
        return [r["id"] for r in await self._fetch("due_schedules", now, limit)]

    @asynccontextmanager
    async def claim(self, schedule_id: uuid.UUID, now: int) -> AsyncIterator[TickTransaction | None]:
        async with self._db.transaction() as conn:
            schedule = await fetch_model(conn, ScheduleRecord, self._q["lock_due_schedule"], schedule_id, now)
            yield TickTransaction(conn, self._q, schedule) if schedule is not None else None

    async def finish_tick(self, tick: TickRecord, outcome: TickOutcome, reason: str | None, run_id: uuid.UUID | None,
                          detail: dict[str, Any], actor: str, job: str) -> bool:
        """Record a fired (or failed) tick and its line in the job's history, together."""
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(self._q["finish_tick"], tick.schedule_id, tick.fire_time, outcome, reason,
                                      run_id, tick.instance)
            if row is None:
                return False
            action = "tick_fired" if outcome is TickOutcome.FIRED else "tick_failed"
            await write_job_log(conn, job, actor, action, detail)
            return True

    async def claim_queued(self, job: str, instance: str) -> TickRecord | None:
        """The oldest queued tick of a job, for this instance to fire, if the job is idle now."""
        async with self._db.transaction() as conn:
            await conn.execute(self._q["lock_schedule_job"], job)
            busy = await conn.fetchrow(self._q["job_busy"], job)
            if busy["run_id"] is not None or busy["firing"] or not busy["queued"]:
                return None
            return await fetch_model(conn, TickRecord, self._q["claim_queued_tick"], job, instance)

    async def skip_queued_tick(self, schedule_id: uuid.UUID, fire_time: int, reason: str) -> bool:
        return bool(await self._fetch("skip_queued_tick", schedule_id, fire_time, reason))

    async def jobs_with_queued_ticks(self) -> list[str]:
        return [r["job"] for r in await self._fetch("jobs_with_queued_ticks")]

    async def orphaned_ticks(self, instance: str, include_mine: bool) -> list[TickRecord]:
        return [as_model(TickRecord, r) for r in await self._fetch("orphaned_ticks", instance, include_mine)]

    async def run_of_tick(self, schedule_id: uuid.UUID, fire_time: int) -> uuid.UUID | None:
        value: uuid.UUID | None = await self._value("run_of_tick", schedule_id, fire_time)
        return value



def _schedule_args(v: dict[str, Any], *, creating: bool) -> list[Any]:
    common = [v["description"], v["cron"], v["every"], v["timezone"], v["variables"], v["concurrency"], v["catchup"],
              v["catchup_bound"], v["start_at"], v["end_at"], v["anchor"], v["enabled"], v["next_fire"]]
    if creating:
        return [v["id"], v["job"], v["owner"], *common]
    return [*common, v["owner"]]


def _schedule_detail(s: ScheduleRecord) -> dict[str, Any]:
    return {"schedule": str(s.id), "cron": s.cron, "every": s.every, "timezone": s.timezone,
            "concurrency": s.concurrency, "catchup": s.catchup, "enabled": s.enabled, "nextFire": s.next_fire}


__all__ = ["Busy", "ScheduleRecord", "ScheduleRepository", "TickRecord"]
