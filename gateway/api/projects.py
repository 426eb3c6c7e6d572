"""Handlers for /api/v1/projects: projects, members, artifacts and the project log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.responses import model_response
from gateway.contract.projects import ProjectSpec
from gateway.errors import BadRequest
from gateway.keys import PROJECT_VIEWS

routes = web.RouteTableDef()


@routes.post("/api/v1/projects")
async def create_project(request: web.Request) -> web.Response:
    spec = await parse_body(request, ProjectSpec)
    return model_response(await request.app[PROJECT_VIEWS].create(principal(request), spec))


@routes.get("/api/v1/projects")
async def list_projects(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[PROJECT_VIEWS].list_projects(principal(request), offset, size))


@routes.get("/api/v1/projects/{name}")
async def get_project(request: web.Request) -> web.Response:
    return model_response(await request.app[PROJECT_VIEWS].get(principal(request), request.match_info["name"]))


@routes.put("/api/v1/projects/{name}")
async def update_project(request: web.Request) -> web.Response:
    return model_response(await request.app[PROJECT_VIEWS].update(principal(request), request.match_info["name"],
                                                                   await parse_body(request, ProjectSpec)))


@routes.delete("/api/v1/projects/{name}")
async def delete_project(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[PROJECT_VIEWS].delete(principal(request), name)
    return web.json_response({"success": True, "msg": f"project {name} deleted"})


@routes.get("/api/v1/projects/{name}/log")
async def project_log(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[PROJECT_VIEWS].history(principal(request), request.match_info["name"],
                                                                    offset, size))


@routes.get("/api/v1/projects/{name}/artifacts")
async def list_artifacts(request: web.Request) -> web.Response:
    return model_response(await request.app[PROJECT_VIEWS].artifacts(principal(request), request.match_info["name"]))


@routes.post("/api/v1/projects/{name}/artifacts")
async def upload_artifact(request: web.Request) -> web.Response:
    """The zip as the raw body (application/zip), or as the multipart part `file`."""
    return model_response(await request.app[PROJECT_VIEWS].upload(principal(request), request.match_info["name"],
                                                                   _zip_body(request)))


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
