"""Apache Kylin's job API as its docs write it (docs/kylin.md): the {code, data, msg} envelope, Kylin's
job and step fields and states, and how batches and runs map onto them.

A Kylin job is a batch (its steps are the batch's lifecycle phases, then the engine's own steps) or a
run (its steps are the run's nodes). This module only translates; the handlers call the services.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

import gateway
from gateway.contract.batches import BatchState
from gateway.contract.jobs import RUN_TERMINAL
from gateway.store import BatchRecord
from gateway.store.jobs import NodeRecord, RunRecord

SUCCESS_CODE = "000"
ERROR_CODE = "999"
V2_MEDIA = "application/vnd.apache.kylin-v2+json"


class KylinStatus(StrEnum):
    """A job's or a step's status (Kylin 3/4's JobStatusEnum; Kylin 5 lists the same names)."""

    NEW = "NEW"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    DISCARDED = "DISCARDED"
    STOPPED = "STOPPED"


# The v2 list's numeric status codes.
STATUS_CODES: dict[int, KylinStatus] = {
    0: KylinStatus.NEW, 1: KylinStatus.PENDING, 2: KylinStatus.RUNNING, 4: KylinStatus.FINISHED,
    8: KylinStatus.ERROR, 16: KylinStatus.DISCARDED, 32: KylinStatus.STOPPED,
}

OF_BATCH: dict[str, KylinStatus] = {
    BatchState.INITIALIZED: KylinStatus.PENDING,
    BatchState.PENDING: KylinStatus.RUNNING,  # claimed and launching: executing, as far as Kylin can tell
    BatchState.RUNNING: KylinStatus.RUNNING,
    BatchState.PAUSED: KylinStatus.STOPPED,
    BatchState.FINISHED: KylinStatus.FINISHED,
    BatchState.ERROR: KylinStatus.ERROR,
    BatchState.CANCELED: KylinStatus.DISCARDED,
}

# The batch states a Kylin status filter selects (NEW: none; a batch is queued as soon as it exists).
BATCH_STATES: dict[KylinStatus, tuple[BatchState, ...]] = {
    KylinStatus.NEW: (),
    KylinStatus.PENDING: (BatchState.INITIALIZED,),
    KylinStatus.RUNNING: (BatchState.PENDING, BatchState.RUNNING),
    KylinStatus.STOPPED: (BatchState.PAUSED,),
    KylinStatus.FINISHED: (BatchState.FINISHED,),
    KylinStatus.ERROR: (BatchState.ERROR,),
    KylinStatus.DISCARDED: (BatchState.CANCELED,),
}

OF_RUN: dict[str, KylinStatus] = {
    "PREPARING": KylinStatus.PENDING, "RUNNING": KylinStatus.RUNNING, "PAUSED": KylinStatus.STOPPED,
    "SUCCEEDED": KylinStatus.FINISHED, "FAILED": KylinStatus.ERROR, "KILLED": KylinStatus.DISCARDED,
}

OF_NODE: dict[str, KylinStatus] = {
    "READY": KylinStatus.PENDING, "QUEUED": KylinStatus.PENDING, "RUNNING": KylinStatus.RUNNING,
    "PAUSED": KylinStatus.STOPPED, "SUCCEEDED": KylinStatus.FINISHED, "FAILED": KylinStatus.ERROR,
    "CANCELLED": KylinStatus.DISCARDED, "SKIPPED": KylinStatus.DISCARDED,
}

LIFECYCLE = ("Queued", "Launching", "Running")


def parse_statuses(raw: list[str], field: str) -> list[KylinStatus]:
    out: list[KylinStatus] = []
    for item in raw:
        name = item.strip().upper()
        if not name:
            continue
        if name not in KylinStatus.__members__:
            raise ValueError(f"{field}: unknown job status {item!r}; known: {', '.join(KylinStatus)}")
        out.append(KylinStatus(name))
    return out


# --- the wire models -----------------------------------------------------------------------------


class KylinModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class KylinStep(KylinModel):
    interrupt_cmd_camel: None = Field(default=None, alias="interruptCmd")
    id: str
    name: str
    sequence_id: int
    exec_cmd: str | None = None
    interrupt_cmd: None = None
    exec_start_time: int
    exec_end_time: int
    exec_wait_time: int = 0
    step_status: KylinStatus
    cmd_type: str
    info: dict[str, Any] = Field(default_factory=dict)
    run_async: bool = False


class KylinJob(KylinModel):
    uuid: str
    id: str  # Kylin 5 names the job id `id`; Kylin 3/4 `uuid`
    last_modified: int
    version: str
    name: str
    job_name: str
    type: str
    duration: int  # seconds, as in Kylin's samples
    related_cube: str
    display_cube_name: str
    related_segment: str | None = None
    exec_start_time: int
    exec_end_time: int
    exec_interrupt_time: int = 0
    mr_waiting: int = 0
    steps: list[KylinStep]
    submitter: str
    job_status: KylinStatus
    progress: float
    project: str | None
    create_time: int


class Envelope(KylinModel):
    code: str = SUCCESS_CODE
    data: Any = None
    msg: str = ""


class V2JobList(KylinModel):
    size: int  # every job that matches, not the page's length
    jobs: list[KylinJob]


class V5JobList(KylinModel):
    value: list[KylinJob]
    offset: int
    limit: int
    total_size: int


class StepOutput(KylinModel):
    job_id: str = Field(alias="jobId")
    cmd_output: str
    step_id: str = Field(alias="stepId")


class JobAction(StrEnum):
    RESUME = "RESUME"
    DISCARD = "DISCARD"
    PAUSE = "PAUSE"
    RESTART = "RESTART"


# What each Kylin 5 action is among the bulk actions of PUT /api/v1/batches/status.
BULK_ACTIONS = {JobAction.RESUME: "RESUME", JobAction.DISCARD: "CANCEL", JobAction.PAUSE: "PAUSE",
                JobAction.RESTART: "RESTART"}


class JobStatusRequest(KylinModel):
    """PUT /kylin/api/jobs/status (Kylin 5)."""

    model_config = ConfigDict(extra="ignore")

    action: JobAction
    project: str | None = Field(default=None, max_length=128)
    job_ids: list[str] = Field(default_factory=list, max_length=10_000)
    statuses: list[str] = Field(default_factory=list, max_length=10)


# --- responses -----------------------------------------------------------------------------------


def kylin_response(data: Any, status: int = 200) -> web.Response:
    body = Envelope(data=data).model_dump_json(by_alias=True)
    return web.Response(body=body, status=status, content_type="application/json")


def kylin_error(status: int, message: str, data: Any = None) -> web.Response:
    """Kylin's error envelope: code 999 and the message, with the HTTP status of the failure."""
    body = json.dumps({"code": ERROR_CODE, "data": data, "msg": message})
    return web.Response(text=body, status=status, content_type="application/json")


# --- batches and runs as Kylin jobs --------------------------------------------------------------


def _now() -> int:
    return int(time.time() * 1000)


def _seconds(start: int, end: int, now: int) -> int:
    return max(((end or now) - start) // 1000, 0) if start else 0


def _engine_status(state: Any) -> KylinStatus:
    text = str(state or "").upper()
    if text in ("RUNNING", "ACTIVE", "DEPLOYING", "INITIALIZING", "RECONCILING"):
        return KylinStatus.RUNNING
    if text in ("SUCCEEDED", "COMPLETE", "FINISHED"):
        return KylinStatus.FINISHED
    if text in ("FAILED", "FAILING"):
        return KylinStatus.ERROR
    if text in ("CANCELED", "CANCELLED", "CANCELING", "KILLED", "SKIPPED"):
        return KylinStatus.DISCARDED
    return KylinStatus.PENDING


def _lifecycle(batch: BatchRecord) -> list[tuple[str, int, int, KylinStatus]]:
    """Queued, Launching, Running: (name, start, end, status). Every phase is listed from the start, as
    Kylin lists a job's steps: PENDING until reached, DISCARDED if the batch ended before it."""
    state = batch.state
    ended = state in (BatchState.FINISHED, BatchState.ERROR, BatchState.CANCELED)
    bounds = [
        (batch.create_time, batch.claim_time or batch.end_time),
        (batch.claim_time, batch.app_start_time or (batch.end_time if batch.claim_time else 0)),
        (batch.app_start_time, batch.end_time if batch.app_start_time else 0),
    ]
    reached = [start > 0 for start, _ in bounds]
    last = max(i for i, r in enumerate(reached) if r)
    out: list[tuple[str, int, int, KylinStatus]] = []
    for i, (name, (start, end)) in enumerate(zip(LIFECYCLE, bounds, strict=True)):
        if not reached[i]:
            status = KylinStatus.DISCARDED if ended else KylinStatus.PENDING
        elif i < last:
            status = KylinStatus.FINISHED
        elif ended:
            status = OF_BATCH[state]
        elif state == BatchState.PAUSED:
            status = KylinStatus.STOPPED
        else:
            status = KylinStatus.PENDING if i == 0 else KylinStatus.RUNNING
        out.append((name, start if reached[i] else 0, end if reached[i] else 0, status))
    return out


def batch_steps(batch: BatchRecord) -> list[KylinStep]:
    steps: list[KylinStep] = []
    for name, start, end, status in _lifecycle(batch):
        steps.append(KylinStep(
            id=f"{batch.id}-{len(steps):02d}", name=name, sequence_id=len(steps), exec_start_time=start,
            exec_end_time=end, step_status=status, cmd_type=batch.batch_type,
            info={"startTime": str(start), "endTime": str(end)} if start else {},
        ))
    for engine_step in batch.details.get("steps", []):
        start = int(engine_step.get("start") or 0)
        end = int(engine_step.get("end") or 0)
        steps.append(KylinStep(
            id=f"{batch.id}-{len(steps):02d}", name=str(engine_step.get("name") or "step"),
            sequence_id=len(steps), exec_start_time=start, exec_end_time=end,
            step_status=_engine_status(engine_step.get("state")), cmd_type=batch.batch_type,
            info={k: str(v) for k, v in engine_step.items() if k not in ("name", "start", "end") and v is not None},
            run_async=True,
        ))
    return steps


def _progress(steps: list[KylinStep], finished: bool) -> float:
    if finished or not steps:
        return 100.0 if finished else 0.0
    done = sum(1 for s in steps if s.step_status == KylinStatus.FINISHED)
    return round(100.0 * done / len(steps), 2)


def batch_job(batch: BatchRecord) -> KylinJob:
    now = _now()
    steps = batch_steps(batch)
    name = batch.name or str(batch.id)
    status = OF_BATCH.get(batch.state, KylinStatus.PENDING)
    return KylinJob(
        uuid=str(batch.id), id=str(batch.id), last_modified=batch.update_time, version=gateway.__version__,
        name=name, job_name=name, type=batch.batch_type, duration=_seconds(batch.claim_time, batch.end_time, now),
        related_cube=name, display_cube_name=name, exec_start_time=batch.claim_time,
        exec_end_time=batch.end_time, steps=steps, submitter=batch.real_user, job_status=status,
        progress=_progress(steps, status == KylinStatus.FINISHED), project=batch.project,
        create_time=batch.create_time,
    )


def run_steps(run: RunRecord, nodes: list[NodeRecord], batches: dict[str, BatchRecord]) -> list[KylinStep]:
    steps: list[KylinStep] = []
    for node in sorted(nodes, key=lambda n: n.position):
        batch = batches.get(node.node_id)
        steps.append(KylinStep(
            id=f"{run.id}-{len(steps):02d}", name=node.node_id, sequence_id=len(steps),
            exec_start_time=node.start_time, exec_end_time=node.end_time,
            step_status=OF_NODE.get(node.state, KylinStatus.PENDING),
            cmd_type=batch.batch_type if batch is not None else "NODE",
            info={"batchId": str(node.batch_id)} if node.batch_id else {},
            run_async=True,
        ))
    return steps


def run_job(run: RunRecord, nodes: list[NodeRecord], batches: dict[str, BatchRecord]) -> KylinJob:
    now = _now()
    steps = run_steps(run, nodes, batches)
    status = OF_RUN.get(run.state, KylinStatus.PENDING)
    return KylinJob(
        uuid=str(run.id), id=str(run.id), last_modified=run.update_time, version=gateway.__version__,
        name=run.job, job_name=run.job, type="RUN", duration=_seconds(run.start_time, run.end_time, now),
        related_cube=run.job, display_cube_name=run.job, exec_start_time=run.start_time,
        exec_end_time=run.end_time if run.state in RUN_TERMINAL else 0, steps=steps, submitter=run.real_user,
        job_status=status, progress=_progress(steps, status == KylinStatus.FINISHED), project=run.project,
        create_time=run.create_time,
    )
