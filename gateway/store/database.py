"""Database: the connection pool, the transaction helper and the named-query loader that every repository
of gateway/store/ is built on. A repository holds a Database and the named queries of its own .sql file;
it never reaches into another repository. Errors that mean "Postgres is not there right now" become
Unavailable (a 503 with Retry-After), and text Postgres cannot store becomes a BadRequest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from gateway.errors import BadRequest, Unavailable
from gateway.store.queries import load_queries

T = TypeVar("T")

# Errors that mean "the database is not there right now", as opposed to a bug in a query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    # A pooled connection that the server dropped mid-protocol reports a client state error.
    asyncpg.InternalClientError,
    TimeoutError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool (an open transaction is still rolled back).

    asyncpg's default reset is a round trip per release (UNLISTEN *, RESET ALL, advisory unlocks, CLOSE
    ALL), about a tenth of a GET's cost. The store never leaves session state behind: its advisory locks
    are transaction-scoped, it sets no settings, LISTEN has a connection of its own, and cursors end
    with their transactions.
    """


class Database:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=60,
            reset=_keep_session,
        )
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    @staticmethod
    def queries(file: str) -> dict[str, str]:
        """The named queries of one .sql file of this package (each file is read once)."""
        return load_queries(file)

    async def run(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`op` on a pooled connection."""
        try:
            async with self._pool.acquire() as conn:
                return await op(conn)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        except asyncpg.DataError as exc:
            # Text Postgres cannot store (a NUL byte, an invalid encoding) is bad input, not a bug.
            raise BadRequest(f"input: {exc.__class__.__name__}: text the database cannot store") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside a transaction that commits when the block ends without an error (the
        claim session, a locked run, a due schedule: they hold row or advisory locks until it ends)."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def op(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

        return await self.run(op)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async def op(conn: asyncpg.Connection) -> asyncpg.Record | None:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
            return row

        return await self.run(op)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.run(lambda conn: conn.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> str:
        async def op(conn: asyncpg.Connection) -> str:
            status: str = await conn.execute(sql, *args)
            return status

        return await self.run(op)


class Where:
    """A WHERE clause assembled from fixed fragments; values only ever travel as $n parameters."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.params: list[Any] = []

    def add(self, fragment: str, *values: Any) -> None:
        """`fragment` names its values {0}, {1}, ... (a name may repeat); each becomes the next $n."""
        slots = []
        for value in values:
            self.params.append(value)
            slots.append(f"${len(self.params)}")
        self._parts.append(fragment.format(*slots))

    @property
    def clause(self) -> str:
        return ("where " + " and ".join(self._parts)) if self._parts else ""
