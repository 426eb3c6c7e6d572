"""Handlers for /api/v1/slas (DESIGN.md §9, docs/schedules.md)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import principal
from gateway.api.params import text_param
from gateway.api.responses import model_response
from gateway.contract.schedules import Breach, BreachList, Sla, SlaList, SlaSpec
from gateway.keys import SLAS
from gateway.schedules.sla import format_duration
from gateway.store.schedules import BreachRecord, SlaRecord

routes = web.RouteTableDef()


def sla_out(s: SlaRecord) -> Sla:
    return Sla(id=str(s.id), owner=s.owner, job=s.job, schedule=str(s.schedule_id) if s.schedule_id else None,
               batch=str(s.batch_id) if s.batch_id else None, node=s.node, rule=s.rule,
               duration=format_duration(s.duration_ms), duration_ms=s.duration_ms, actions=s.actions,
               webhook=s.webhook, emails=s.emails, description=s.description, breaches=s.breaches,
               create_time=s.created_at)


def breach_out(b: BreachRecord) -> Breach:
    return Breach(id=b.id, sla=str(b.sla_id), rule=b.rule, kind=b.kind, target=b.target, job=b.job,
                  run_id=str(b.run_id) if b.run_id else None, batch_id=str(b.batch_id) if b.batch_id else None,
                  node=b.node, start_time=b.start_at, due_time=b.due_at, breach_time=b.breached_at,
                  instance=b.instance, actions_done=b.actions_done, results=b.results)


@routes.post("/api/v1/slas")
async def create_sla(request: web.Request) -> web.Response:
    spec = await parse_body(request, SlaSpec)
    return model_response(sla_out(await request.app[SLAS].create(principal(request), spec)))


@routes.get("/api/v1/slas")
async def list_slas(request: web.Request) -> web.Response:
    offset, size = page(request)
    q = request.query
    # schedule and batch are ids: given, even empty, they must be one (text_param would drop an empty one).
    total, slas = await request.app[SLAS].list_slas(principal(request), text_param(q, "job"), q.get("schedule"),
                                                    q.get("batch"), offset, size)
    return model_response(SlaList(from_=offset, total=total, slas=[sla_out(s) for s in slas]))


@routes.get("/api/v1/slas/{sla_id}")
async def get_sla(request: web.Request) -> web.Response:
    return model_response(sla_out(await request.app[SLAS].get(principal(request), request.match_info["sla_id"])))


@routes.delete("/api/v1/slas/{sla_id}")
async def delete_sla(request: web.Request) -> web.Response:
    sla_id = request.match_info["sla_id"]
    await request.app[SLAS].delete(principal(request), sla_id)
    return web.json_response({"success": True, "msg": f"SLA {sla_id} deleted"})


@routes.get("/api/v1/slas/{sla_id}/breaches")
async def sla_breaches(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, breaches = await request.app[SLAS].breaches(principal(request), request.match_info["sla_id"], offset, size)
    return model_response(BreachList(from_=offset, total=total, breaches=[breach_out(b) for b in breaches]))
