"""SessionRepository: the login sessions' SQL (sessions.sql). Tokens are stored only as hashes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from gateway.store.database import Database


@dataclass(frozen=True)
class SessionRecord:
    """A live login session. The token itself is never stored, only its hash."""

    token_hash: bytes
    user: str
    created_at: int
    expires_at: int


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(row["token_hash"], row["user_name"], row["created_at"], row["expires_at"])


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("sessions.sql")

    async def insert(self, token_hash: bytes, user: str, lifetime_ms: int, source_ip: str | None) -> SessionRecord:
        row = await self._db.fetchrow(self._q["insert_session"], token_hash, user, lifetime_ms, source_ip)
        assert row is not None  # an insert returns its row
        return _session(row)

    async def live(self, token_hash: bytes) -> SessionRecord | None:
        row = await self._db.fetchrow(self._q["live_session"], token_hash)
        return _session(row) if row else None

    async def revoke(self, token_hash: bytes) -> bool:
        return bool(await self._db.fetch(self._q["revoke_session"], token_hash))

    async def purge(self, limit: int = 100) -> None:
        """Forget sessions that ended more than a day ago, a few at a time."""
        await self._db.execute(self._q["purge_sessions"], limit)
