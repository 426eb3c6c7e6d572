"""Handlers for job control on batches: pause, resume, restart, drop, bulk actions, details."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import read_body, validate_body
from gateway.api.middleware import principal
from gateway.api.params import batch_query
from gateway.api.responses import model_response
from gateway.contract.batches import BulkRequest
from gateway.errors import BadRequest
from gateway.keys import BATCH_VIEWS, SETTINGS

routes = web.RouteTableDef()


@routes.post("/api/v1/batches/{batch_id}/pause")
async def pause(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].pause(principal(request), request.match_info["batch_id"]))


@routes.post("/api/v1/batches/{batch_id}/resume")
async def resume(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].resume(principal(request), request.match_info["batch_id"]))


@routes.post("/api/v1/batches/{batch_id}/restart")
async def restart(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].restart(principal(request), request.match_info["batch_id"]))


@routes.delete("/api/v1/batches/{batch_id}/drop")
async def drop(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].drop(principal(request), request.match_info["batch_id"]))


@routes.get("/api/v1/batches/status")
@routes.post("/api/v1/batches/status")
@routes.delete("/api/v1/batches/status")
async def status_not_allowed(request: web.Request) -> web.Response:
    """Only PUT exists here; without these, GET or DELETE would take 'status' for a batch id."""
    raise web.HTTPMethodNotAllowed(request.method, ["PUT"])


@routes.put("/api/v1/batches/status")
async def bulk(request: web.Request) -> web.Response:
    body = validate_body(await read_body(request), BulkRequest)
    query = None
    if body.filter is not None or body.project:
        fields = {k: str(v) for k, v in (body.filter.model_dump(by_alias=True, exclude_none=True)
                                         if body.filter else {}).items()}
        if body.project:
            fields["project"] = body.project
        try:
            query = batch_query(fields, request.app[SETTINGS].batch_types)
        except BadRequest as exc:
            raise BadRequest(f"filter.{exc.message}") from None
    return model_response(await request.app[BATCH_VIEWS].bulk(principal(request), body.action, body.ids or [],
                                                              query))


@routes.get("/api/v1/batches/{batch_id}/details")
async def details(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].details(principal(request), request.match_info["batch_id"]))
