"""ProjectService: projects, members and roles, artifacts, and the project log."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from gateway.contract.projects import ProjectSpec
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from gateway.instance.spool import bounded, read_chunks, write_chunks
from gateway.projects import zipcheck
from gateway.security.auth import Principal
from gateway.store.projects import ArtifactRecord, ProjectRecord, ProjectRepository

log = structlog.get_logger("gateway.projects")

ALL = frozenset({"READ", "EXECUTE", "WRITE", "SCHEDULE", "ADMIN"})
# What each project role lets a member do with the project's batches, jobs, runs and schedules.
GRANTS: dict[str, frozenset[str]] = {
    "READ": frozenset({"READ"}),
    "EXECUTE": frozenset({"READ", "EXECUTE"}),
    "WRITE": frozenset({"READ", "WRITE"}),
    "SCHEDULE": frozenset({"READ", "SCHEDULE"}),
    "ADMIN": ALL,
}
PUT_BATCHES = frozenset({"EXECUTE", "WRITE", "ADMIN"})
PUT_JOBS = frozenset({"WRITE", "ADMIN"})
ARTIFACT_PREFIX = "artifact:"
ArtifactLookup = Callable[[str, int], Awaitable[ArtifactRecord | None]]


def parse_artifact(resource: str) -> tuple[str, int]:
    """'artifact:jobs/etl.py@3' -> ('jobs/etl.py', 3); no @version -> 0 (the latest)."""
    body = resource[len(ARTIFACT_PREFIX):]
    path, sep, version = body.rpartition("@")
    if sep and version.isdigit():
        return path, int(version)
    return body, 0


class ProjectService:
    def __init__(self, store: ProjectRepository, *, data_dir: Path, max_artifact_bytes: int,
                 max_artifact_files: int) -> None:
        self._store = store
        self._spool = data_dir / "spool"
        self.max_bytes = max_artifact_bytes
        self.max_files = max_artifact_files

    # --- roles ---------------------------------------------------------------------------

    async def roles(self, who: Principal, project: str | None) -> frozenset[str]:
        """The permissions a user holds on everything in a project."""
        if not project:
            return frozenset()
        if who.is_admin:
            return ALL
        record = await self._store.get(project)
        if record is None:
            return frozenset()
        if record.owner == who.name:
            return ALL
        granted: set[str] = set()
        for role in record.members.get(who.name, ()):
            granted |= GRANTS.get(role, frozenset())
        return frozenset(granted)

    async def readable_projects(self, who: Principal) -> tuple[str, ...]:
        return tuple(sorted((await self._store.memberships(who.name)).keys()))

    async def check_put(self, who: Principal, project: str, what: str) -> None:
        """Only members with the right role may put work into a project."""
        record = await self._store.get(project)
        if record is None:
            raise BadRequest(f"project: unknown project {project!r}")
        needed = PUT_JOBS if what == "job" else PUT_BATCHES
        if who.is_admin or record.owner == who.name:
            return
        held = set(record.members.get(who.name, ()))
        if not held & needed:
            plural = {"batch": "batches", "job": "jobs"}.get(what, what)
            raise Forbidden(f"project: user {who.name} may not put {plural} into project {project} "
                            f"(needs one of {sorted(needed)})")

    async def _project(self, who: Principal, name: str, need: str) -> ProjectRecord:
        record = await self._store.get(name)
        if record is None:
            raise NotFound(f"project {name} not found")
        if need not in await self.roles(who, name):
            raise Forbidden(f"project {name}: user {who.name} lacks {need}")
        return record

    # --- projects ------------------------------------------------------------------------

    async def create(self, who: Principal, spec: ProjectSpec) -> ProjectRecord:
        if not spec.name:
            raise BadRequest("name: required")
        members = {u: [r.value for r in roles] for u, roles in spec.members.items()}
        record = await self._store.create(spec.name, spec.description, who.name, members)
        if record is None:
            raise Conflict(f"name: a project named {spec.name} exists already")
        log.info("project.created", project=spec.name, user=who.name)
        return record

    async def get(self, who: Principal, name: str) -> ProjectRecord:
        return await self._project(who, name, "READ")

    async def update(self, who: Principal, name: str, spec: ProjectSpec) -> ProjectRecord:
        record = await self._project(who, name, "ADMIN")
        members = {u: [r.value for r in roles] for u, roles in spec.members.items()}
        changes: list[tuple[str, dict[str, Any]]] = []
        for user in sorted(set(members) - set(record.members)):
            changes.append(("member_added", {"user": user, "roles": members[user]}))
        for user in sorted(set(record.members) - set(members)):
            changes.append(("member_removed", {"user": user}))
        for user in sorted(set(members) & set(record.members)):
            if sorted(members[user]) != sorted(record.members[user]):
                changes.append(("member_changed", {"user": user, "roles": members[user]}))
        if spec.description != record.description:
            changes.append(("description_changed", {}))
        updated = await self._store.update(name, who.name, spec.description, members, changes)
        if updated is None:
            raise NotFound(f"project {name} not found")
        return updated

    async def delete(self, who: Principal, name: str) -> None:
        await self._project(who, name, "ADMIN")
        batches, runs, schedules = await self._store.live_work(name)
        if batches or runs or schedules:
            parts = []
            if batches:
                parts.append(f"live batches: {', '.join(batches)}")
            if runs:
                parts.append(f"active runs: {', '.join(runs)}")
            if schedules:
                parts.append(f"enabled schedules: {', '.join(schedules)}")
            raise Conflict(f"project {name} still has {'; '.join(parts)}")
        await self._store.delete(name)

    async def list_projects(self, who: Principal, offset: int, size: int) -> tuple[int, list[ProjectRecord]]:
        return await self._store.list_projects(None if who.is_admin else who.name, offset, size)

    async def history(self, who: Principal, name: str, offset: int, size: int) -> tuple[int, list[dict[str, Any]]]:
        await self._project(who, name, "READ")
        return await self._store.read_log(name, offset, size)

    async def record(self, project: str | None, actor: str, action: str, detail: dict[str, Any]) -> None:
        if project:
            await self._store.log(project, actor, action, detail)

    # --- artifacts -----------------------------------------------------------------------

    async def upload(self, who: Principal, name: str, body: AsyncIterator[bytes]) -> ArtifactRecord:
        await self._project(who, name, "WRITE")
        self._spool.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._spool) as tmp:
            path = Path(tmp) / "upload.zip"
            too_large = f"artifact: larger than {self.max_bytes} bytes"
            await write_chunks(bounded(body, self.max_bytes, too_large), path)
            files = await asyncio.to_thread(zipcheck.inspect_zip, path, max_files=self.max_files,
                                            max_bytes=self.max_bytes)
            record = await self._store.add_artifact(name, who.name, files, read_chunks(path))
        log.info("project.artifact_uploaded", project=name, version=record.version, user=who.name)
        return record

    async def artifacts(self, who: Principal, name: str) -> list[ArtifactRecord]:
        await self._project(who, name, "READ")
        return await self._store.artifacts(name)

    async def resolve(self, project: str | None, resource: str, *, version: int | None = None,
                      lookup: ArtifactLookup | None = None) -> tuple[str, int]:
        """Check an artifact resource against the project's bundles; (path, version) pinned now. `version`
        overrides the one the resource names (a restart keeps its original's); `lookup` reads the artifact
        row (inside a caller's transaction) instead of the store."""
        if not project:
            raise BadRequest("resource: an artifact: resource needs a project")
        path, named = parse_artifact(resource)
        version = named if version is None else version
        artifact = await (lookup or self._store.artifact)(project, version)
        if artifact is None:
            which = f"version {version}" if version else "any artifact"
            raise BadRequest(f"resource: project {project} has no {which}")
        if path not in artifact.files:
            raise BadRequest(f"resource: {path!r} is not in artifact version {artifact.version} of {project}")
        return path, artifact.version

    async def materialize(self, project: str, resource: str, version: int, workdir: Path) -> str:
        """Unpack the artifact into the batch's working dir; returns the resource's local path."""
        path, pinned = parse_artifact(resource)
        version = version or pinned
        artifact = await self._store.artifact(project, version)
        if artifact is None:
            raise NotFound(f"artifact version {version} of project {project} not found")
        chunks = await self._store.artifact_bytes(project, artifact.version)
        target = workdir / "artifact"

        def unpack() -> None:
            workdir.mkdir(parents=True, exist_ok=True)
            archive = workdir / "artifact.zip"
            with open(archive, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            zipcheck.extract(archive, target, max_bytes=self.max_bytes)
            archive.unlink()

        try:
            await asyncio.to_thread(unpack)
        except zipcheck.ArtifactError as exc:  # the supervisor makes it the batch's diagnostic
            raise zipcheck.ArtifactError(f"{exc.message} (version {artifact.version} of project {project})") from None
        except OSError as exc:
            raise zipcheck.ArtifactError(f"artifact: version {artifact.version} of project {project} cannot be "
                                         f"written into the working dir ({exc})") from None
        return str(target / path)


