"""ScheduleStore: the SQL of schedules, ticks, SLAs, deadlines and breaches (queries in schedules.sql)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from gateway.contract.schedules import TickOutcome
from gateway.store.database import Database


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


class _SlaTerms(BaseModel):
    """What an SLA watches, its rule and what a breach sets off: the columns a deadline row carries too."""

    owner: str
    job: str | None
    schedule_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    node: str | None
    rule: str
    duration_ms: int
    actions: list[str]
    webhook: str | None
    emails: list[str]


class SlaRecord(_SlaTerms):
    id: uuid.UUID
    description: str | None
    created_at: int
    breaches: int = 0


class DeadlineRecord(_SlaTerms):
    """A due deadline with its SLA."""

    target: str
    kind: str  # RUN, BATCH or TICK
    start_at: int
    due_at: int
    sla_id: uuid.UUID


class BreachRecord(BaseModel):
    id: int
    sla_id: uuid.UUID
    target: str
    kind: str
    job: str | None
    run_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    node: str | None
    rule: str
    start_at: int
    due_at: int
    breached_at: int
    instance: str
    actions_done: bool
    results: dict[str, Any]


@dataclass(frozen=True)
class Progress:
    """How far an SLA's target got: when it started and ended (None: not yet), whether it succeeded."""

    exists: bool
    started_at: int | None = None
    ended_at: int | None = None
    succeeded: bool = False
    run_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None
    skipped: bool = False  # a tick that was skipped: there is nothing to be late


@dataclass(frozen=True)
class Busy:
    run_id: uuid.UUID | None
    firing: bool
    queued: int


M = TypeVar("M", bound=BaseModel)


def _model(model: type[M], row: asyncpg.Record) -> M:
    return model.model_validate({k: v for k, v in dict(row).items() if k != "total"})


async def _one(conn: asyncpg.Connection, model: type[M], sql: str, *args: Any) -> M | None:
    """The query's row as a model, None when it returns no row."""
    row = await conn.fetchrow(sql, *args)
    return _model(model, row) if row is not None else None


async def _job_log(conn: asyncpg.Connection, q: dict[str, str], job: str, actor: str, action: str,
                   detail: dict[str, Any]) -> None:
    """Add a line to a job's history, on the caller's connection so it commits with the change it notes
    (with the jobs' own query)."""
    await conn.execute(Database.queries("jobs.sql")["insert_job_log"], job, actor, action, detail)


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
        await _job_log(self._conn, self._q, self.schedule.job, actor, action, detail)


class DeadlineTransaction:
    """Due deadlines, locked until the transaction ends: judge each and record breaches once."""

    def __init__(self, conn: asyncpg.Connection, q: dict[str, str]) -> None:
        self._conn = conn
        self._q = q

    async def due(self, now: int, limit: int) -> list[DeadlineRecord]:
        return [_model(DeadlineRecord, r) for r in await self._conn.fetch(self._q["claim_deadlines"], now, limit)]

    async def progress(self, deadline: DeadlineRecord) -> Progress:
        q = self._q
        if deadline.kind == "BATCH":
            row = await self._conn.fetchrow(q["batch_progress"], uuid.UUID(deadline.target))
            if row is None:
                return Progress(False)
            return Progress(True, row["started_at"] or None, row["ended_at"] or None, row["succeeded"],
                            batch_id=uuid.UUID(deadline.target))
        run_id: uuid.UUID | None
        if deadline.kind == "TICK":
            schedule, _, fire = deadline.target.partition("@")
            tick = await self._conn.fetchrow(q["tick_of_deadline"], uuid.UUID(schedule), int(fire))
            if tick is None:
                return Progress(False)
            if tick["outcome"] == TickOutcome.SKIPPED and tick["run_id"] is None:
                return Progress(True, skipped=True)
            run_id = tick["run_id"]
            if run_id is None:
                return Progress(True)  # still queued, or being fired: not started
        else:
            run_id = uuid.UUID(deadline.target)
        row = await self._conn.fetchrow(q["run_progress"], run_id, deadline.node)
        if row is None:
            return Progress(False)
        return Progress(True, row["started_at"] or None, row["ended_at"] or None, bool(row["succeeded"]),
                        run_id=row["run_id"], batch_id=row["batch_id"])

    async def breach(self, deadline: DeadlineRecord, progress: Progress, instance: str) -> BreachRecord | None:
        return await _one(
            self._conn, BreachRecord, self._q["insert_breach"], deadline.sla_id, deadline.target, deadline.kind,
            deadline.job, progress.run_id, progress.batch_id or deadline.batch_id, deadline.node, deadline.rule,
            deadline.start_at, deadline.due_at, instance)

    async def close(self, deadline: DeadlineRecord, outcome: str) -> None:  # MET, BREACHED or GONE
        await self._conn.execute(self._q["close_deadline"], deadline.sla_id, deadline.target, outcome)

    async def job_log(self, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await _job_log(self._conn, self._q, job, actor, action, detail)


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("schedules.sql")

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._db.fetch(self._q[query], *args)

    async def _value(self, query: str, *args: Any) -> Any:
        return await self._db.run(lambda conn: conn.fetchval(self._q[query], *args))

    async def _get(self, model: type[M], query: str, *args: Any) -> M | None:
        """The first row of a read-only query as a model, None when there is none."""
        rows = await self._fetch(query, *args)
        return _model(model, rows[0]) if rows else None

    async def _page(self, model: type[M], query: str, *args: Any, offset: int, size: int) -> tuple[int, list[M]]:
        """One page of a list query whose rows carry the total, and the total."""
        rows = await self._fetch(query, *args, offset, size)
        if not rows and offset:  # past the end: the page has no row to carry the total, so ask for one
            first = await self._fetch(query, *args, 0, 1)
            return (first[0]["total"] if first else 0), []
        return (rows[0]["total"] if rows else 0), [_model(model, r) for r in rows]

    async def job_log(self, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self._db.run(lambda conn: _job_log(conn, self._q, job, actor, action, detail))

    # --- schedules -----------------------------------------------------------------------

    async def create_schedule(self, values: dict[str, Any], actor: str) -> ScheduleRecord:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(self._q["insert_schedule"], *_schedule_args(values, creating=True))
            record = _model(ScheduleRecord, row)
            await _job_log(conn, self._q, record.job, actor, "schedule_created", _schedule_detail(record))
            return record

    async def update_schedule(self, schedule_id: uuid.UUID, values: dict[str, Any], actor: str,
                              changes: list[str]) -> ScheduleRecord | None:
        async with self._db.transaction() as conn:
            record = await _one(conn, ScheduleRecord, self._q["update_schedule"], schedule_id,
                                *_schedule_args(values, creating=False))
            if record is None:
                return None
            if not record.enabled:
                await conn.execute(self._q["skip_queued_ticks"], schedule_id, "the schedule was disabled")
            await _job_log(conn, self._q, record.job, actor, "schedule_updated",
                           {**_schedule_detail(record), "changed": changes})
            return record

    async def get_schedule(self, schedule_id: uuid.UUID) -> ScheduleRecord | None:
        return await self._get(ScheduleRecord, "get_schedule", schedule_id)

    async def delete_schedule(self, schedule_id: uuid.UUID, actor: str) -> ScheduleRecord | None:
        async with self._db.transaction() as conn:
            record = await _one(conn, ScheduleRecord, self._q["delete_schedule"], schedule_id)
            if record is not None:
                await _job_log(conn, self._q, record.job, actor, "schedule_deleted", {"schedule": str(schedule_id)})
            return record

    async def list_schedules(self, *, job: str | None, reader: str | None, reader_projects: tuple[str, ...],
                             offset: int, size: int) -> tuple[int, list[ScheduleRecord]]:
        return await self._page(ScheduleRecord, "list_schedules", job, reader, list(reader_projects), offset=offset,
                                size=size)

    async def last_ticks(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, TickRecord]:
        if not ids:
            return {}
        return {r["schedule_id"]: _model(TickRecord, r) for r in await self._fetch("last_ticks", ids)}

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
            schedule = await _one(conn, ScheduleRecord, self._q["lock_due_schedule"], schedule_id, now)
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
            await _job_log(conn, self._q, job, actor, action, detail)
            return True

    async def claim_queued(self, job: str, instance: str) -> TickRecord | None:
        """The oldest queued tick of a job, for this instance to fire, if the job is idle now."""
        async with self._db.transaction() as conn:
            await conn.execute(self._q["lock_schedule_job"], job)
            busy = await conn.fetchrow(self._q["job_busy"], job)
            if busy["run_id"] is not None or busy["firing"] or not busy["queued"]:
                return None
            return await _one(conn, TickRecord, self._q["claim_queued_tick"], job, instance)

    async def skip_queued_tick(self, schedule_id: uuid.UUID, fire_time: int, reason: str) -> bool:
        return bool(await self._fetch("skip_queued_tick", schedule_id, fire_time, reason))

    async def jobs_with_queued_ticks(self) -> list[str]:
        return [r["job"] for r in await self._fetch("jobs_with_queued_ticks")]

    async def orphaned_ticks(self, instance: str, include_mine: bool) -> list[TickRecord]:
        return [_model(TickRecord, r) for r in await self._fetch("orphaned_ticks", instance, include_mine)]

    async def run_of_tick(self, schedule_id: uuid.UUID, fire_time: int) -> uuid.UUID | None:
        value: uuid.UUID | None = await self._value("run_of_tick", schedule_id, fire_time)
        return value

    # --- SLAs ----------------------------------------------------------------------------

    async def create_sla(self, values: dict[str, Any], actor: str) -> SlaRecord | None:
        """Insert an SLA (None when its id exists) and note it in its job's history."""
        async with self._db.transaction() as conn:
            record = await _one(
                conn, SlaRecord, self._q["insert_sla"], values["id"], values["owner"], values.get("job"),
                values.get("schedule_id"), values.get("batch_id"), values.get("node"), values["rule"],
                values["duration_ms"], values["actions"], values.get("webhook"), values.get("emails", []),
                values.get("description"))
            if record is None:
                return None
            if record.job:
                await _job_log(conn, self._q, record.job, actor, "sla_created",
                               {"sla": str(record.id), "rule": record.rule, "durationMs": record.duration_ms,
                                "schedule": str(record.schedule_id) if record.schedule_id else None,
                                "node": record.node, "actions": record.actions})
            if record.batch_id is not None:
                start = values["start_at"]
                await conn.execute(self._q["insert_batch_deadline"], record.id, str(record.batch_id), start,
                                   start + record.duration_ms)
            return record

    async def get_sla(self, sla_id: uuid.UUID) -> SlaRecord | None:
        return await self._get(SlaRecord, "get_sla", sla_id)

    async def delete_sla(self, sla_id: uuid.UUID, actor: str) -> SlaRecord | None:
        async with self._db.transaction() as conn:
            record = await _one(conn, SlaRecord, self._q["delete_sla"], sla_id)
            if record is not None and record.job:
                await _job_log(conn, self._q, record.job, actor, "sla_deleted", {"sla": str(sla_id)})
            return record

    async def list_slas(self, *, job: str | None, schedule_id: uuid.UUID | None, batch_id: uuid.UUID | None,
                        reader: str | None, reader_projects: tuple[str, ...], offset: int,
                        size: int) -> tuple[int, list[SlaRecord]]:
        return await self._page(SlaRecord, "list_slas", job, schedule_id, batch_id, reader, list(reader_projects),
                                offset=offset, size=size)

    async def next_deadline(self) -> int | None:
        value: int | None = await self._value("next_deadline")
        return value

    @asynccontextmanager
    async def deadlines(self) -> AsyncIterator[DeadlineTransaction]:
        async with self._db.transaction() as conn:
            yield DeadlineTransaction(conn, self._q)

    async def finish_breach(self, breach_id: int, results: dict[str, Any]) -> None:
        await self._db.run(lambda conn: conn.execute(self._q["finish_breach"], breach_id, results))

    async def orphaned_breaches(self, instance: str, include_mine: bool) -> list[BreachRecord]:
        return [_model(BreachRecord, r) for r in await self._fetch("orphaned_breaches", instance, include_mine)]

    async def list_breaches(self, sla_id: uuid.UUID, offset: int, size: int) -> tuple[int, list[BreachRecord]]:
        return await self._page(BreachRecord, "list_breaches", sla_id, offset=offset, size=size)


def _schedule_args(v: dict[str, Any], *, creating: bool) -> list[Any]:
    common = [v["description"], v["cron"], v["every"], v["timezone"], v["variables"], v["concurrency"], v["catchup"],
              v["catchup_bound"], v["start_at"], v["end_at"], v["anchor"], v["enabled"], v["next_fire"]]
    if creating:
        return [v["id"], v["job"], v["owner"], *common]
    return [*common, v["owner"]]


def _schedule_detail(s: ScheduleRecord) -> dict[str, Any]:
    return {"schedule": str(s.id), "cron": s.cron, "every": s.every, "timezone": s.timezone,
            "concurrency": s.concurrency, "catchup": s.catchup, "enabled": s.enabled, "nextFire": s.next_fire}


__all__ = ["BreachRecord", "DeadlineRecord", "Progress", "ScheduleRecord", "ScheduleStore", "SlaRecord",
           "TickRecord"]
