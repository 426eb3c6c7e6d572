"""Azkaban's `fetchExecJobLogs` and `fetchExecFlowLogs` (docs/azkaban.md, "Logs"): a window of `length`
characters from `offset` of a job's log or of the execution's own log, answered as
`{"data": ..., "offset": ..., "length": ...}`; the client moves on by `offset += length` until `length` is 0.

A job's log is its node's batch log (a job of several commands: its nodes' logs one after the other); the
execution's log is the run's events as text (gateway/jobs/runlog.py). The windows are cut by the services
(JobService.node_log_chars and run_log_chars over LogStore.read_chars, asked by app[AZKABAN_VIEWS]); this
module reads the parameters and writes Azkaban's answer. Both are called by the `/executor` dispatcher
once the session is resolved.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.middleware import principal
from gateway.azkaban.executor import execution, int_value
from gateway.azkaban.models import answer, job_parts, params
from gateway.errors import BadRequest, NotFound
from gateway.keys import AZKABAN_VIEWS


def _window(values: dict[str, str]) -> tuple[int, int]:
    """`offset` and `length`, both required as on Azkaban."""
    offset, length = int_value(values, "offset"), int_value(values, "length")
    if offset < 0:
        raise BadRequest(f"Parameter offset: {offset} is negative")
    if length < 0:
        raise BadRequest(f"Parameter length: {length} is negative")
    return offset, length


def _answer(data: str, offset: int) -> web.Response:
    # `length` is what `data` holds: a client that moves on by it reads every character once.
    return answer({"data": data, "offset": offset, "length": len(data)})


async def fetch_exec_job_logs(request: web.Request) -> web.Response:
    """`execid`, `jobId`, `offset`, `length`: characters of the job's log."""
    who, values = principal(request), params(request)
    run, execid = await execution(request, who, values)
    job_id = values.get("jobId", "")
    if not job_id:
        raise BadRequest("Missing parameter jobId")
    offset, length = _window(values)
    parts = job_parts([n.id for n in run.nodes]).get(job_id)
    if parts is None:
        raise NotFound(f"Job {job_id} doesn't exist in {execid}")
    return _answer(await request.app[AZKABAN_VIEWS].job_log(who, run, parts, offset, length), offset)


async def fetch_exec_flow_logs(request: web.Request) -> web.Response:
    """`execid`, `offset`, `length`: characters of the execution's log."""
    who, values = principal(request), params(request)
    run, _ = await execution(request, who, values)
    offset, length = _window(values)
    return _answer(await request.app[AZKABAN_VIEWS].flow_log(who, run, offset, length), offset)
