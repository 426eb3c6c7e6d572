"""Handlers for /api/v1/schedules (DESIGN.md §9, docs/schedules.md)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.params import text_param
from gateway.api.responses import model_response
from gateway.contract.schedules import ScheduleSpec
from gateway.keys import SCHEDULE_VIEWS

routes = web.RouteTableDef()


@routes.post("/api/v1/schedules")
async def create_schedule(request: web.Request) -> web.Response:
    spec = await parse_body(request, ScheduleSpec)
    return model_response(await request.app[SCHEDULE_VIEWS].create(principal(request), spec))


@routes.get("/api/v1/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[SCHEDULE_VIEWS].list_schedules(
        principal(request), text_param(request.query, "job"), offset, size))


@routes.get("/api/v1/schedules/{schedule_id}")
async def get_schedule(request: web.Request) -> web.Response:
    return model_response(await request.app[SCHEDULE_VIEWS].get(principal(request),
                                                                 request.match_info["schedule_id"]))


@routes.put("/api/v1/schedules/{schedule_id}")
async def update_schedule(request: web.Request) -> web.Response:
    spec = await parse_body(request, ScheduleSpec)
    return model_response(await request.app[SCHEDULE_VIEWS].update(principal(request),
                                                                    request.match_info["schedule_id"], spec))


@routes.delete("/api/v1/schedules/{schedule_id}")
async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = request.match_info["schedule_id"]
    await request.app[SCHEDULE_VIEWS].delete(principal(request), schedule_id)
    return web.json_response({"success": True, "msg": f"schedule {schedule_id} deleted"})


@routes.get("/api/v1/schedules/{schedule_id}/ticks")
async def schedule_ticks(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[SCHEDULE_VIEWS].ticks(principal(request),
                                                                  request.match_info["schedule_id"], offset, size))
