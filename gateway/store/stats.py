"""StatsRepository: the SQL of the summary views (queries in stats.sql): batch counts per time bucket, and
the batches counted against the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.store.database import Database


@dataclass
class BucketCounts:
    created: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    running: int = 0


@dataclass(frozen=True)
class UsageRow:
    user: str
    batch_type: str
    running: int
    queued: int


class StatsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("stats.sql")

    async def bucket_counts(self, start: int, stop: int, bucket: int, now: int, *, reader: str | None,
                            reader_projects: tuple[str, ...]) -> list[BucketCounts]:
        """Counts for each bucket of [start, stop); `reader` None: every batch, else what that user may see."""
        counts = [BucketCounts() for _ in range((stop - start + bucket - 1) // bucket)]
        visibility = (reader, list(reader_projects))
        for row in await self._fetch("stats_created", start, stop, bucket, *visibility):
            counts[row["bucket"]].created[row["state"]] = row["n"]
        for row in await self._fetch("stats_ended", start, stop, bucket, *visibility):
            counts[row["bucket"]].ended[row["state"]] = row["n"]
        for row in await self._fetch("stats_active", start, stop, bucket, *visibility, now):
            setattr(counts[row["bucket"]], row["kind"], row["n"])
        return counts

    async def _fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        sql = self._q[name]
        rows: list[asyncpg.Record] = await self._db.run(lambda conn: conn.fetch(sql, *args))
        return rows

    async def limit_usage(self) -> list[UsageRow]:
        rows = await self._fetch("limit_usage")
        return [UsageRow(r["batch_user"], r["batch_type"], r["running"], r["queued"]) for r in rows]
