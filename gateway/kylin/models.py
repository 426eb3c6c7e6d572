"""Apache Kylin's job API as its docs write it (docs/kylin.md): the {code, data, msg} envelope, Kylin's
job and step fields and states, and which Kylin status each batch, run and node state is.

A Kylin job is a batch or a run; gateway/kylin/views.py turns them into these shapes, and the handlers
ask it.
"""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.contract.batches import BatchState
from gateway.errors import BadRequest

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


def job_uuid(raw: str) -> uuid.UUID:
    """A job id: a batch's or a run's UUID."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"jobId: {raw!r} is not a job id (a batch or run id)") from None


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
