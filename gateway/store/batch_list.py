"""The batch list's SQL: GET /batches' filters as a WHERE clause of fixed, parameterized fragments, its total
(from batch_counts when the filters allow), and its page, walked from the nearer end or, deep in the
unfiltered list, located through batch_time_counts. BatchRepository.list_batches runs it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.contract.batches import BatchSort
from gateway.store.database import Where
from gateway.store.records import BatchRecord, batch_record


@dataclass(frozen=True)
class ListFilter:
    """Filters of GET /batches, already validated."""

    batch_type: str | None = None
    states: tuple[str, ...] = ()
    user: str | None = None
    name: str | None = None
    create_time: int = 0
    end_time: int = 0
    offset: int = 0
    size: int = 100
    desc: bool = False
    sort: BatchSort = BatchSort.CREATE_TIME
    key: str | None = None
    ids: tuple[uuid.UUID, ...] = ()
    batch_types: tuple[str, ...] = ()  # any of these types (the Livy API lists SPARK and PYSPARK)
    attempts_of: str | None = None
    created_before: int = 0
    project: str | None = None
    # A non-admin's view: their own batches (as effective or real user) and their projects' batches.
    reader: str | None = None
    reader_projects: tuple[str, ...] = ()
    # Keyset position (create_time, id): rows strictly after it, for walking a changing match set.
    after: tuple[int, uuid.UUID] | None = None


def _counted_only(flt: ListFilter) -> bool:
    """Whether batch_counts can answer the total: filters by user, type and state only."""
    return flt == ListFilter(batch_type=flt.batch_type, batch_types=flt.batch_types, states=flt.states,
                             user=flt.user, offset=flt.offset, size=flt.size, desc=flt.desc, sort=flt.sort)


# An unfiltered list further than this from both ends is located through batch_time_counts.
WALK_LIMIT = 5_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

SORT_COLUMNS = {BatchSort.CREATE_TIME: "create_time", BatchSort.END_TIME: "end_time", BatchSort.NAME: "name",
                BatchSort.DURATION: "duration"}


def _key_clauses(key: str) -> tuple[str, list[Any]]:
    """`key` matches an id prefix, or words of the name, the last by prefix (case-insensitive, index-served)."""
    hexchars = key.replace("-", "").lower()
    params: list[Any] = []
    parts: list[str] = []
    if hexchars and len(hexchars) <= 32 and all(c in "0123456789abcdef" for c in hexchars):
        low = uuid.UUID(hexchars.ljust(32, "0"))
        high = uuid.UUID(hexchars.ljust(32, "f"))
        params += [low, high]
        parts.append("(id between {0} and {1})")
    words = [w for w in re.split(r"[^0-9A-Za-z]+", key.lower()) if w]
    if words:
        # Whole words, and the last one by prefix (it may still be being typed): a prefix term cannot
        # use GIN's skipping, so `job:* & 123:*` would collect every `job…` row before intersecting.
        params.append(" & ".join([*words[:-1], f"{words[-1]}:*"]))
        slot = "{" + str(len(params) - 1) + "}"
        parts.append(
            "to_tsvector('simple', regexp_replace(coalesce(name, ''), '[^0-9A-Za-z]+', ' ', 'g'))"
            f" @@ to_tsquery('simple', {slot})"
        )
    if not parts:
        return "false", []
    return "(" + " or ".join(parts) + ")", params


async def list_page(conn: asyncpg.Connection, q: dict[str, str], flt: ListFilter) -> tuple[int, list[BatchRecord]]:
    """The total that match and one page of them, in one snapshot (see ListFilter)."""
    w = Where()
    if flt.batch_type:
        w.add("batch_type = {0}", flt.batch_type)
    if flt.batch_types:
        w.add("batch_type = any({0}::text[])", list(flt.batch_types))
    if flt.states:
        w.add("state = any({0}::text[])", list(flt.states))
    if flt.user:
        w.add("batch_user = {0}", flt.user)
    if flt.name:
        w.add("name = {0}", flt.name)
    if flt.create_time > 0:
        w.add("create_time >= {0}", flt.create_time)
    if flt.end_time > 0:
        # A batch ends after it is created: the second bound narrows the create_time index range too.
        w.add("end_time > 0 and end_time <= {0} and create_time <= {0}", flt.end_time)
    if flt.project:
        w.add("project = {0}", flt.project)
    if flt.reader is not None:
        w.add("(batch_user = {0} or real_user = {0} or project = any({1}::text[]))",
              flt.reader, list(flt.reader_projects))
    if flt.created_before > 0:
        w.add("create_time < {0}", flt.created_before)
    if flt.ids:
        w.add("id = any({0}::uuid[])", list(flt.ids))
    if flt.attempts_of:
        w.add("(id = ({0}::text)::uuid or batch_info ->> 'restartRoot' = {0}::text)", flt.attempts_of)
    if flt.key:
        fragment, values = _key_clauses(flt.key)
        w.add(fragment, *values)
    if flt.after is not None:
        w.add("(create_time, id) > ({0}, {1})", *flt.after)
    clause, params = w.clause, w.params
    column = SORT_COLUMNS[flt.sort]
    if _counted_only(flt):
        # The same clause reads batch_counts: it only names columns that table has.
        count_sql = f"select coalesce(sum(n), 0)::bigint from batch_counts {clause}"
    else:
        count_sql = f"select count(*) from batches {clause}"

    def page_sql(descending: bool) -> str:
        # Nulls sort as the largest value (Postgres' default), so that both directions walk one index:
        # an unnamed batch is last by name, a batch still running is longest by duration.
        order = "desc" if descending else "asc"
        # Walk the index for ids only (index-only on a vacuumed table), then read the page's rows.
        return (
            f"select * from batches where id in (select id from batches {clause} "
            f"order by {column} {order}, id {order} limit ${len(params) + 1} offset ${len(params) + 2}) "
            f"order by {column} {order}, id {order}"
        )

    # One snapshot for the total and the page, so that the far-end walk below lands exactly.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total: int = await conn.fetchval(count_sql, *params)
        if total <= flt.offset or flt.size == 0:
            return total, []
        size = min(flt.size, total - flt.offset)
        from_end = total - flt.offset - size
        rows: list[asyncpg.Record] | None = None
        if min(flt.offset, from_end) > WALK_LIMIT and flt == ListFilter(
                offset=flt.offset, size=flt.size, desc=flt.desc):
            # Deep in the unfiltered list: jump to the minute that holds the page.
            rows = await _page_at(conn, q, from_end if flt.desc else flt.offset, size)
            reverse = flt.desc
        if rows is None and from_end < flt.offset:
            # Past the middle: walk from the other end, which skips fewer rows.
            rows = await conn.fetch(page_sql(not flt.desc), *params, size, from_end)
            reverse = True
        elif rows is None:
            rows = await conn.fetch(page_sql(flt.desc), *params, size, flt.offset)
            reverse = False
    if reverse:
        rows.reverse()
    return total, [batch_record(r) for r in rows]


async def _page_at(
    conn: asyncpg.Connection, q: dict[str, str], position: int, size: int
) -> list[asyncpg.Record] | None:
    """`size` batches from row `position` on, in create_time order, located through batch_time_counts:
    the hour, then the minute holding that row, then a walk inside the minute. None if the counts do
    not reach that far (they are exact in this snapshot, so only a bug would get there)."""
    hour = await conn.fetchrow(q["locate_bucket"], HOUR_MS, position, -(2**62), 2**62, 0)
    if hour is None:
        return None
    minute = await conn.fetchrow(q["locate_bucket"], MINUTE_MS, position, hour["bucket"] * 60,
                                 hour["bucket"] * 60 + 60, hour["before"])
    if minute is None:
        return None
    rows: list[asyncpg.Record] = await conn.fetch(
        q["page_from_time"], minute["bucket"] * MINUTE_MS, position - minute["before"], size)
    return rows
