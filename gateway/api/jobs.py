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
from gateway.contract.jobs import (
    JOB_NAME,
    Job,
    JobList,
    JobLog,
    JobLogEntry,
    JobSpec,
    NodeOut,
    RetryRequest,
    Run,
    RunList,
    RunNode,
    RunState,
    TriggerRequest,
)
from gateway.errors import BadRequest
from gateway.keys import JOBS
from gateway.store.jobs import JobRecord, NodeRecord, RunRecord

routes = web.RouteTableDef()
M = TypeVar("M", bound=BaseModel)
RUN_STATES = tuple(state.value for state in RunState)


def job_out(job: JobRecord) -> Job:
    nodes = job.definition.get("nodes", [])
    children: dict[str, list[str]] = {n["id"]: [] for n in nodes}
    for node in nodes:
        for dep in node.get("dependsOn", []):
            children[dep].append(node["id"])
    return Job(
        name=job.name, owner=job.owner, version=job.version, description=job.description,
        nodes=[NodeOut(id=n["id"], request=n["request"], depends_on=n.get("dependsOn", []),
                       in_=n.get("dependsOn", []), out=children[n["id"]]) for n in nodes],
        variables=job.definition.get("variables", {}), failure_action=job.definition.get("failureAction", ""),
        permissions=job.permissions, project=job.project, created_at=job.created_at, updated_at=job.updated_at,
    )


def run_out(run: RunRecord, nodes: list[NodeRecord]) -> Run:
    return Run(
        id=str(run.id), job=run.job, version=run.version, state=run.state, trigger=run.trigger,
        submit_user=run.submit_user, variables=run.variables, failure_action=run.failure_action,
        attempt=run.attempt, project=run.project,
        schedule_id=str(run.schedule_id) if run.schedule_id else None, fire_time=run.fire_time,
        create_time=run.create_time, start_time=run.start_time, end_time=run.end_time,
        update_time=run.update_time,
        nodes=[RunNode(id=n.node_id, state=n.state, batch_id=str(n.batch_id) if n.batch_id else None,
                       in_=n.depends_on, attempt=n.attempt, start_time=n.start_time, end_time=n.end_time,
                       update_time=n.update_time) for n in nodes],
    )


def _name(request: web.Request) -> str:
    """The job name from the path; one that no job can have is a 400, not an empty answer."""
    name = request.match_info["name"]
    if not JOB_NAME.match(name):
        raise BadRequest(f"name: {name!r} is not a valid job name")
    return name


@routes.post("/api/v1/jobs")
async def create_job(request: web.Request) -> web.Response:
    job = await request.app[JOBS].create(principal(request), await parse_body(request, JobSpec))
    return model_response(job_out(job))


@routes.get("/api/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, jobs = await request.app[JOBS].list_jobs(
        principal(request), text_param(request.query, "owner"), text_param(request.query, "project"), offset, size)
    return model_response(JobList(from_=offset, total=total, jobs=[job_out(j) for j in jobs]))


@routes.get("/api/v1/jobs/{name}")
async def get_job(request: web.Request) -> web.Response:
    return model_response(job_out(await request.app[JOBS].job(principal(request), _name(request))))


@routes.put("/api/v1/jobs/{name}")
async def update_job(request: web.Request) -> web.Response:
    job = await request.app[JOBS].update(principal(request), _name(request),
                                         await parse_body(request, JobSpec))
    return model_response(job_out(job))


@routes.delete("/api/v1/jobs/{name}")
async def delete_job(request: web.Request) -> web.Response:
    name = _name(request)
    await request.app[JOBS].delete(principal(request), name)
    return web.json_response({"success": True, "msg": f"job {name} deleted"})


@routes.get("/api/v1/jobs/{name}/log")
async def job_history(request: web.Request) -> web.Response:
    offset, size = page(request)
    total, entries = await request.app[JOBS].history(principal(request), _name(request), offset, size)
    return model_response(JobLog(from_=offset, total=total, entries=[JobLogEntry(**e) for e in entries]))


@routes.post("/api/v1/jobs/{name}/runs")
async def trigger(request: web.Request) -> web.Response:
    body = await parse_body(request, TriggerRequest, optional=True)
    service = request.app[JOBS]
    run = await service.trigger(principal(request), _name(request), body.variables, body.disabled,
                                body.failure_action.value if body.failure_action else None)
    return model_response(run_out(run, await service.nodes(run)))


async def _runs(request: web.Request, job: str | None) -> web.Response:
    offset, size = page(request)
    raw_state = text_param(request.query, "state")
    states = [s.strip().upper() for s in raw_state.split(",")] if raw_state else []
    bad = [s for s in states if s not in RUN_STATES]
    if bad:
        raise BadRequest(f"state: unknown run state {bad[0]!r}; known: {', '.join(RUN_STATES)}")
    service = request.app[JOBS]
    total, runs = await service.list_runs(principal(request), job, states, text_param(request.query, "project"),
                                          offset, size)
    return model_response(RunList(from_=offset, total=total, runs=[run_out(r, await service.nodes(r)) for r in runs]))


@routes.get("/api/v1/jobs/{name}/runs")
async def job_runs(request: web.Request) -> web.Response:
    return await _runs(request, _name(request))


@routes.get("/api/v1/runs")
async def all_runs(request: web.Request) -> web.Response:
    return await _runs(request, text_param(request.query, "job"))


@routes.get("/api/v1/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    since = int_param(request.query, "updatedSince", 0, minimum=0, maximum=2**62)
    service = request.app[JOBS]
    run = await service.run(principal(request), request.match_info["run_id"])
    return model_response(run_out(run, await service.nodes(run, since)))


async def _control(request: web.Request, action: str) -> web.Response:
    variables: dict[str, str] = {}
    if action == "retry":
        variables = (await parse_body(request, RetryRequest, optional=True)).variables
    service = request.app[JOBS]
    run = await service.control(principal(request), request.match_info["run_id"], action, variables)
    return model_response(run_out(run, await service.nodes(run)))


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
    rows = await request.app[JOBS].node_log(principal(request), request.match_info["run_id"],
                                             request.match_info["node_id"], start, size)
    return web.json_response({"logRowSet": rows, "rowCount": len(rows)})


@routes.get("/api/v1/runs/{run_id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `run` or `node` event per change (id = event number), then `end`."""
    service = request.app[JOBS]
    run = await service.run(principal(request), request.match_info["run_id"])
    after = int_param(request.headers, LAST_EVENT_ID, 0, minimum=0, maximum=2**62)
    response = await open_stream(request)
    async for events in service.events(run, after):
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
    final = await service.run(principal(request), str(run.id))
    body = run_out(final, await service.nodes(final)).model_dump(mode="json", by_alias=True)
    await response.write(f"event: end\ndata: {json.dumps(body)}\n\n".encode())
    await response.write_eof()
    return response
