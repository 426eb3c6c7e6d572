"""What the repositories of schedules and SLAs share: rows as pydantic models, the read helpers of a
repository on one named-query file (a page whose rows carry the total), and the job history line a change
writes in its own transaction."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from gateway.store.database import Database

M = TypeVar("M", bound=BaseModel)


def as_model(model: type[M], row: asyncpg.Record) -> M:
    return model.model_validate({k: v for k, v in dict(row).items() if k != "total"})


async def fetch_model(conn: asyncpg.Connection, model: type[M], sql: str, *args: Any) -> M | None:
    """The query's row as a model, None when it returns no row."""
    row = await conn.fetchrow(sql, *args)
    return as_model(model, row) if row is not None else None


async def write_job_log(conn: asyncpg.Connection, job: str, actor: str, action: str, detail: dict[str, Any]) -> None:
    """Add a line to a job's history, on the caller's connection so it commits with the change it notes
    (with the jobs' own query)."""
    await conn.execute(Database.queries("jobs.sql")["insert_job_log"], job, actor, action, detail)


class QueryRepository:
    """A repository on the Database and the named queries of its own .sql file."""

    def __init__(self, db: Database, file: str) -> None:
        self._db = db
        self._q = db.queries(file)

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._db.fetch(self._q[query], *args)

    async def _value(self, query: str, *args: Any) -> Any:
        return await self._db.run(lambda conn: conn.fetchval(self._q[query], *args))

    async def _get(self, model: type[M], query: str, *args: Any) -> M | None:
        """The first row of a read-only query as a model, None when there is none."""
        rows = await self._fetch(query, *args)
        return as_model(model, rows[0]) if rows else None

    async def _page(self, model: type[M], query: str, *args: Any, offset: int, size: int) -> tuple[int, list[M]]:
        """One page of a list query whose rows carry the total, and the total."""
        rows = await self._fetch(query, *args, offset, size)
        if not rows and offset:  # past the end: the page has no row to carry the total, so ask for one
            first = await self._fetch(query, *args, 0, 1)
            return (first[0]["total"] if first else 0), []
        return (rows[0]["total"] if rows else 0), [as_model(model, r) for r in rows]
