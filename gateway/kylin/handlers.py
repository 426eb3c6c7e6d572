"""Apache Kylin's job API (docs/kylin.md) under /kylin/api/jobs: Kylin 5's list and bulk status change,
and Kylin 3/4's v2 calls on one job. This module parses Kylin's parameters and writes Kylin's envelope;
KylinViews (gateway/kylin/views.py) answers through the batch, control and job services, so authorization
and audit are theirs."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.api.bodies import read_body, validate_body
from gateway.api.middleware import Dialect, principal
from gateway.api.params import MAX_PAGE, bool_param, int_param, text_param
from gateway.contract.batches import BatchQuery, BatchSort, BatchState
from gateway.errors import BadRequest
from gateway.keys import BATCH_VIEWS, KYLIN_VIEWS
from gateway.kylin.models import (
    BATCH_STATES,
    BULK_ACTIONS,
    STATUS_CODES,
    V2_MEDIA,
    JobStatusRequest,
    KylinJob,
    KylinStatus,
    V2JobList,
    V5JobList,
    job_uuid,
    kylin_error,
    kylin_response,
    parse_statuses,
)

PREFIX = "/kylin/api/jobs"
DAY_MS = 86_400_000
# timeFilter / time_filter: the last day, week, month, year, or everything.
TIME_FILTERS = {0: DAY_MS, 1: 7 * DAY_MS, 2: 31 * DAY_MS, 3: 365 * DAY_MS, 4: 0}
# Kylin's sort fields, as batchgate can sort: by creation (Kylin's default, last_modified, is the order
# in which jobs were last touched; batchgate keeps no index on that), by name, or by duration.
SORTS = {
    "last_modified": BatchSort.CREATE_TIME, "last_modify": BatchSort.CREATE_TIME, "create_time": BatchSort.CREATE_TIME,
    "job_name": BatchSort.NAME, "target_subject": BatchSort.NAME, "cube_name": BatchSort.NAME,
    "total_duration": BatchSort.DURATION, "duration": BatchSort.DURATION,
}


def owns(path: str) -> bool:
    return path == "/kylin" or path.startswith("/kylin/")


DIALECT = Dialect(name="kylin", owns=owns, error=kylin_error)


# --- one job (Kylin 3/4, v2) ---------------------------------------------------------------------


def _job(job: KylinJob) -> web.Response:
    return kylin_response(job.model_dump(mode="json", by_alias=True))


async def get_job(request: web.Request) -> web.Response:
    return _job(await request.app[KYLIN_VIEWS].job(principal(request), request.match_info["job_id"]))


async def resume(request: web.Request) -> web.Response:
    """A paused job resumes; an errored one runs again from where it failed (KylinViews.resume)."""
    return _job(await request.app[KYLIN_VIEWS].resume(principal(request), request.match_info["job_id"]))


async def cancel(request: web.Request) -> web.Response:
    """Kylin's "discard": the batch is killed, or the run canceled."""
    return _job(await request.app[KYLIN_VIEWS].cancel(principal(request), request.match_info["job_id"]))


async def pause(request: web.Request) -> web.Response:
    return _job(await request.app[KYLIN_VIEWS].pause(principal(request), request.match_info["job_id"]))


async def drop(request: web.Request) -> web.Response:
    """The job's record, log and files are removed; the answer is the job as it was."""
    return _job(await request.app[KYLIN_VIEWS].drop(principal(request), request.match_info["job_id"]))


async def step_output(request: web.Request) -> web.Response:
    """A step's output: the tail of its batch's log (for a run, the node's batch)."""
    output = await request.app[KYLIN_VIEWS].step_output(principal(request), request.match_info["job_id"],
                                                          request.match_info["step_id"])
    return kylin_response(output.model_dump(mode="json", by_alias=True))


# --- the list (Kylin 5, and the v2 list) ---------------------------------------------------------


def _is_v2(request: web.Request) -> bool:
    """Kylin 3/4 clients ask for the v2 media type; without it, the v2 parameter names tell."""
    if V2_MEDIA in request.headers.get("Accept", ""):
        return True
    return "time_filter" not in request.query and "timeFilter" in request.query


def _states(statuses: list[KylinStatus]) -> tuple[BatchState, ...] | None:
    """The batch states of a status filter: () is no filter, None matches nothing (only NEW)."""
    if not statuses:
        return ()
    states = tuple(sorted({s for status in statuses for s in BATCH_STATES[status]}))
    return states or None


def _v2_statuses(values: list[str]) -> list[KylinStatus]:
    out: list[KylinStatus] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                out.append(STATUS_CODES[int(part)])
            except (ValueError, KeyError):
                raise BadRequest(f"status: {part!r} is not a job status code "
                                 f"({', '.join(f'{s.value}: {c}' for c, s in STATUS_CODES.items())})") from None
    return out


def _sort(value: str | None, field: str) -> BatchSort:
    if not value:
        return BatchSort.CREATE_TIME
    sort = SORTS.get(value.lower())
    if sort is None:
        raise BadRequest(f"{field}: cannot sort by {value!r} here; use one of {', '.join(SORTS)}")
    return sort


async def list_jobs(request: web.Request) -> web.Response:
    query = request.query
    v2 = _is_v2(request)
    # Both spellings are checked, whichever the request uses: a bad value is a 400 under either name.
    periods = {name: int_param(query, name, 4, minimum=0, maximum=4) for name in ("time_filter", "timeFilter")}
    pages = {name: int_param(query, name, 0, minimum=0, maximum=2**31) for name in ("page_offset", "pageOffset")}
    sizes = {name: int_param(query, name, 10, minimum=1, maximum=MAX_PAGE) for name in ("page_size", "pageSize")}
    sorts = {name: _sort(query.get(name), name) for name in ("sort_by", "sortby")}
    projects = {name: text_param(query, name) for name in ("project", "projectName")}
    v2_statuses = _v2_statuses(query.getall("status", []))
    try:
        v5_statuses = parse_statuses((query.get("statuses") or "").split(","), "statuses")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    name, key = text_param(query, "jobName"), text_param(query, "key")
    time_name, offset_name, size_name, sort_name, project_name = (
        ("timeFilter", "pageOffset", "pageSize", "sortby", "projectName") if v2
        else ("time_filter", "page_offset", "page_size", "sort_by", "project"))
    if time_name not in query:
        raise BadRequest(f"{time_name}: required (0 day, 1 week, 2 month, 3 year, 4 all)")
    period = TIME_FILTERS[periods[time_name]]
    page, size = pages[offset_name], sizes[size_name]
    states = _states(v2_statuses if v2 else v5_statuses)
    # Kylin's page offset is a page number: the page starts at offset * size.
    batches = BatchQuery(
        states=states or (), name=name if v2 else None, key=None if v2 else key, project=projects[project_name],
        create_time=int(time.time() * 1000) - period if period else 0, offset=page * size, size=size,
        sort=sorts[sort_name], desc=bool_param(query, "reverse", True),
    )
    total, jobs = ((0, []) if states is None
                   else await request.app[KYLIN_VIEWS].list_jobs(principal(request), batches))
    data = V2JobList(size=total, jobs=jobs) if v2 else V5JobList(value=jobs, offset=page, limit=size,
                                                                   total_size=total)
    return kylin_response(data.model_dump(mode="json", by_alias=True))


async def change_status(request: web.Request) -> web.Response:
    """PUT /kylin/api/jobs/status: one action on jobs by id, or on a project's jobs, filtered by status."""
    body = validate_body(await read_body(request), JobStatusRequest)
    try:
        statuses = parse_statuses(body.statuses, "statuses")
    except ValueError as exc:
        raise BadRequest(f"body: invalid JSON ({exc})") from None
    if not body.job_ids and not body.project:
        raise BadRequest("project and job_ids cannot be empty at the same time")
    ids = [str(job_uuid(i)) for i in body.job_ids]
    states = _states(statuses)
    if states is None:
        return kylin_response("")
    batches = BatchQuery(project=body.project, states=states) if body.project or states else None
    result = await request.app[BATCH_VIEWS].bulk(principal(request), BULK_ACTIONS[body.action], ids, batches)
    if result.failed:
        failed = [f.model_dump(mode="json") for f in result.failed]
        detail = {"matched": result.matched, "succeeded": result.succeeded, "failed": failed}
        first = "; ".join(f"{f.id}: {f.message}" for f in result.failed[:3])
        return kylin_error(409, f"{len(result.failed)} of {result.matched} jobs could not be changed "
                                f"({body.action.value}): {first}", detail)
    return kylin_response("")


async def status_not_allowed(request: web.Request) -> web.Response:
    """Only PUT exists at /status; without this, GET would take 'status' for a job id."""
    raise web.HTTPMethodNotAllowed(request.method, ["PUT"])


def kylin_routes() -> list[web.RouteDef]:
    one = f"{PREFIX}/{{job_id}}"
    return [
        web.get(PREFIX, list_jobs),
        web.put(f"{PREFIX}/status", change_status),
        web.get(f"{PREFIX}/status", status_not_allowed),
        web.get(one, get_job),
        web.put(f"{one}/resume", resume),
        web.put(f"{one}/cancel", cancel),
        web.put(f"{one}/pause", pause),
        web.delete(f"{one}/drop", drop),
        web.get(f"{one}/steps/{{step_id}}/output", step_output),
    ]
