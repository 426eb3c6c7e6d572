"""Handlers for /api/v1/projects: projects, members, artifacts and the project log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.responses import model_response
from gateway.contract.projects import (
    Artifact,
    ArtifactList,
    Project,
    ProjectList,
    ProjectLog,
    ProjectLogEntry,
    ProjectSpec,
)
from gateway.errors import BadRequest
from gateway.keys import PROJECTS
from gateway.store.projects import ArtifactRecord, ProjectRecord

routes = web.RouteTableDef()




def project_out(record: ProjectRecord) -> Project:
    return Project(name=record.name, description=record.description, owner=record.owner, members=record.members,
                   create_time=record.created_at, update_time=record.updated_at)


def artifact_out(record: ArtifactRecord) -> Artifact:
    return Artifact(project=record.project, version=record.version, size=record.size, digest=record.digest,
                    files=record.files, uploader=record.uploader, create_time=record.created_at)


@routes.post("/api/v1/projects")
async def create_project(request: web.Request) -> web.Response:
    spec = await parse_body(request, ProjectSpec)
    return model_response(project_out(await request.app[PROJECTS].create(principal(request), spec)))


@routes.get("/api/v1/projects")
async def list_projects(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, records = await request.app[PROJECTS].list_projects(principal(request), offset, size)
    return model_response(ProjectList(from_=offset, total=total, projects=[project_out(r) for r in records]))


@routes.get("/api/v1/projects/{name}")
async def get_project(request: web.Request) -> web.Response:
    return model_response(project_out(await request.app[PROJECTS].get(principal(request), request.match_info["name"])))


@routes.put("/api/v1/projects/{name}")
async def update_project(request: web.Request) -> web.Response:
    record = await request.app[PROJECTS].update(principal(request), request.match_info["name"],
                                                await parse_body(request, ProjectSpec))
    return model_response(project_out(record))


@routes.delete("/api/v1/projects/{name}")
async def delete_project(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[PROJECTS].delete(principal(request), name)
    return web.json_response({"success": True, "msg": f"project {name} deleted"})


@routes.get("/api/v1/projects/{name}/log")
async def project_log(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, entries = await request.app[PROJECTS].history(principal(request), request.match_info["name"], offset,
                                                         size)
    return model_response(ProjectLog(from_=offset, total=total, entries=[ProjectLogEntry(**e) for e in entries]))


@routes.get("/api/v1/projects/{name}/artifacts")
async def list_artifacts(request: web.Request) -> web.Response:
    records = await request.app[PROJECTS].artifacts(principal(request), request.match_info["name"])
    return model_response(ArtifactList(artifacts=[artifact_out(r) for r in records]))


@routes.post("/api/v1/projects/{name}/artifacts")
async def upload_artifact(request: web.Request) -> web.Response:
    """The zip as the raw body (application/zip), or as the multipart part `file`."""
    record = await request.app[PROJECTS].upload(principal(request), request.match_info["name"], _zip_body(request))
    return model_response(artifact_out(record))


async def _zip_body(request: web.Request) -> AsyncIterator[bytes]:
    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
        except ValueError as exc:
            raise BadRequest(f"multipart: {exc}") from None
        while True:
            part = await reader.next()
            if part is None:
                raise BadRequest("file: missing multipart part with the zip")
            if isinstance(part, BodyPartReader) and part.name == "file":
                while chunk := await part.read_chunk(1 << 16):
                    yield chunk
                return
    got = False
    async for chunk in request.content.iter_chunked(1 << 16):
        got = True
        yield chunk
    if not got:
        raise BadRequest("body: empty; send the zip as the body or as the multipart part 'file'")
