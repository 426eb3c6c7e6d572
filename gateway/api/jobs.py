"""Handlers for /api/v1/jobs and /api/v1/runs (DESIGN.md §8)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from gateway.api.bodies import page, parse_body
from gateway.api.middleware import open_stream, principal
from gateway.api.params import LAST_EVENT_ID, MAX_PAGE, int_param, text_param
from gateway.api.responses import model_response
from gateway.contract.jobs import JOB_NAME, JobSpec, RetryRequest, RunState, TriggerRequest
from gateway.errors import BadRequest
from gateway.keys import JOB_VIEWS

routes = web.RouteTableDef()
M = TypeVar("M", bound=BaseModel)
RUN_STATES = tuple(state.value for state in RunState)


def _name(request: web.Request) -> str:
    """The job name from the path; one that no job can have is a 400, not an empty answer."""
    name = request.match_info["name"]
    if not JOB_NAME.match(name):
        raise BadRequest(f"name: {name!r} is not a valid job name")
    return name


@routes.post("/api/v1/jobs")
async def create_job(request: web.Request) -> web.Response:
    return model_response(await request.app[JOB_VIEWS].create(principal(request), await parse_body(request, JobSpec)))


@routes.get("/api/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[JOB_VIEWS].list_jobs(
        principal(request), text_param(request.query, "owner"), text_param(request.query, "project"), offset, size))


@routes.get("/api/v1/jobs/{name}")
async def get_job(request: web.Request) -> web.Response:
    return model_response(await request.app[JOB_VIEWS].job(principal(request), _name(request)))


@routes.put("/api/v1/jobs/{name}")
async def update_job(request: web.Request) -> web.Response:
    return model_response(await request.app[JOB_VIEWS].update(principal(request), _name(request),
                                                              await parse_body(request, JobSpec)))


@routes.delete("/api/v1/jobs/{name}")
async def delete_job(request: web.Request) -> web.Response:
    name = _name(request)
    await request.app[JOB_VIEWS].delete(principal(request), name)
    return web.json_response({"success": True, "msg": f"job {name} deleted"})


@routes.get("/api/v1/jobs/{name}/log")
async def job_history(request: web.Request) -> web.Response:
    offset, size = page(request)
    return model_response(await request.app[JOB_VIEWS].history(principal(request), _name(request), offset, size))


@routes.post("/api/v1/jobs/{name}/runs")
async def trigger(request: web.Request) -> web.Response:
    body = await parse_body(request, TriggerRequest, optional=True)
    return model_response(await request.app[JOB_VIEWS].trigger(
        principal(request), _name(request), body.variables, body.disabled,
        body.failure_action.value if body.failure_action else None))


async def _runs(request: web.Request, job: str | None) -> web.Response:
    offset, size = page(request)
    raw_state = text_param(request.query, "state")
    states = [s.strip().upper() for s in raw_state.split(",")] if raw_state else []
    bad = [s for s in states if s not in RUN_STATES]
    if bad:
        raise BadRequest(f"state: unknown run state {bad[0]!r}; known: {', '.join(RUN_STATES)}")
    return model_response(await request.app[JOB_VIEWS].list_runs(
        principal(request), job, states, text_param(request.query, "project"), offset, size))


@routes.get("/api/v1/jobs/{name}/runs")
async def job_runs(request: web.Request) -> web.Response:
    return await _runs(request, _name(request))


@routes.get("/api/v1/runs")
async def all_runs(request: web.Request) -> web.Response:
    return await _runs(request, text_param(request.query, "job"))


@routes.get("/api/v1/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    since = int_param(request.query, "updatedSince", 0, minimum=0, maximum=2**62)
    return model_response(await request.app[JOB_VIEWS].run(principal(request), request.match_info["run_id"], since))


async def _control(request: web.Request, action: str) -> web.Response:
    variables: dict[str, str] = {}
    if action == "retry":
        variables = (await parse_body(request, RetryRequest, optional=True)).variables
    return model_response(await request.app[JOB_VIEWS].control(principal(request), request.match_info["run_id"],
                                                               action, variables))


@routes.post("/api/v1/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    return await _control(request, "cancel")


@routes.post("/api/v1/runs/{run_id}/pause")
async def pause_run(request: web.Request) -> web.Response:
    return await _control(request, "pause")


@routes.post("/api/v1/runs/{run_id}/resume")
async def resume_run(request: web.Request) -> web.Response:
    return await _control(request, "resume")


@routes.post("/api/v1/runs/{run_id}/retry")
async def retry_run(request: web.Request) -> web.Response:
    return await _control(request, "retry")


@routes.get("/api/v1/runs/{run_id}/nodes/{node_id}/log")
async def node_log(request: web.Request) -> web.Response:
    start = int_param(request.query, "from", 0, minimum=0, maximum=2**62)
    size = int_param(request.query, "size", 100, minimum=0, maximum=MAX_PAGE)
    rows = await request.app[JOB_VIEWS].node_log(principal(request), request.match_info["run_id"],
                                             request.match_info["node_id"], start, size)
    return web.json_response({"logRowSet": rows, "rowCount": len(rows)})


@routes.get("/api/v1/runs/{run_id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `run` or `node` event per change (id = event number), then `end`."""
    views, run_id = request.app[JOB_VIEWS], request.match_info["run_id"]
    events_after = await views.events(principal(request), run_id)
    after = int_param(request.headers, LAST_EVENT_ID, 0, minimum=0, maximum=2**62)
    response = await open_stream(request)
    async for events in events_after(after):
        if not events:
            await response.write(b": keepalive\n\n")
            continue
        out: list[str] = []
        for event in events:
            kind = "node" if event["node_id"] else "run"
            data: dict[str, Any] = {"time": event["at"], "state": event["state"]}
            if event["node_id"]:
                data["node"] = event["node_id"]
            out.append(f"id: {event['id']}\nevent: {kind}\ndata: {json.dumps(data)}\n\n")
        await response.write("".join(out).encode())
    body = (await views.run(principal(request), run_id)).model_dump(mode="json", by_alias=True)
    await response.write(f"event: end\ndata: {json.dumps(body)}\n\n".encode())
    await response.write_eof()
    return response
