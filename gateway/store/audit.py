"""AuditRepository: the audit log's SQL (audit.sql): who did what to which target, allowed or denied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.store.database import Database, Where
from gateway.store.records import AuditRecord


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: int = 0
    until: int = 0
    offset: int = 0
    size: int = 100


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("audit.sql")

    async def record(
        self, actor: str, action: str, target: str | None, *, allowed: bool = True,
        source_ip: str | None = None, detail: dict[str, Any] | None = None,
    ) -> None:
        await self._db.execute(self._q["insert_audit"], actor, action, target, allowed, source_ip, detail or {})

    async def page(self, flt: AuditFilter) -> tuple[int, list[AuditRecord]]:
        """The entries that match, newest first, with their total."""
        w = Where()
        if flt.actor:
            w.add("actor = {0}", flt.actor)
        if flt.action:
            w.add("action = {0}", flt.action)
        if flt.target:
            w.add("target = {0}", flt.target)
        if flt.since:
            w.add("at >= {0}", flt.since)
        if flt.until:
            w.add("at <= {0}", flt.until)
        clause, params = w.clause, w.params
        count_sql = f"select count(*) from audit_log {clause}"
        page_sql = (f"select * from audit_log {clause} order by at desc, id desc "
                    f"limit ${len(params) + 1} offset ${len(params) + 2}")

        async def op(conn: asyncpg.Connection) -> tuple[int, list[AuditRecord]]:
            total: int = await conn.fetchval(count_sql, *params)
            rows = await conn.fetch(page_sql, *params, flt.size, flt.offset) if total > flt.offset else []
            return total, [AuditRecord.model_validate(dict(r)) for r in rows]

        return await self._db.run(op)

    async def recent_starts(self, real_user: str, since_ms: int) -> tuple[int, int | None]:
        """How many batches a user started directly since a time, and the oldest of them (for Retry-After)."""
        row = await self._db.fetchrow(self._q["recent_starts"], real_user, since_ms)
        assert row is not None
        return row["n"], row["oldest"]
