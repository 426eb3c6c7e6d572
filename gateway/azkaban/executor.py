"""Azkaban's `/executor`: executions are batchgate runs of the flow's job (docs/azkaban.md).

An execution id is the run's number in app[NUMBERS] (Kind.RUN, keyed by the run's UUID), as Datameer's
job-execution ids are. `execution()` is how every action here (and gateway/azkaban/logs.py) turns an
`execid` into a run the caller may see: through app[AZKABAN_VIEWS] (gateway/azkaban/views.py) and
JobService.run, so the run's permissions are the job's. Flows and runs arrive as the contract's `Job` and
`Run`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.azkaban.models import (
    answer,
    error,
    exec_flow,
    exec_nodes,
    exec_update,
    flow_job,
    flow_of,
    job_parts,
    node_type,
)
from gateway.contract.jobs import RUN_TERMINAL, FailureAction, Job, Permission, Run, RunState
from gateway.errors import BadRequest, NotFound
from gateway.jobs.numbers import Kind, named_key
from gateway.keys import AZKABAN_VIEWS, NUMBERS, PROJECT_VIEWS
from gateway.security.auth import Principal

FAILURE_ACTIONS = {
    "finishCurrent": FailureAction.FINISH_CURRENTLY_RUNNING, "cancelImmediately": FailureAction.CANCEL_ALL,
    "finishPossible": FailureAction.FINISH_ALL_POSSIBLE,
}


# --- ids (shared with gateway/azkaban/logs.py) ---------------------------------------------------


def int_value(values: dict[str, str], name: str) -> int:
    raw = values.get(name)
    if raw is None or raw == "":
        raise BadRequest(f"Missing parameter {name}")
    try:
        number = int(raw)
    except ValueError:
        raise BadRequest(f"Parameter {name}: {raw!r} is not a number") from None
    if not -(2**63) < number < 2**63:
        raise BadRequest(f"Parameter {name}: {raw!r} is out of range")
    return number


async def execution(request: web.Request, who: Principal, values: dict[str, str],
                    permission: Permission = Permission.READ) -> tuple[Run, int]:
    """The run an `execid` names (with its nodes), if the caller holds the permission on it; and the number
    itself."""
    execid = int_value(values, "execid")
    return await request.app[AZKABAN_VIEWS].execution(who, execid, permission), execid


async def project_id(request: web.Request, who: Principal, project: str) -> int:
    found = await request.app[PROJECT_VIEWS].get(who, project)
    return await request.app[NUMBERS].number(Kind.PROJECT, named_key(found.name, found.create_time))


def node_types(job: Job | None) -> dict[str, str]:
    if job is None:
        return {}
    return {n.id: node_type(n.request) for n in job.nodes}


def flow_name(run: Run) -> str:
    return (flow_of(run.project, run.job) if run.project else None) or run.job


async def flow(request: web.Request, who: Principal, project: str, name: str, permission: Permission) -> Job:
    """The job that holds a project's flow (it must be in that project)."""
    if not project:
        raise BadRequest("Missing parameter project")
    if not name:
        raise BadRequest("Missing parameter flow")
    try:
        job: Job | None = await request.app[AZKABAN_VIEWS].job(who, flow_job(project, name), permission)
    except NotFound:
        job = None
    if job is None or job.project != project:
        raise NotFound(f"Flow '{name}' not found in project '{project}'")
    return job


# --- actions -------------------------------------------------------------------------------------


async def execute_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """Run the flow: `disabled` (a JSON list of job ids), `failureAction`, `concurrentOption=skip` (refused
    while the flow runs), and `flowOverride[name]=value` for the flow's variables."""
    project, name = values.get("project", ""), values.get("flow", "")
    job = await flow(request, who, project, name, Permission.EXECUTE)
    views = request.app[AZKABAN_VIEWS]
    disabled = _disabled(values.get("disabled"), job)
    overrides = {key[len("flowOverride["):-1]: value for key, value in values.items()
                 if key.startswith("flowOverride[") and key.endswith("]")}
    action = values.get("failureAction")
    if action and action not in FAILURE_ACTIONS:
        raise BadRequest(f"Parameter failureAction: {action!r} is none of {sorted(FAILURE_ACTIONS)}")
    if values.get("concurrentOption") == "skip":
        running = await views.running(who, job.name, limit=1)
        if running:
            return error(409, f"Flow {name} is already running with exec id {running[0]}. Skipping execution.")
    execid = await views.execute(who, job.name, overrides, disabled,
                                 FAILURE_ACTIONS[action].value if action else None)
    return answer({"message": f"Execution submitted successfully with exec id {execid}", "project": project,
                   "flow": name, "execid": execid})


def _disabled(raw: str | None, job: Job) -> list[str]:
    if not raw:
        return []
    try:
        names = json.loads(raw)
    except ValueError:
        raise BadRequest(f"Parameter disabled: {raw[:80]!r} is not a JSON list of job ids") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("Parameter disabled: give a JSON list of job ids")
    parts = job_parts([n.id for n in job.nodes])
    unknown = sorted(set(names) - set(parts))
    if unknown:
        raise BadRequest(f"Parameter disabled: the flow has no job {unknown[0]!r}")
    return [node for name in names for node in parts[name]]


async def fetch_exec_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    run, execid = await execution(request, who, values)
    nodes = exec_nodes(run.nodes, node_types(await request.app[AZKABAN_VIEWS].find(run.job)))
    pid = await project_id(request, who, run.project) if run.project else 0
    return answer(exec_flow(run, execid, run.project or "", pid, flow_name(run), nodes))


async def fetch_exec_flow_update(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """The execution and the jobs updated after `lastUpdateTime` (epoch ms; -1 for all)."""
    run, _ = await execution(request, who, values)
    since = int_value(values, "lastUpdateTime") if values.get("lastUpdateTime") else -1
    nodes = exec_nodes(run.nodes, node_types(await request.app[AZKABAN_VIEWS].find(run.job)), since)
    return answer(exec_update(run, flow_name(run), nodes))


async def cancel_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    return await _control(request, who, values, "cancel")


async def pause_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    return await _control(request, who, values, "pause")


async def resume_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    return await _control(request, who, values, "resume")


async def _control(request: web.Request, who: Principal, values: dict[str, str], action: str) -> web.Response:
    """Cancel, pause or resume; `{}` when done, or when the execution already is as asked (Azkaban's
    pause and resume are idempotent); an execution that has ended `isn't running`."""
    run, execid = await execution(request, who, values, Permission.EXECUTE)
    if run.state in RUN_TERMINAL:
        return error(409, f"Execution {execid} of flow {flow_name(run)} isn't running.")
    if (action == "pause" and run.state == RunState.PAUSED) or (action == "resume" and run.state != RunState.PAUSED):
        return answer({})
    await request.app[AZKABAN_VIEWS].control(who, run.id, action)
    return answer({})


async def get_running(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    job = await flow(request, who, values.get("project", ""), values.get("flow", ""), Permission.READ)
    return answer({"execIds": await request.app[AZKABAN_VIEWS].running(who, job.name)})


ACTIONS: dict[str, Any] = {
    "executeFlow": execute_flow,
    "fetchexecflow": fetch_exec_flow,
    "fetchexecflowupdate": fetch_exec_flow_update,
    "cancelFlow": cancel_flow,
    "pauseFlow": pause_flow,
    "resumeFlow": resume_flow,
    "getRunning": get_running,
}  # and fetchExecJobLogs, fetchExecFlowLogs from gateway/azkaban/logs.py (routes.py puts them together)
