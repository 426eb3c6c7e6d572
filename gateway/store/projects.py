"""ProjectRepository: the SQL of projects, artifacts and the project log (queries in projects.sql)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from pydantic import BaseModel

from gateway.store.database import Database

CHUNK = 1 << 20


class ProjectRecord(BaseModel):
    name: str
    description: str | None
    owner: str
    members: dict[str, list[str]]
    created_at: int
    updated_at: int


class ArtifactRecord(BaseModel):
    project: str
    version: int
    size: int
    digest: str
    files: list[str]
    uploader: str
    created_at: int


class ProjectRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.queries("projects.sql")

    async def create(self, name: str, description: str | None, owner: str,
                     members: dict[str, list[str]]) -> ProjectRecord | None:
        async def op(conn: asyncpg.Connection) -> ProjectRecord | None:
            async with conn.transaction():
                row = await conn.fetchrow(self._q["insert_project"], name, description, owner, members)
                if row is None:
                    return None
                await conn.execute(self._q["insert_project_log"], name, owner, "created", {"members": members})
                return ProjectRecord.model_validate(dict(row))

        return await self._db.run(op)

    async def update(self, name: str, actor: str, description: str | None, members: dict[str, list[str]],
                     changes: list[tuple[str, dict[str, Any]]]) -> ProjectRecord | None:
        async def op(conn: asyncpg.Connection) -> ProjectRecord | None:
            async with conn.transaction():
                row = await conn.fetchrow(self._q["update_project"], name, description, members)
                if row is None:
                    return None
                for action, detail in changes:
                    await conn.execute(self._q["insert_project_log"], name, actor, action, detail)
                return ProjectRecord.model_validate(dict(row))

        return await self._db.run(op)

    async def get(self, name: str) -> ProjectRecord | None:
        rows = await self._db.fetch(self._q["get_project"], name)
        return ProjectRecord.model_validate(dict(rows[0])) if rows else None

    async def delete(self, name: str) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                gone = await conn.fetchval(self._q["delete_project"], name)
                await conn.execute(self._q["delete_project_log"], name)
                return gone is not None

        return await self._db.run(op)

    async def live_work(self, name: str) -> tuple[list[str], list[str], list[str]]:
        batches = [str(r["id"]) for r in await self._db.fetch(self._q["project_live_batches"], name)]
        runs = [str(r["id"]) for r in await self._db.fetch(self._q["project_live_runs"], name)]
        schedules = [str(r["id"]) for r in await self._db.fetch(self._q["project_live_schedules"], name)]
        return batches, runs, schedules

    async def memberships(self, user: str) -> dict[str, frozenset[str]]:
        """Every project the user belongs to, with the roles held there (owners hold ADMIN)."""
        out: dict[str, frozenset[str]] = {}
        for row in await self._db.fetch(self._q["member_projects"], user):
            roles = set(row["roles"] or [])
            if row["owner"] == user:
                roles.add("ADMIN")
            out[row["name"]] = frozenset(roles)
        return out

    async def list_projects(self, reader: str | None, offset: int, size: int) -> tuple[int, list[ProjectRecord]]:
        clause = "where owner = $1 or members ? $1" if reader is not None else ""
        params: list[Any] = [reader] if reader is not None else []
        sql = (f"select *, count(*) over () as total from projects {clause} order by name "
               f"offset ${len(params) + 1} limit ${len(params) + 2}")
        rows = await self._db.run(lambda conn: conn.fetch(sql, *params, offset, size))
        total = rows[0]["total"] if rows else 0
        return total, [ProjectRecord.model_validate({k: v for k, v in dict(r).items() if k != "total"})
                       for r in rows]

    async def log(self, project: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self._db.run(lambda conn: conn.execute(self._q["insert_project_log"], project, actor, action,
                                                         detail))

    async def read_log(self, project: str, offset: int, size: int) -> tuple[int, list[dict[str, Any]]]:
        rows = await self._db.fetch(self._q["project_log"], project, offset, size)
        total = rows[0]["total"] if rows else 0
        return total, [{"id": r["id"], "time": r["at"], "actor": r["actor"], "action": r["action"],
                        "detail": r["detail"]} for r in rows]

    async def add_artifact(self, project: str, uploader: str, files: list[str],
                           chunks: AsyncIterator[bytes]) -> ArtifactRecord:
        """Store a validated zip as the project's next version, with its log entry, in one transaction."""

        async def op(conn: asyncpg.Connection) -> ArtifactRecord:
            async with conn.transaction():
                version: int = await conn.fetchval(self._q["next_artifact_version"], project)
                digest = hashlib.sha256()
                size = 0
                number = 0
                # The metadata row first (chunks reference it); its size and digest are fixed up below.
                await conn.execute(self._q["insert_artifact"], project, version, 0, "", files, uploader)
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await conn.execute(self._q["insert_artifact_chunk"], project, version, number, chunk)
                    number += 1
                row = await conn.fetchrow(self._q["finish_artifact"], project, version, size, digest.hexdigest())
                await conn.execute(self._q["insert_project_log"], project, uploader, "artifact_uploaded",
                                   {"version": version, "size": size, "digest": digest.hexdigest(),
                                    "files": len(files)})
                return ArtifactRecord.model_validate(dict(row))

        return await self._db.run(op)

    async def artifacts(self, project: str) -> list[ArtifactRecord]:
        rows = await self._db.fetch(self._q["list_artifacts"], project)
        return [ArtifactRecord.model_validate(dict(r)) for r in rows]

    async def artifact(self, project: str, version: int = 0) -> ArtifactRecord | None:
        rows = await self._db.fetch(self._q["get_artifact"], project, version)
        return ArtifactRecord.model_validate(dict(rows[0])) if rows else None

    async def artifact_bytes(self, project: str, version: int) -> list[bytes]:
        return [r["data"] for r in await self._db.fetch(self._q["artifact_chunks"], project, version)]
