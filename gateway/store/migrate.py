"""Versioned schema migrations (docs/operations.md "Upgrades").

A fresh database gets `schema.sql`, the whole schema, and is stamped with every version. A database at an
older version gets the numbered files of `gateway/store/migrations/` it lacks, in order, one transaction
each, under the advisory lock the first release already takes around its schema. Every applied version is
a row of the legacy `schema_version` table, so the first release, which refuses any version above 1, never
touches a migrated database.

Each migration declares its floor: the oldest code, named by the newest schema version it knows, that still
works on the database after it. An expand step keeps the floor, a contract step raises it. Code that knows
versions up to N runs on a database at version D when D == N, or when D > N and the database's floor (the
highest floor applied) is at most N. Every instance records N in its `instances` row, and no migration is
applied while a live instance is below its floor.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

import asyncpg
import structlog

from gateway.store.queries import load_queries, schema_sql

log = structlog.get_logger("gateway.store.migrate")

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
FLOOR_LINE = re.compile(r"^-- floor: (\d+)[ \t]*$", re.MULTILINE)
# A migration waits this long for a table lock (behind a running instance's long transaction) before it
# gives way and tries again, so that it never queues every other query of that table behind itself.
LOCK_TIMEOUT = "5s"
LOCK_ATTEMPTS = 12
# How long a start waits for the leases of instances that block a migration to run out; an instance that
# renews its lease meanwhile is running, and the start is refused at once.
WAIT_LIMIT_SECONDS = 120.0


class SchemaError(RuntimeError):
    """The database's schema and this batchgate cannot work together; the message says why and what to do."""


class SchemaTooNew(SchemaError):
    """The database was migrated past what this batchgate can use (a contract step raised its floor)."""


class SchemaBehind(SchemaError):
    """The database lacks migrations this batchgate needs, and it was told not to apply them."""


class SchemaBlocked(SchemaError):
    """A migration would leave a still-running instance on a schema it cannot use."""


class SchemaMismatch(SchemaError):
    """The recorded versions do not match this batchgate's migrations (not one history)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    floor: int
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


# Version 1 is the schema of the first release (b3e5fe5); it has no file of its own.
FIRST_RELEASE = Migration(1, "first_release", 1, "")


def parse_migrations(files: Iterable[tuple[str, str]]) -> tuple[Migration, ...]:
    """Migrations from (file name, text) pairs, checked: numbered 2, 3, ... without gaps, each with one
    `-- floor: N` line, 1 <= floor <= its version, floors never going down."""
    found: list[Migration] = []
    for file_name, text in files:
        match = FILE_NAME.match(file_name)
        if match is None:
            raise SchemaError(f"migration file {file_name}: name it NNNN_what.sql (lower case, digits, _)")
        floors = FLOOR_LINE.findall(text)
        if len(floors) != 1:
            raise SchemaError(f"migration file {file_name}: needs exactly one '-- floor: N' line")
        found.append(Migration(int(match[1]), match[2], int(floors[0]), text))
    found.sort(key=lambda m: m.version)
    migrations = (FIRST_RELEASE, *found)
    for previous, migration in itertools.pairwise(migrations):
        if migration.version != previous.version + 1:
            raise SchemaError(f"migration {migration.label}: expected number {previous.version + 1:04d}")
        if not previous.floor <= migration.floor <= migration.version:
            raise SchemaError(f"migration {migration.label}: floor {migration.floor} must be between the "
                              f"previous floor {previous.floor} and its own version {migration.version}")
    return migrations


@cache
def load_migrations() -> tuple[Migration, ...]:
    """This release's migrations, version 1 first, from the package's migrations folder."""
    folder = resources.files("gateway.store").joinpath("migrations")
    return parse_migrations((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))


# The newest schema version this code knows.
SCHEMA_VERSION = load_migrations()[-1].version


def usable(version: int, floor: int, known: int) -> bool:
    """Whether code that knows versions up to `known` works on a database at `version` with `floor`."""
    return version == known or (version > known and floor <= known)


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    floor: int
    applied_at: datetime


@dataclass(frozen=True)
class LiveInstance:
    id: str
    address: str
    lease_until: int
    heartbeat_at: int
    schema_known: int


@dataclass(frozen=True)
class InstanceLease:
    """The starting instance: registered with its known version in the transaction that checks the schema,
    so that a migration started after that check sees it."""

    id: str
    address: str
    lease_ms: int


@dataclass(frozen=True)
class SchemaStatus:
    known: int                          # the newest version this code knows
    version: int                        # the database's newest version; 0 for an empty database
    floor: int                          # the highest floor applied; 0 for an empty database
    applied: tuple[Applied, ...]
    pending: tuple[Migration, ...]
    instances: tuple[LiveInstance, ...]  # live instances other than the caller

    @property
    def usable(self) -> bool:
        return usable(self.version, self.floor, self.known)

    def raised_by(self) -> Applied | None:
        """The first applied migration whose floor is above this code."""
        return next((a for a in self.applied if a.floor > self.known), None)


class Migrator:
    """Reads and applies schema versions, on a connection of its own: a migration may run longer than the
    pool's command timeout, and its session settings stay with it."""

    def __init__(self, dsn: str, migrations: Sequence[Migration] | None = None) -> None:
        self._dsn = dsn
        self.migrations = tuple(migrations) if migrations is not None else load_migrations()
        self.known = self.migrations[-1].version
        self._q = load_queries("migrate.sql")
        self._upsert_instance = load_queries("instances.sql")["upsert_instance"]

    async def status(self, *, instance: str = "") -> SchemaStatus:
        conn = await asyncpg.connect(self._dsn)
        try:
            return await self._read(conn, instance)
        finally:
            await conn.close()

    async def upgrade(self, *, migrate: bool = True, instance: InstanceLease | None = None) -> SchemaStatus:
        """Bring the database to this code's version (a fresh one gets schema.sql), or refuse with a
        SchemaError that says why. Returns the status once the database is usable by this code."""
        waited: dict[str, int] = {}  # blocking instance -> its heartbeat when we began to wait
        started = time.monotonic()
        locked = 0
        conn = await asyncpg.connect(self._dsn)
        try:
            while True:
                try:
                    result = await self._step(conn, migrate, instance, waited)
                except asyncpg.LockNotAvailableError as exc:
                    locked += 1
                    if locked >= LOCK_ATTEMPTS:
                        raise SchemaError(f"a migration could not lock its tables after {locked} tries: {exc}") \
                            from exc
                    log.warning("schema.lock_busy", attempt=locked, detail=str(exc))
                    continue
                if isinstance(result, SchemaStatus):
                    return result
                if not result:
                    continue  # one migration applied: the next step re-reads under the lock
                if time.monotonic() - started > WAIT_LIMIT_SECONDS:
                    raise SchemaBlocked(self._blocked_message(result, "their leases did not run out"))
                for blocker in result:
                    waited.setdefault(blocker.id, blocker.heartbeat_at)
                    log.info("schema.waiting_for_instance", instance=blocker.id, knows=blocker.schema_known,
                             lease_until=blocker.lease_until)
                now_ms = await conn.fetchval("select bg_now_ms()")
                await asyncio.sleep(max(0.0, (max(b.lease_until for b in result) - now_ms) / 1000) + 0.2)
        finally:
            await conn.close()

    async def _step(self, conn: asyncpg.Connection, migrate: bool, instance: InstanceLease | None,
                    waited: dict[str, int]) -> SchemaStatus | list[LiveInstance]:
        """One transaction under the lock: create, refuse, apply the next migration ([] returned), or name
        the instances whose leases must run out first."""
        me = instance.id if instance is not None else ""
        async with conn.transaction():
            await conn.execute(self._q["lock_schema"])
            status = await self._read(conn, me)
            if status.pending and not migrate:
                raise SchemaBehind(self._behind_message(status))
            if status.version == 0:
                await conn.execute(schema_sql())
                for migration in self.migrations:
                    await conn.execute(self._q["record_version"], migration.version, migration.name,
                                       migration.floor)
                log.info("schema.created", version=self.known)
                return await self._settle(conn, instance, me)
            if status.version >= self.known:
                if not status.usable:
                    raise SchemaTooNew(self._too_new_message(status))
                if status.version > self.known:
                    log.info("schema.newer", version=status.version, floor=status.floor, known=self.known)
                return await self._settle(conn, instance, me)
            migration = status.pending[0]
            blockers = [i for i in status.instances if i.schema_known < migration.floor]
            running = [b for b in blockers if b.id in waited and waited[b.id] != b.heartbeat_at]
            if running:
                raise SchemaBlocked(self._blocked_message(running, "they renewed their leases", migration))
            if blockers:
                return blockers
            began = time.monotonic()
            await conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute(migration.sql)
            await conn.execute(self._q["record_version"], migration.version, migration.name, migration.floor)
            log.info("schema.migrated", version=migration.version, name=migration.name, floor=migration.floor,
                     ms=round((time.monotonic() - began) * 1000))
            return []

    async def _settle(self, conn: asyncpg.Connection, instance: InstanceLease | None, me: str) -> SchemaStatus:
        if instance is not None:
            await conn.execute(self._upsert_instance, instance.id, instance.address, instance.lease_ms, self.known)
        return await self._read(conn, me)

    async def _read(self, conn: asyncpg.Connection, me: str) -> SchemaStatus:
        tables = await conn.fetchrow(self._q["schema_tables"])
        if not tables["versioned"]:
            if tables["populated"]:
                raise SchemaMismatch("the database holds batchgate's tables but no schema_version table: "
                                     "it was not made by a batchgate release; restore it from a backup")
            return SchemaStatus(self.known, 0, 0, (), self.migrations, ())
        applied = tuple(Applied(r["version"], r["name"], r["code_floor"], r["applied_at"])
                        for r in await conn.fetch(self._q["applied_versions"]))
        done = {a.version for a in applied}
        ours = {m.version: m for m in self.migrations}
        for a in applied:
            theirs = ours.get(a.version)
            if theirs is not None and a.name not in ("", theirs.name):
                raise SchemaMismatch(f"schema version {a.version} was applied as {a.version:04d}_{a.name}, but "
                                     f"this batchgate's is {theirs.label}: not one history of migrations")
        version = max(done, default=0)
        pending = tuple(m for m in self.migrations if m.version not in done)
        if any(m.version < version for m in pending):
            missing = ", ".join(m.label for m in pending if m.version < version)
            raise SchemaMismatch(f"the database is at schema version {version} but lacks {missing}")
        instances = tuple(LiveInstance(r["id"], r["address"], r["lease_until"], r["heartbeat_at"],
                                       r["schema_known"])
                          for r in await conn.fetch(self._q["live_instances"], me))
        floor = max((a.floor for a in applied), default=0)
        return SchemaStatus(self.known, version, floor, applied, pending, instances)

    def _behind_message(self, status: SchemaStatus) -> str:
        what = "empty" if status.version == 0 else f"at schema version {status.version}"
        return (f"the database is {what}, and this batchgate needs version {self.known} "
                f"({', '.join(m.label for m in status.pending)}); it was told not to migrate: "
                "run `batchgate db upgrade` first, or start it without --no-migrate")

    def _too_new_message(self, status: SchemaStatus) -> str:
        raised = status.raised_by()
        why = (f"migration {raised.version:04d}_{raised.name} needs batchgate that knows schema version "
               f"{raised.floor} or later" if raised is not None else f"its floor is {status.floor}")
        return (f"the database is at schema version {status.version} and {why}; this batchgate knows "
                f"versions up to {self.known}: run a newer release")

    def _blocked_message(self, blockers: Sequence[LiveInstance], why: str,
                         migration: Migration | None = None) -> str:
        who = "; ".join(f"instance {b.id} at {b.address} knows schema versions up to {b.schema_known}"
                        for b in blockers)
        what = (f"migration {migration.label} needs code that knows version {migration.floor} or later"
                if migration is not None else "a pending migration needs newer code")
        return (f"{what}, and still-running instances could not use it ({why}): {who}. "
                "Upgrade or stop those instances first (docs/operations.md, Upgrades)")
