"""JobRepository: the SQL of jobs and runs (queries in jobs.sql)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from gateway.contract.batches import BatchState
from gateway.contract.jobs import FailureAction, NodeState, RunState
from gateway.store.batches import write_batch
from gateway.store.database import Database, Where
from gateway.store.projects import ArtifactRecord
from gateway.store.records import NewBatch


class JobRecord(BaseModel):
    name: str
    owner: str
    version: int
    description: str | None
    definition: dict[str, Any]
    permissions: dict[str, list[str]]
    project: str | None
    created_at: int
    updated_at: int


class JobVersion(BaseModel):
    """One saved version of a job: its definition and who saved it."""

    definition: dict[str, Any]
    author: str


class RunRecord(BaseModel):
    id: uuid.UUID
    job: str
    version: int
    state: RunState
    trigger: str
    submit_user: str
    real_user: str
    variables: dict[str, str]
    failure_action: FailureAction
    paused: bool
    attempt: int
    project: str | None
    schedule_id: uuid.UUID | None
    fire_time: int | None
    create_time: int
    start_time: int
    end_time: int
    update_time: int
    after_run: uuid.UUID | None = None


class NodeRecord(BaseModel):
    run_id: uuid.UUID
    node_id: str
    position: int
    state: NodeState
    depends_on: list[str]
    batch_id: uuid.UUID | None
    attempt: int
    start_time: int
    end_time: int
    update_time: int


@dataclass
class NodeRow:
    """A node as the advancer sees it: its row plus its batch's state."""

    node_id: str
    state: NodeState
    depends_on: list[str]
    batch_id: uuid.UUID | None
    attempt: int
    start_time: int
    end_time: int
    batch_state: BatchState | None
    app_start_time: int | None
    batch_end_time: int | None
    changed: bool = False


class RunTransaction:
    """One run, locked for the length of a transaction: read everything, write the changes."""

    def __init__(self, conn: asyncpg.Connection, queries: dict[str, str], run: RunRecord) -> None:
        self._conn = conn
        self._q = queries
        self.run = run
        self.inserted = False

    async def nodes(self) -> list[NodeRow]:
        rows = await self._conn.fetch(self._q["run_nodes_with_batches"], self.run.id)
        return [NodeRow(**{**dict(r), "state": NodeState(r["state"]),
                           "batch_state": BatchState(r["batch_state"]) if r["batch_state"] else None})
                for r in rows]

    async def save_nodes(self, nodes: list[NodeRow]) -> None:
        changed = [n for n in nodes if n.changed]
        if not changed:
            return
        await self._conn.execute(
            self._q["update_run_nodes"], self.run.id, [n.node_id for n in changed], [n.state for n in changed],
            [n.batch_id for n in changed], [n.attempt for n in changed], [n.start_time for n in changed],
            [n.end_time for n in changed],
        )

    async def insert_batches(self, batches: list[NewBatch]) -> None:
        """The admitted (or refused) batches of nodes, with their audit and SLA rows, in this transaction."""
        if not batches:
            return
        self.inserted = True
        plain = [b for b in batches if b.refusal is None and not b.slas]
        if plain:
            await self._conn.execute(
                self._q["insert_node_batches"], [b.id for b in plain], [b.batch_type for b in plain],
                [b.user for b in plain], self.run.real_user, [b.name for b in plain], [b.resource for b in plain],
                [b.class_name for b in plain], [json.dumps(b.conf) for b in plain],
                [json.dumps(b.args) for b in plain], [b.priority for b in plain], self.run.project,
                [json.dumps(b.info) for b in plain],
            )
        for batch in batches:
            if batch.refusal is not None or batch.slas:
                await write_batch(self._conn, batch)

    async def artifact(self, project: str, version: int) -> ArtifactRecord | None:
        """A project's artifact, read in this transaction (admission runs under the run's lock)."""
        # Read under the run's lock with the projects' own query (admission checks a node's artifact).
        row = await self._conn.fetchrow(Database.queries("projects.sql")["get_artifact"], project, version)
        return ArtifactRecord.model_validate(dict(row)) if row else None

    async def save_run(self, *, state: RunState, start_time: int, end_time: int, paused: bool, attempt: int,
                       variables: dict[str, str]) -> RunRecord:
        row = await self._conn.fetchrow(self._q["update_run"], self.run.id, state, start_time, end_time, paused,
                                        attempt, variables)
        self.run = RunRecord.model_validate(dict(row))
        return self.run

    async def events(self, changes: list[tuple[str | None, str]]) -> None:
        if changes:
            await self._conn.execute(self._q["insert_run_events"], self.run.id, [c[0] for c in changes],
                                     [c[1] for c in changes])

    async def stop_batches(self, batch_ids: list[uuid.UUID], why: str) -> None:
        """Cancel the queued ones and ask the owners to kill the launched ones."""
        if batch_ids:
            await self._conn.execute(self._q["cancel_run_batches"], batch_ids, why)
            await self._conn.execute(self._q["kill_run_batches"], batch_ids)

    async def definition(self) -> dict[str, Any]:
        value = await self._conn.fetchval(self._q["get_job_version"], self.run.job, self.run.version)
        result: dict[str, Any] = value or {}
        return result

    async def run_state(self, run_id: uuid.UUID) -> RunState | None:
        """Another run's state (None: it is gone), for the run of a sequence that waits for it."""
        state: str | None = await self._conn.fetchval(self._q["run_state"], run_id)
        return None if state is None else RunState(state)


class JobRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("jobs.sql")
        # A job change notes itself in its project's log in the same transaction: the projects' query.
        self._project_log = db.queries("projects.sql")["insert_project_log"]

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._db.fetch(self._q[query], *args)

    # --- jobs ----------------------------------------------------------------------------

    async def create_job(self, *, name: str, owner: str, description: str | None, definition: dict[str, Any],
                         permissions: dict[str, list[str]], project: str | None) -> JobRecord | None:
        async def op(conn: asyncpg.Connection) -> JobRecord | None:
            async with conn.transaction():
                row = await conn.fetchrow(self._q["insert_job"], name, owner, description, definition,
                                          permissions, project)
                if row is None:
                    return None
                await conn.execute(self._q["insert_job_version"], name, 1, definition, owner)
                await conn.execute(self._q["insert_job_log"], name, owner, "created", {"version": 1})
                if project:
                    await conn.execute(self._project_log, project, owner, "job_created",
                                       {"job": name, "version": 1})
                return JobRecord.model_validate(dict(row))

        return await self._db.run(op)

    async def update_job(self, *, name: str, actor: str, description: str | None, definition: dict[str, Any],
                         permissions: dict[str, list[str]], project: str | None) -> JobRecord | None:
        async def op(conn: asyncpg.Connection) -> JobRecord | None:
            async with conn.transaction():
                row = await conn.fetchrow(self._q["update_job"], name, description, definition, permissions,
                                          project)
                if row is None:
                    return None
                job = JobRecord.model_validate(dict(row))
                await conn.execute(self._q["insert_job_version"], name, job.version, definition, actor)
                await conn.execute(self._q["insert_job_log"], name, actor, "updated", {"version": job.version})
                if project:
                    await conn.execute(self._project_log, project, actor, "job_changed",
                                       {"job": name, "version": job.version})
                return job

        return await self._db.run(op)

    async def get_job(self, name: str) -> JobRecord | None:
        rows = await self._fetch("get_job", name)
        return JobRecord.model_validate(dict(rows[0])) if rows else None

    async def delete_job(self, name: str, actor: str, *, with_runs: bool = False) -> list[uuid.UUID] | None:
        """Delete a job (and, with_runs, its ended runs' records): the ids of the runs removed, or None if
        there was no such job."""
        async def op(conn: asyncpg.Connection) -> list[uuid.UUID] | None:
            async with conn.transaction():
                gone = await conn.fetchval(self._q["delete_job"], name)
                if gone is None:
                    return None
                runs = [r["id"] for r in await conn.fetch(self._q["delete_runs_of_job"], name)] \
                    if with_runs else []
                detail = {"runsRemoved": len(runs)} if with_runs else {}
                await conn.execute(self._q["insert_job_log"], name, actor, "deleted", detail)
                return runs

        return await self._db.run(op)

    async def job_version(self, name: str, version: int) -> JobVersion | None:
        rows = await self._fetch("get_job_version", name, version)
        return JobVersion(definition=rows[0]["definition"], author=rows[0]["created_by"]) if rows else None

    async def active_runs_of_job(self, name: str) -> list[uuid.UUID]:
        return [r["id"] for r in await self._fetch("active_runs_of_job", name)]

    async def job_log(self, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self._db.run(lambda conn: conn.execute(self._q["insert_job_log"], job, actor, action, detail))

    async def read_job_log(self, job: str, offset: int, size: int) -> tuple[int, list[dict[str, Any]]]:
        rows = await self._fetch("job_log", job, offset, size)
        total = rows[0]["total"] if rows else 0
        return total, [{"id": r["id"], "time": r["at"], "actor": r["actor"], "action": r["action"],
                        "detail": r["detail"]} for r in rows]

    async def list_jobs(self, *, reader: str | None, owner: str | None, project: str | None, offset: int,
                        size: int, reader_projects: tuple[str, ...] = ()) -> tuple[int, list[JobRecord]]:
        w = Where()
        if reader is not None:  # not an admin: own jobs, jobs that grant the reader something, project jobs
            w.add("(owner = {0} or permissions ? {0} or project = any({1}::text[]))", reader, list(reader_projects))
        if owner:
            w.add("owner = {0}", owner)
        if project:
            w.add("project = {0}", project)
        clause, params = w.clause, w.params
        sql = (f"select *, count(*) over () as total from jobs {clause} order by name "
               f"offset ${len(params) + 1} limit ${len(params) + 2}")

        async def op(conn: asyncpg.Connection) -> tuple[int, list[JobRecord]]:
            rows = await conn.fetch(sql, *params, offset, size)
            if not rows and offset:
                total = await conn.fetchval(f"select count(*) from jobs {clause}", *params)
                return total, []
            total = rows[0]["total"] if rows else 0
            return total, [JobRecord.model_validate({k: v for k, v in dict(r).items() if k != "total"})
                           for r in rows]

        return await self._db.run(op)

    # --- runs ----------------------------------------------------------------------------

    async def create_run(self, *, run_id: uuid.UUID, job: str, version: int, trigger: str, user: str,
                         real_user: str, variables: dict[str, str], failure_action: str, project: str | None,
                         nodes: list[tuple[str, str, list[str]]], schedule_id: uuid.UUID | None = None,
                         fire_time: int | None = None, after_run: uuid.UUID | None = None) -> RunRecord:
        async def op(conn: asyncpg.Connection) -> RunRecord:
            async with conn.transaction():
                row = await conn.fetchrow(self._q["insert_run"], run_id, job, version, trigger, user,
                                          real_user, variables, failure_action, project, schedule_id, fire_time,
                                          after_run)
                await conn.execute(self._q["insert_run_nodes"], run_id, [n[0] for n in nodes],
                                   [n[1] for n in nodes], [json.dumps(n[2]) for n in nodes])
                await conn.execute(self._q["insert_job_log"], job, real_user, "triggered",
                                   {"run": str(run_id), "trigger": trigger})
                return RunRecord.model_validate(dict(row))

        return await self._db.run(op)

    async def get_run(self, run_id: uuid.UUID) -> RunRecord | None:
        rows = await self._fetch("get_run", run_id)
        return RunRecord.model_validate(dict(rows[0])) if rows else None

    async def run_nodes(self, run_id: uuid.UUID, since: int = 0) -> list[NodeRecord]:
        return [NodeRecord.model_validate(dict(r)) for r in await self._fetch("run_nodes", run_id, since)]

    async def list_runs(self, *, reader: str | None, job: str | None, states: list[str], project: str | None,
                        offset: int, size: int, reader_projects: tuple[str, ...] = ()) -> tuple[int, list[RunRecord]]:
        w = Where()
        if reader is not None:
            w.add("(submit_user = {0} or real_user = {0} or project = any({1}::text[]) or job in "
                  "(select name from jobs where owner = {0} or permissions ? {0}))", reader, list(reader_projects))
        if job:
            w.add("job = {0}", job)
        if states:
            w.add("state = any({0}::text[])", states)
        if project:
            w.add("project = {0}", project)
        clause, params = w.clause, w.params
        count_sql = f"select count(*) from runs {clause}"
        page_sql = (f"select * from runs {clause} order by create_time desc, id desc "
                    f"offset ${len(params) + 1} limit ${len(params) + 2}")

        async def op(conn: asyncpg.Connection) -> tuple[int, list[RunRecord]]:
            total: int = await conn.fetchval(count_sql, *params)
            rows = await conn.fetch(page_sql, *params, offset, size) if total > offset else []
            return total, [RunRecord.model_validate(dict(r)) for r in rows]

        return await self._db.run(op)

    async def events_after(self, run_id: uuid.UUID, after: int, limit: int = 500) -> list[dict[str, Any]]:
        rows = await self._fetch("run_events_after", run_id, after, limit)
        return [dict(r) for r in rows]

    async def waiting_runs(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        """The runs of a sequence that wait for this one."""
        return [r["id"] for r in await self._fetch("waiting_runs", run_id)]

    async def stale_runs(self) -> list[uuid.UUID]:
        rows = await self._fetch("stale_runs")
        rows += await self._fetch("preparing_runs")
        return [r["run_id"] if "run_id" in r else r["id"] for r in rows]

    @asynccontextmanager
    async def locked_run(self, run_id: uuid.UUID) -> AsyncIterator[RunTransaction | None]:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(self._q["lock_run"], run_id)
            yield RunTransaction(conn, self._q, RunRecord.model_validate(dict(row))) if row else None


__all__ = ["JobRecord", "JobRepository", "JobVersion", "NodeRecord", "NodeRow", "RunRecord", "RunTransaction"]
