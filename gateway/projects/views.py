"""ProjectViews: the projects REST API's answers. It asks the ProjectService (which checks roles and
unpacks artifacts) and returns the contract's models, so that the handlers see no store record."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.contract.projects import (
    Artifact,
    ArtifactList,
    Project,
    ProjectList,
    ProjectLog,
    ProjectLogEntry,
    ProjectSpec,
)
from gateway.projects.service import ProjectService
from gateway.security.auth import Principal
from gateway.store.projects import ArtifactRecord, ProjectRecord


def project_view(record: ProjectRecord) -> Project:
    return Project(name=record.name, description=record.description, owner=record.owner, members=record.members,
                   create_time=record.created_at, update_time=record.updated_at)


def artifact_view(record: ArtifactRecord) -> Artifact:
    return Artifact(project=record.project, version=record.version, size=record.size, digest=record.digest,
                    files=record.files, uploader=record.uploader, create_time=record.created_at)


class ProjectViews:
    def __init__(self, projects: ProjectService) -> None:
        self._projects = projects

    async def create(self, who: Principal, spec: ProjectSpec) -> Project:
        return project_view(await self._projects.create(who, spec))

    async def get(self, who: Principal, name: str) -> Project:
        return project_view(await self._projects.get(who, name))

    async def update(self, who: Principal, name: str, spec: ProjectSpec) -> Project:
        return project_view(await self._projects.update(who, name, spec))

    async def delete(self, who: Principal, name: str) -> None:
        await self._projects.delete(who, name)

    async def list_projects(self, who: Principal, offset: int, size: int) -> ProjectList:
        total, records = await self._projects.list_projects(who, offset, size)
        return ProjectList(from_=offset, total=total, projects=[project_view(r) for r in records])

    async def history(self, who: Principal, name: str, offset: int, size: int) -> ProjectLog:
        total, entries = await self._projects.history(who, name, offset, size)
        return ProjectLog(from_=offset, total=total, entries=[ProjectLogEntry(**e) for e in entries])

    async def artifacts(self, who: Principal, name: str) -> ArtifactList:
        return ArtifactList(artifacts=[artifact_view(r) for r in await self._projects.artifacts(who, name)])

    async def upload(self, who: Principal, name: str, body: AsyncIterator[bytes]) -> Artifact:
        return artifact_view(await self._projects.upload(who, name, body))
