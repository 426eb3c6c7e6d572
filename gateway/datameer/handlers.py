"""Datameer X's job commands (docs/datameer.md) at Datameer's paths. A Datameer job is a batchgate job, a
job execution one of its runs; every call goes through the job service, so authorization, audit and the
job's history are its. This module parses Datameer's paths, queries and bodies, asks app[DATAMEER_VIEWS]
(gateway/datameer/views.py) and writes Datameer's answers."""

from __future__ import annotations

from typing import Any

import json5
from aiohttp import web

from gateway.api.bodies import MAX_JSON_DEPTH, load_json, read_body, validate_body
from gateway.api.middleware import Dialect, principal
from gateway.api.params import int_param
from gateway.datameer.models import SequentialTrigger, failure, plain
from gateway.errors import BadRequest
from gateway.keys import DATAMEER_VIEWS

MAX_HISTORY = 10_000


def owns(path: str) -> bool:
    return path.startswith(("/api/job-execution/", "/rest/job-configuration/", "/rest/job-execution/",
                            "/rest/data/"))


DIALECT = Dialect(name="datameer", owns=owns, error=failure)


# --- job-execution commands ----------------------------------------------------------------------


async def job_status(request: web.Request) -> web.Response:
    """The job's latest execution: its number, status and times ("_NONE" if it never ran)."""
    return plain(await request.app[DATAMEER_VIEWS].status(principal(request), request.match_info["ref"]))


async def trigger(request: web.Request) -> web.Response:
    answer = await request.app[DATAMEER_VIEWS].trigger(principal(request), request.match_info["ref"])
    return plain(answer.model_dump(mode="json", by_alias=True))


async def stop(request: web.Request) -> web.Response:
    """Every execution of the job still going is canceled; Datameer answers nothing when it worked."""
    await request.app[DATAMEER_VIEWS].stop(principal(request), request.match_info["ref"])
    return web.Response(status=200)


async def list_running(request: web.Request) -> web.Response:
    running = await request.app[DATAMEER_VIEWS].running(principal(request))
    return plain([job.model_dump(mode="json", by_alias=True) for job in running])


async def sequential_trigger(request: web.Request) -> web.Response:
    """The jobs named in fileIds run one after the other, each with the variables it declares; the answer
    is the execution plan. (Datameer also triggers the data-driven workbooks downstream of them; batchgate
    jobs have no data lineage, so the plan is exactly the jobs given.)"""
    body = validate_body(await read_body(request), SequentialTrigger, lenient_json)
    plan = await request.app[DATAMEER_VIEWS].sequence(principal(request), body.file_ids, body.variables)
    return plain(plan.model_dump(mode="json", by_alias=True))


def lenient_json(raw: bytes) -> Any:
    """A request body as Datameer's own server reads it: JSON, also with unquoted keys and trailing commas
    (its docs' sequential trigger example is written so). Nesting is bounded as for every JSON body: strict
    JSON goes through the shared depth-limited parser, and the lenient parser, which recurses, is stopped
    by the interpreter's limit and answered as the same 400."""
    try:
        return load_json(raw)
    except BadRequest as exc:
        if "nested deeper" in exc.message:
            raise
    try:
        return json5.loads(raw.decode())
    except RecursionError:
        raise BadRequest(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body: not JSON ({exc})") from None


# --- the /rest calls -----------------------------------------------------------------------------


async def job_history(request: web.Request) -> web.Response:
    """A job's executions, newest first: `start` skips, `length` (10) is the page."""
    start = int_param(request.query, "start", 0, minimum=0, maximum=2**31)
    length = int_param(request.query, "length", 10, minimum=1, maximum=MAX_HISTORY)
    history = await request.app[DATAMEER_VIEWS].history(principal(request), request.match_info["ref"], start,
                                                        length)
    return plain([entry.model_dump(by_alias=True) for entry in history])


async def job_details(request: web.Request) -> web.Response:
    """An execution: status, times, its job, how many nodes succeeded and failed, and the counters of its
    nodes' batches (`<node>.<counter>`)."""
    details = await request.app[DATAMEER_VIEWS].details(principal(request), request.match_info["execution"])
    return plain(details.model_dump(mode="json", by_alias=True))


async def delete_data(request: web.Request) -> web.Response:
    """Datameer's "Delete Job": the job and its executions' records go; `{"status": true}`."""
    await request.app[DATAMEER_VIEWS].delete(principal(request), request.match_info["ref"])
    return plain({"status": True})


def datameer_routes() -> list[web.RouteDef]:
    one = "/api/job-execution/{ref:.+}"
    return [
        web.get("/api/job-execution/list-running", list_running),
        web.post("/api/job-execution/sequential-trigger", sequential_trigger),
        web.get(f"{one}/status", job_status),
        web.post(f"{one}/trigger", trigger),
        web.post(f"{one}/stop", stop),
        web.get("/rest/job-configuration/job-history/{ref:.+}", job_history),
        web.get("/rest/job-execution/job-details/{execution}", job_details),
        web.delete("/rest/data/{ref:.+}", delete_data),
    ]
