"""SlaRepository: the SQL of SLAs, their deadlines and breaches (queries in slas.sql). An SLA watches a job,
a node of it, a schedule's ticks or a batch; each target gets a deadline row, judged once when due."""

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


class DeadlineTransaction:
    """Due deadlines, locked until the transaction ends: judge each and record breaches once."""

    def __init__(self, conn: asyncpg.Connection, q: dict[str, str]) -> None:
        self._conn = conn
        self._q = q

    async def due(self, now: int, limit: int) -> list[DeadlineRecord]:
        return [as_model(DeadlineRecord, r) for r in await self._conn.fetch(self._q["claim_deadlines"], now, limit)]

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
        return await fetch_model(
            self._conn, BreachRecord, self._q["insert_breach"], deadline.sla_id, deadline.target, deadline.kind,
            deadline.job, progress.run_id, progress.batch_id or deadline.batch_id, deadline.node, deadline.rule,
            deadline.start_at, deadline.due_at, instance)

    async def close(self, deadline: DeadlineRecord, outcome: str) -> None:  # MET, BREACHED or GONE
        await self._conn.execute(self._q["close_deadline"], deadline.sla_id, deadline.target, outcome)

    async def job_log(self, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await write_job_log(self._conn, job, actor, action, detail)


class SlaRepository(QueryRepository):
    def __init__(self, db: Database) -> None:
        super().__init__(db, "slas.sql")

    async def create(self, values: dict[str, Any], actor: str) -> SlaRecord | None:
        """Insert an SLA (None when its id exists) and note it in its job's history."""
        async with self._db.transaction() as conn:
            record = await fetch_model(
                conn, SlaRecord, self._q["insert_sla"], values["id"], values["owner"], values.get("job"),
                values.get("schedule_id"), values.get("batch_id"), values.get("node"), values["rule"],
                values["duration_ms"], values["actions"], values.get("webhook"), values.get("emails", []),
                values.get("description"))
            if record is None:
                return None
            if record.job:
                await write_job_log(conn, record.job, actor, "sla_created",
                               {"sla": str(record.id), "rule": record.rule, "durationMs": record.duration_ms,
                                "schedule": str(record.schedule_id) if record.schedule_id else None,
                                "node": record.node, "actions": record.actions})
            if record.batch_id is not None:
                start = values["start_at"]
                await conn.execute(self._q["insert_batch_deadline"], record.id, str(record.batch_id), start,
                                   start + record.duration_ms)
            return record

    async def get(self, sla_id: uuid.UUID) -> SlaRecord | None:
        return await self._get(SlaRecord, "get_sla", sla_id)

    async def delete(self, sla_id: uuid.UUID, actor: str) -> SlaRecord | None:
        async with self._db.transaction() as conn:
            record = await fetch_model(conn, SlaRecord, self._q["delete_sla"], sla_id)
            if record is not None and record.job:
                await write_job_log(conn, record.job, actor, "sla_deleted", {"sla": str(sla_id)})
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
        return [as_model(BreachRecord, r) for r in await self._fetch("orphaned_breaches", instance, include_mine)]

    async def list_breaches(self, sla_id: uuid.UUID, offset: int, size: int) -> tuple[int, list[BreachRecord]]:
        return await self._page(BreachRecord, "list_breaches", sla_id, offset=offset, size=size)
