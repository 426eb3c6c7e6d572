"""Handlers for /api/v1/schedules (DESIGN.md §9, docs/schedules.md)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.params import text_param
from gateway.api.responses import model_response
from gateway.contract.schedules import Schedule, ScheduleList, ScheduleSpec, TickList, TickOut
from gateway.keys import SCHEDULES
from gateway.schedules.service import ScheduleService
from gateway.store.schedules import ScheduleRecord, TickRecord

routes = web.RouteTableDef()
M = TypeVar("M", bound=BaseModel)


def tick_out(tick: TickRecord) -> TickOut:
    return TickOut(fire_time=tick.fire_time, outcome=tick.outcome, reason=tick.reason,
                   run_id=str(tick.run_id) if tick.run_id else None, instance=tick.instance, time=tick.updated_at)


def schedule_out(s: ScheduleRecord, last: TickRecord | None) -> Schedule:
    return Schedule(
        id=str(s.id), job=s.job, owner=s.owner, description=s.description, cron=s.cron, every=s.every,
        timezone=s.timezone, variables=s.variables, concurrency=s.concurrency, catchup=s.catchup,
        catchup_bound=s.catchup_bound, start_at=s.start_at, end_at=s.end_at, enabled=s.enabled,
        next_fire_times=ScheduleService.next_fire_times(s), last_fire=tick_out(last) if last else None,
        create_time=s.created_at, update_time=s.updated_at,
    )


async def _one(request: web.Request, schedule: ScheduleRecord) -> web.Response:
    last = await request.app[SCHEDULES].last_ticks([schedule])
    return model_response(schedule_out(schedule, last.get(schedule.id)))


@routes.post("/api/v1/schedules")
async def create_schedule(request: web.Request) -> web.Response:
    spec = await parse_body(request, ScheduleSpec)
    return await _one(request, await request.app[SCHEDULES].create(principal(request), spec))


@routes.get("/api/v1/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    offset, size = page(request)
    service = request.app[SCHEDULES]
    total, schedules = await service.list_schedules(principal(request), text_param(request.query, "job"),
                                                    offset, size)
    last = await service.last_ticks(schedules)
    return model_response(ScheduleList(from_=offset, total=total,
                                       schedules=[schedule_out(s, last.get(s.id)) for s in schedules]))


@routes.get("/api/v1/schedules/{schedule_id}")
async def get_schedule(request: web.Request) -> web.Response:
    return await _one(request, await request.app[SCHEDULES].get(principal(request),
                                                                 request.match_info["schedule_id"]))


@routes.put("/api/v1/schedules/{schedule_id}")
async def update_schedule(request: web.Request) -> web.Response:
    spec = await parse_body(request, ScheduleSpec)
    schedule = await request.app[SCHEDULES].update(principal(request), request.match_info["schedule_id"], spec)
    return await _one(request, schedule)


@routes.delete("/api/v1/schedules/{schedule_id}")
async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = request.match_info["schedule_id"]
    await request.app[SCHEDULES].delete(principal(request), schedule_id)
    return web.json_response({"success": True, "msg": f"schedule {schedule_id} deleted"})


@routes.get("/api/v1/schedules/{schedule_id}/ticks")
async def schedule_ticks(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, ticks = await request.app[SCHEDULES].ticks(principal(request), request.match_info["schedule_id"],
                                                      offset, size)
    return model_response(TickList(from_=offset, total=total, ticks=[tick_out(t) for t in ticks]))
