"""Handlers for /api/v1/slas (DESIGN.md §9, docs/schedules.md)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.params import text_param
from gateway.api.responses import model_response
from gateway.contract.schedules import SlaSpec
from gateway.keys import SLA_VIEWS

routes = web.RouteTableDef()


@routes.post("/api/v1/slas")
async def create_sla(request: web.Request) -> web.Response:
    spec = await parse_body(request, SlaSpec)
    return model_response(await request.app[SLA_VIEWS].create(principal(request), spec))


@routes.get("/api/v1/slas")
async def list_slas(request: web.Request) -> web.Response:
    offset, size = page(request)
    q = request.query
    # schedule and batch are ids: given, even empty, they must be one (text_param would drop an empty one).
    return model_response(await request.app[SLA_VIEWS].list_slas(principal(request), text_param(q, "job"),
                                                                 q.get("schedule"), q.get("batch"), offset, size))


@routes.get("/api/v1/slas/{sla_id}")
async def get_sla(request: web.Request) -> web.Response:
    return model_response(await request.app[SLA_VIEWS].get(principal(request), request.match_info["sla_id"]))


@routes.delete("/api/v1/slas/{sla_id}")
async def delete_sla(request: web.Request) -> web.Response:
    sla_id = request.match_info["sla_id"]
    await request.app[SLA_VIEWS].delete(principal(request), sla_id)
    return web.json_response({"success": True, "msg": f"SLA {sla_id} deleted"})


@routes.get("/api/v1/slas/{sla_id}/breaches")
async def sla_breaches(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[SLA_VIEWS].breaches(principal(request), request.match_info["sla_id"],
                                                                offset, size))
