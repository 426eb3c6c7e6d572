"""Azkaban's AJAX API as its docs write it (docs/azkaban.md): the answers' shape, its statuses, and how a
batchgate run and its nodes read as an Azkaban execution and its jobs.

An Azkaban project is a batchgate project; each flow of its zip a batchgate job named `<project>.<flow>`
in that project; an execution one of the job's runs, its jobs the run's nodes. Executions, projects and
schedules get the integer ids Azkaban's clients use from app[NUMBERS] (gateway/jobs/numbers.py). This
module only translates, from the contract's models (runs and nodes as gateway/azkaban/views.py returns
them); the handlers (manager, executor, schedule) call the services.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from aiohttp import web

from gateway.contract.jobs import NodeState, Run, RunNode, RunState

PARAMS: web.RequestKey[dict[str, str]] = web.RequestKey("azkaban_params", dict)
# A job of several commands (command, command.1, ...) is a chain of nodes: `<job>`, `<job>.command.1`, ...
EXTRA_COMMAND = re.compile(r"^(?P<job>.+)\.command\.(?P<n>\d+)$")


class AzkabanStatus(StrEnum):
    READY = "READY"
    PREPARING = "PREPARING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


OF_RUN: dict[RunState, AzkabanStatus] = {
    RunState.PREPARING: AzkabanStatus.PREPARING, RunState.RUNNING: AzkabanStatus.RUNNING,
    RunState.PAUSED: AzkabanStatus.PAUSED, RunState.SUCCEEDED: AzkabanStatus.SUCCEEDED,
    RunState.FAILED: AzkabanStatus.FAILED, RunState.KILLED: AzkabanStatus.KILLED,
}
OF_NODE: dict[NodeState, AzkabanStatus] = {
    NodeState.READY: AzkabanStatus.READY, NodeState.QUEUED: AzkabanStatus.QUEUED,
    NodeState.RUNNING: AzkabanStatus.RUNNING, NodeState.PAUSED: AzkabanStatus.PAUSED,
    NodeState.SUCCEEDED: AzkabanStatus.SUCCEEDED, NodeState.FAILED: AzkabanStatus.FAILED,
    NodeState.CANCELLED: AzkabanStatus.CANCELLED, NodeState.SKIPPED: AzkabanStatus.SKIPPED,
}
# Which of a job's parts tells its status: the first part in this order (a failed part fails the job).
_PRECEDENCE = [AzkabanStatus.FAILED, AzkabanStatus.KILLED, AzkabanStatus.RUNNING, AzkabanStatus.PAUSED,
               AzkabanStatus.QUEUED, AzkabanStatus.PREPARING, AzkabanStatus.CANCELLED, AzkabanStatus.READY,
               AzkabanStatus.SKIPPED, AzkabanStatus.SUCCEEDED]
TYPE_OF_BATCH = {"LOCAL": "command", "SPARK": "spark"}


def flow_job(project: str, flow: str) -> str:
    """The batchgate job that holds an Azkaban flow."""
    return f"{project}.{flow}"


def flow_of(project: str, job: str) -> str | None:
    prefix = f"{project}."
    return job[len(prefix):] if job.startswith(prefix) else None


# --- answers -------------------------------------------------------------------------------------


def text(body: Any) -> str:
    """JSON as Azkaban's Jackson writes it: two-space indents and `"key" : value` (its clients match on
    `"error" : "session"`)."""
    return json.dumps(body, indent=2, separators=(",", " : "))


def answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=text(body), status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    """Azkaban's failure answer: `{"error": ...}`, with status 200 as Azkaban gives it for what the request
    asked (its clients read the body, not the status); an outage of batchgate's own keeps its 5xx, and a
    method the path does not take keeps its 405 (HTTP's answer, as Azkaban's web server gives it)."""
    kept = status >= 500 or status == HTTPStatus.METHOD_NOT_ALLOWED
    return answer({"error": message}, status=status if kept else 200)


def session_error() -> web.Response:
    """An unknown or expired session, as Azkaban answers it: the `azkaban` client then logs in again."""
    return answer({"error": "session"})


# --- parameters ----------------------------------------------------------------------------------


def params(request: web.Request) -> dict[str, str]:
    """The request's parameters (query and form data), as the dispatcher read them."""
    return request[PARAMS]


async def read_params(request: web.Request) -> dict[str, str]:
    """Query string and `application/x-www-form-urlencoded` form data together (a form value wins). A
    multipart body is left unread: only an upload sends one, and it reads its own parts."""
    values = {k: v for k, v in request.query.items()}
    if request.content_type == "application/x-www-form-urlencoded" and request.can_read_body:
        form = await request.post()
        values.update({k: v for k, v in form.items() if isinstance(v, str)})
    request[PARAMS] = values
    return values


# --- executions ----------------------------------------------------------------------------------


def node_type(request: dict[str, Any]) -> str:
    return TYPE_OF_BATCH.get(str(request.get("batchType", "")), str(request.get("batchType", "")).lower())


def job_parts(nodes: list[str]) -> dict[str, list[str]]:
    """Azkaban's job ids, each with the nodes it is made of, in order."""
    ids = set(nodes)
    parts: dict[str, list[str]] = {}
    for node in nodes:
        match = EXTRA_COMMAND.match(node)
        owner = match.group("job") if match and match.group("job") in ids else node
        parts.setdefault(owner, []).append(node)
    return parts


def job_status(states: list[AzkabanStatus]) -> AzkabanStatus:
    if all(s == AzkabanStatus.SUCCEEDED for s in states):
        return AzkabanStatus.SUCCEEDED
    if any(s == AzkabanStatus.SUCCEEDED for s in states) and all(
            s in (AzkabanStatus.SUCCEEDED, AzkabanStatus.READY, AzkabanStatus.QUEUED) for s in states):
        return AzkabanStatus.RUNNING  # between two of its commands
    return next(s for s in _PRECEDENCE if s in states)


def exec_nodes(nodes: list[RunNode], types: dict[str, str], since: int = -1) -> list[dict[str, Any]]:
    """A run's nodes as Azkaban's job executions (a job of several commands is one job), those updated
    after `since` (epoch ms; -1: all)."""
    by_id = {n.id: n for n in nodes}
    out: list[dict[str, Any]] = []
    for job, part_ids in job_parts([n.id for n in nodes]).items():
        parts = [by_id[p] for p in part_ids]
        update = max(p.update_time for p in parts)
        if update <= since:
            continue
        first, last = parts[0], parts[-1]
        entry: dict[str, Any] = {
            "attempt": max(p.attempt for p in parts), "startTime": first.start_time or -1,
            "id": job, "updateTime": update, "status": job_status([OF_NODE[p.state] for p in parts]).value,
            "nestedId": job, "type": types.get(job, "command"), "endTime": last.end_time or -1,
        }
        deps = [d for d in first.in_ if d not in part_ids]
        if deps:
            entry["in"] = sorted({_owner(d, by_id) for d in deps})
        out.append(entry)
    return out


def _owner(node: str, by_id: dict[str, RunNode]) -> str:
    match = EXTRA_COMMAND.match(node)
    return match.group("job") if match and match.group("job") in by_id else node


def exec_flow(run: Run, execid: int, project: str, project_id: int, flow: str,
              nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """fetchexecflow's answer: the execution with its jobs."""
    return {
        "attempt": run.attempt, "submitUser": run.submit_user, "updateTime": run.update_time,
        "status": OF_RUN[run.state].value, "submitTime": run.create_time, "projectId": project_id,
        "flow": flow, "endTime": run.end_time or -1, "type": None, "nestedId": flow,
        "startTime": run.start_time or -1, "id": flow, "project": project, "nodes": nodes, "flowId": flow,
        "execid": execid,
    }


def exec_update(run: Run, flow: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """fetchexecflowupdate's answer: the execution's status and the jobs updated since."""
    return {
        "id": flow, "startTime": run.start_time or -1, "attempt": run.attempt, "status": OF_RUN[run.state].value,
        "updateTime": run.update_time, "flow": flow, "endTime": run.end_time or -1,
        "nodes": [{k: n[k] for k in ("attempt", "startTime", "id", "updateTime", "status", "endTime")}
                  for n in nodes],
    }
