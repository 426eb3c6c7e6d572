"""Azkaban's `/manager`: projects, project zips and flows, on batchgate's projects, artifacts and jobs.

`action=create` makes a batchgate project; `delete=true` deletes it with its flows' jobs; `ajax=upload`
stores the zip as the project's next artifact version and saves each flow as the job `<project>.<flow>`
(gateway/azkaban/zips.py reads the zip; the job service checks every node through the admission step);
the fetch actions read them back in Azkaban's shapes.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import structlog
from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from gateway.api.bodies import part_chunks
from gateway.api.middleware import PRINCIPAL
from gateway.azkaban.executor import flow, node_types, project_id
from gateway.azkaban.models import answer, error, flow_job, job_parts, session_error
from gateway.azkaban.sessions import dispatch, principal_of
from gateway.azkaban.zips import FlowSpec, flows_of, read_zip
from gateway.contract.jobs import JobSpec, Permission
from gateway.contract.projects import ProjectSpec
from gateway.errors import BadRequest, Conflict, GatewayError, NotFound
from gateway.instance.spool import bounded, read_chunks, write_chunks
from gateway.keys import AZKABAN_VIEWS, JOB_VIEWS, PROJECT_VIEWS, PROJECTS, SETTINGS
from gateway.security.auth import Principal

log = structlog.get_logger("gateway.azkaban")

MAX_PAGE = 1000


async def _project_name(values: dict[str, str], key: str = "project") -> str:
    name = values.get(key, "")
    if not name:
        raise BadRequest(f"Missing parameter {key}")
    return name


# --- projects ------------------------------------------------------------------------------------


async def create(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    name, description = values.get("name", ""), values.get("description", "")
    if not name:
        return answer({"status": "error", "message": "Project name cannot be empty."})
    if not description:
        return answer({"status": "error", "message": "Description cannot be empty."})
    try:
        spec = ProjectSpec(name=name, description=description)
    except ValidationError as exc:
        return answer({"status": "error", "message": exc.errors()[0]["msg"]})
    try:
        await request.app[PROJECTS].create(who, spec)
    except Conflict:
        return answer({"status": "error", "message": f"Project already exists: {name}"})
    return answer({"status": "success", "path": f"manager?project={name}", "action": "redirect"})


async def delete(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """The project and its flows' jobs (refused while one of them runs)."""
    name = await _project_name(values)
    await request.app[PROJECTS].get(who, name)
    jobs = request.app[JOB_VIEWS]
    for job in (await request.app[AZKABAN_VIEWS].flows(who, name)).values():
        await jobs.delete(who, job.name)
    await request.app[PROJECTS].delete(who, name)
    return answer({"status": "success", "message": f"Project '{name}' was successfully deleted"})


async def get_permissions(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    name = await _project_name(values)
    project = await request.app[PROJECT_VIEWS].get(who, name)
    permissions = [{"username": project.owner, "permission": ["ADMIN"]}] + [
        {"username": user, "permission": roles} for user, roles in sorted(project.members.items())]
    return answer({"project": name, "projectId": await project_id(request, who, name), "permissions": permissions})


async def fetch_project_logs(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    name = await _project_name(values)
    _, entries = await request.app[PROJECTS].history(who, name, 0, MAX_PAGE)
    return answer({"project": name, "projectId": await project_id(request, who, name),
                   "columns": ["user", "time", "type", "message"],
                   "logData": [[e["actor"], e["time"], str(e["action"]).upper(), _detail(e.get("detail"))]
                               for e in entries]})


def _detail(detail: Any) -> str | None:
    if not detail:
        return None
    return ", ".join(f"{k}: {v}" for k, v in dict(detail).items())


# --- flows ---------------------------------------------------------------------------------------


async def fetch_project_flows(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    name = await _project_name(values)
    pid = await project_id(request, who, name)
    flows = await request.app[AZKABAN_VIEWS].flows(who, name)
    return answer({"project": name, "projectId": pid, "flows": [{"flowId": f} for f in sorted(flows)]})


async def fetch_flow_graph(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """The flow's jobs, each with its type and the jobs it directly depends on (`in`)."""
    name = await _project_name(values)
    job = await flow(request, who, name, values.get("flow", ""), Permission.READ)
    types = node_types(job)
    definition = {n.id: n for n in job.nodes}
    nodes = []
    for job_id, parts in job_parts(list(definition)).items():
        entry: dict[str, Any] = {"id": job_id, "type": types.get(job_id, "command")}
        deps = sorted({d for d in definition[parts[0]].depends_on if d not in parts})
        if deps:
            owners = job_parts(list(definition))
            entry["in"] = sorted({next((j for j, p in owners.items() if d in p), d) for d in deps})
        nodes.append(entry)
    return answer({"project": name, "projectId": await project_id(request, who, name),
                   "flow": values["flow"], "nodes": nodes})


async def fetch_flow_executions(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    name = await _project_name(values)
    job = await flow(request, who, name, values.get("flow", ""), Permission.READ)
    start = _int(values, "start", 0)
    length = _int(values, "length", 10)
    pid = await project_id(request, who, name)
    total, executions = await request.app[AZKABAN_VIEWS].executions(who, job.name, values["flow"], pid, start,
                                                                    min(length, MAX_PAGE))
    return answer({
        "executions": executions,
        "total": total, "project": name, "length": length, "from": start, "flow": values["flow"], "projectId": pid,
    })


def _int(values: dict[str, str], key: str, default: int) -> int:
    raw = values.get(key)
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"Parameter {key}: {raw!r} is not a number from 0 to 999999999")
    return int(raw)


# --- upload --------------------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    """`ajax=upload` as multipart form data: `session.id`, `project` and the zip as `file`, in any order
    (the zip is spooled to disk, bounded by the artifact size limit, until every part has been read)."""
    projects = request.app[PROJECTS]
    spool = request.app[SETTINGS].instance.data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool) as tmp:
        zip_path = Path(tmp) / "project.zip"
        values = await _read_upload(request, zip_path, projects.max_bytes)
        if values.get("ajax", "upload") != "upload":
            return error(400, f"Unknown action {values['ajax']!r} in a multipart body (only ajax=upload sends one)")
        who = await principal_of(request, values)
        if who is None:
            return session_error()
        request[PRINCIPAL] = who
        name = values.get("project", "")
        if not name:
            return answer({"error": "Missing parameter project"})
        if not zip_path.exists():
            return answer({"error": "Missing parameter file: the project zip"})
        try:
            await projects.get(who, name)
        except NotFound:
            return answer({"error": f"Installation Failed.\nProject '{name}' doesn't exist."})
        files, jobs = await asyncio.to_thread(read_zip, zip_path)
        flows_of(jobs, files, 0)  # a zip that cannot make flows is refused before anything is stored
        artifact = await request.app[PROJECT_VIEWS].upload(who, name, read_chunks(zip_path))
    flows = flows_of(jobs, files, artifact.version)
    try:
        await _save_flows(request, who, name, flows)
    except GatewayError as exc:
        return answer({"error": f"Installation Failed.\n{exc.message}",
                       "projectId": str(await project_id(request, who, name)), "version": str(artifact.version)})
    log.info("azkaban.uploaded", project=name, version=artifact.version, flows=[f.name for f in flows], user=who.name)
    return answer({"projectId": str(await project_id(request, who, name)), "version": str(artifact.version)})


async def _read_upload(request: web.Request, target: Path, limit: int) -> dict[str, str]:
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise BadRequest(f"multipart: {exc}") from None
    values: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "file":
            await write_chunks(bounded(part_chunks(part), limit, f"file: larger than {limit} bytes"), target)
        else:
            raw = await part.read_chunk(1 << 16)
            if await part.read_chunk(1):
                raise BadRequest(f"{part.name}: a form value longer than 64 KiB")
            values[part.name] = raw.decode(errors="replace")
    return values


async def _save_flows(request: web.Request, who: Principal, project: str, flows: list[FlowSpec]) -> None:
    """Each flow becomes (or updates) its job; a flow the new zip no longer has is deleted, as Azkaban does."""
    jobs = request.app[JOB_VIEWS]
    existing = await request.app[AZKABAN_VIEWS].flows(who, project)
    for spec in flows:
        try:
            job = JobSpec.model_validate({
                "name": flow_job(project, spec.name), "nodes": spec.nodes, "variables": spec.variables,
                "description": f"Azkaban flow {spec.name} of project {project}", "project": project,
            })
        except ValidationError as exc:
            raise BadRequest(f"flow {spec.name}: {exc.errors()[0]['msg']}") from None
        if spec.name in existing:
            await jobs.update(who, job.name or "", job)
        else:
            await jobs.create(who, job)
    for gone in sorted(set(existing) - {f.name for f in flows}):
        await jobs.delete(who, existing[gone].name)


ACTIONS: dict[str, Any] = {
    "create": create,
    "fetchprojectflows": fetch_project_flows,
    "fetchflowgraph": fetch_flow_graph,
    "fetchflowjobs": fetch_flow_graph,
    "fetchFlowExecutions": fetch_flow_executions,
    "getPermissions": get_permissions,
    "fetchProjectLogs": fetch_project_logs,
}


async def _no_action(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """`delete=true` deletes the project; a request with a live session and no action is Azkaban's session
    check, answered with an empty object."""
    if values.get("delete") == "true":
        return await delete(request, who, values)
    return answer({})


async def manager(request: web.Request) -> web.StreamResponse:
    if request.content_type.startswith("multipart/"):
        return await upload(request)
    return await dispatch(request, ACTIONS, default=_no_action)
