"""Datameer X's job commands (docs/datameer.md) at Datameer's paths. A Datameer job is a batchgate job, a
job execution one of its runs; every call goes through the job service, so authorization, audit and the
job's history are its. This module parses Datameer's ids and writes Datameer's answers."""

from __future__ import annotations

import uuid
from typing import Any

import json5
from aiohttp import web

from gateway.api.bodies import MAX_JSON_DEPTH, load_json, read_body, validate_body
from gateway.api.middleware import Dialect, principal
from gateway.api.params import int_param
from gateway.contract.jobs import RUN_TERMINAL
from gateway.datameer.models import (
    NOT_ACCESSIBLE,
    DatameerStatus,
    FileRef,
    HistoryEntry,
    JobDetails,
    JobStatusAnswer,
    PlanAnswer,
    PlanStep,
    RunningJob,
    SequentialTrigger,
    TriggerAnswer,
    datameer_time,
    failure,
    plain,
    run_status,
    success,
)
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from gateway.jobs.numbers import Kind, named_key, parse_named_key
from gateway.keys import CONTROL, JOBS, NUMBERS
from gateway.store.jobs import JobRecord, RunRecord

ACTIVE = ["PREPARING", "RUNNING", "PAUSED"]
MAX_RUNNING = 1000  # list-running answers at most this many executions
MAX_HISTORY = 10_000


def owns(path: str) -> bool:
    return path.startswith(("/api/job-execution/", "/rest/job-configuration/", "/rest/job-execution/",
                            "/rest/data/"))


DIALECT = Dialect(name="datameer", owns=owns, error=failure)


# --- ids -----------------------------------------------------------------------------------------


async def _job(request: web.Request, ref: str, permission: str = "READ") -> JobRecord:
    """A job by `<file-id>|<uuid>|<path>`: its number, its UUID, or its path (`/name`, or
    `/project/name` for a job in a project). Unknown and unreadable jobs get Datameer's sentence."""
    jobs, numbers, who = request.app[JOBS], request.app[NUMBERS], principal(request)
    created: int | None = None
    project: str | None = None
    if ref.isdigit():
        key = await numbers.key(Kind.JOB, int(ref)) if len(ref) < 19 else None
    elif _is_uuid(ref):
        key = await numbers.key_by_uid(Kind.JOB, uuid.UUID(ref))
    else:
        parts = [p for p in ref.replace("+", " ").split("/") if p]
        key = None
        if parts:
            project = "/".join(parts[:-1]) or None
            key = named_key(parts[-1], 0)
    if key is None:
        raise NotFound(f"{NOT_ACCESSIBLE}: no job {ref}")
    name, created = parse_named_key(key)
    try:
        job = await jobs.job(who, name, permission)
    except (NotFound, Forbidden) as exc:
        raise type(exc)(f"{NOT_ACCESSIBLE}: {exc.message}") from None
    if (created and job.created_at != created) or (project is not None and job.project != project):
        raise NotFound(f"{NOT_ACCESSIBLE}: no job {ref}")
    return job


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


async def _run(request: web.Request, ref: str, permission: str = "READ") -> RunRecord:
    key = await request.app[NUMBERS].key(Kind.RUN, int(ref)) if ref.isdigit() and len(ref) < 19 else None
    if key is None:
        raise NotFound(f"job execution {ref} not found")
    return await request.app[JOBS].run(principal(request), key, permission)


async def _file(request: web.Request, job: JobRecord) -> FileRef:
    number, uid = await request.app[NUMBERS].number_and_uid(Kind.JOB, named_key(job.name, job.created_at))
    path = f"/{job.project}/{job.name}" if job.project else f"/{job.name}"
    return FileRef(id=number, uuid=str(uid), path=path)


async def _run_number(request: web.Request, run: RunRecord) -> int:
    return await request.app[NUMBERS].number(Kind.RUN, str(run.id))


# --- job-execution commands ----------------------------------------------------------------------


async def job_status(request: web.Request) -> web.Response:
    """The job's latest execution: its number, status and times ("_NONE" if it never ran)."""
    job = await _job(request, request.match_info["ref"])
    jobs = request.app[JOBS]
    _, runs = await jobs.list_runs(principal(request), job.name, [], None, 0, 1)
    if not runs:
        return success({"job-status": DatameerStatus.NONE.value})
    run = runs[0]
    answer: dict[str, Any] = JobStatusAnswer(
        file_id=(await _file(request, job)).id, job_execution_id=await _run_number(request, run),
        job_status=run_status(run, await jobs.nodes(run)), start_time=datameer_time(run.start_time),
    ).model_dump(mode="json", by_alias=True, exclude={"stop_time"})
    if run.state in RUN_TERMINAL:
        answer["stop-time"] = datameer_time(run.end_time)
    return plain(answer)


async def trigger(request: web.Request) -> web.Response:
    job = await _job(request, request.match_info["ref"], "EXECUTE")
    who = principal(request)
    run = await request.app[JOBS].trigger(who, job.name, {}, [], None)
    return plain(TriggerAnswer(job_execution_id=await _run_number(request, run), job_execution_user=who.name)
                 .model_dump(mode="json", by_alias=True))


async def stop(request: web.Request) -> web.Response:
    """Every execution of the job still going is canceled; Datameer answers nothing when it worked."""
    job = await _job(request, request.match_info["ref"], "EXECUTE")
    jobs, who = request.app[JOBS], principal(request)
    _, runs = await jobs.list_runs(who, job.name, ACTIVE, None, 0, MAX_RUNNING)
    if not runs:
        raise Conflict(f"job {job.name} isn't running")
    for run in runs:
        await jobs.control(who, str(run.id), "cancel", {})
    return web.Response(status=200)


async def list_running(request: web.Request) -> web.Response:
    jobs, who = request.app[JOBS], principal(request)
    _, runs = await jobs.list_runs(who, None, ACTIVE, None, 0, MAX_RUNNING)
    numbers = await request.app[NUMBERS].numbers(Kind.RUN, [str(r.id) for r in runs])
    out: list[dict[str, Any]] = []
    files: dict[str, tuple[JobRecord, FileRef] | None] = {}
    for run in runs:
        if run.job not in files:
            record = await jobs.find(run.job)
            files[run.job] = (record, await _file(request, record)) if record is not None else None
        found = files[run.job]
        if found is None:
            continue  # its job was deleted while it ran
        record, file = found
        out.append(RunningJob(
            job_status=run_status(run), file_name=record.name, job_name=record.description or record.name,
            file_id=file.id, uuid=file.uuid, creation_date=record.created_at,
            job_execution_id=numbers[str(run.id)], dap_job_configuration_id=file.id, start_time=run.start_time,
        ).model_dump(mode="json", by_alias=True))
    return plain(out)


async def sequential_trigger(request: web.Request) -> web.Response:
    """The jobs named in fileIds run one after the other, each with the variables it declares; the answer
    is the execution plan. (Datameer also triggers the data-driven workbooks downstream of them; batchgate
    jobs have no data lineage, so the plan is exactly the jobs given.)"""
    body = validate_body(await read_body(request), SequentialTrigger, lenient_json)
    chain = [await _job(request, str(ref), "EXECUTE") for ref in body.file_ids]
    runs = await request.app[JOBS].trigger_sequence(principal(request), [job.name for job in chain],
                                                    body.variables)
    plan = [PlanStep(job_configuration_name=job.name, job_configuration_id=(await _file(request, job)).id,
                     job_execution_id=await _run_number(request, run)) for job, run in zip(chain, runs, strict=True)]
    return plain(PlanAnswer(execution_plan=plan).model_dump(mode="json", by_alias=True))


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
    job = await _job(request, request.match_info["ref"])
    _, runs = await request.app[JOBS].list_runs(principal(request), job.name, [], None, start, length)
    numbers = await request.app[NUMBERS].numbers(Kind.RUN, [str(r.id) for r in runs])
    return plain([HistoryEntry(id=numbers[str(r.id)], job_status=run_status(r)).model_dump(by_alias=True)
                  for r in runs])


async def job_details(request: web.Request) -> web.Response:
    """An execution: status, times, its job, how many nodes succeeded and failed, and the counters of its
    nodes' batches (`<node>.<counter>`)."""
    run = await _run(request, request.match_info["execution"])
    jobs, who = request.app[JOBS], principal(request)
    nodes = await jobs.nodes(run)
    counters: dict[str, Any] = {}
    for node in nodes:
        if node.batch_id is None:
            continue
        try:
            _, _, batch_counters, _ = await request.app[CONTROL].details(who, str(node.batch_id))
        except NotFound:
            continue  # a node batch dropped or purged since
        counters.update({f"{node.node_id}.{k}": v for k, v in batch_counters.items() if v is not None})
    record = await jobs.find(run.job)
    if record is None:
        raise NotFound(f"job execution {request.match_info['execution']}: its job {run.job} was deleted")
    details = JobDetails(
        start_time=datameer_time(run.start_time), stop_time=datameer_time(run.end_time),
        job_status=run_status(run, nodes), job_configuration_id=(await _file(request, record)).id,
        file=await _file(request, record), success_count=sum(1 for n in nodes if n.state == "SUCCEEDED"),
        failure_count=sum(1 for n in nodes if n.state in ("FAILED", "CANCELLED")), counters=counters,
    )
    return plain(details.model_dump(mode="json", by_alias=True))


async def delete_data(request: web.Request) -> web.Response:
    """Datameer's "Delete Job": the job and its executions' records go; `{"status": true}`."""
    ref = request.match_info["ref"]
    try:
        job = await _job(request, ref, "WRITE")
    except NotFound:
        raise NotFound(f"Entity of type 'Data' with id '{ref}' not found.") from None
    removed = await request.app[JOBS].delete(principal(request), job.name, with_runs=True)
    numbers = request.app[NUMBERS]
    await numbers.forget(Kind.RUN, [str(r) for r in removed])
    await numbers.forget(Kind.JOB, [named_key(job.name, job.created_at)])
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
