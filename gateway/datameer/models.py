"""Datameer X's job commands as its docs write them (docs/datameer.md): field names, states, the
`{"status": "success"|"failure"}` answers, and how jobs and runs map onto them.

A Datameer job ("file", "job configuration") is a batchgate job; a job execution is one of its runs.
Jobs and runs get the integer ids (and jobs the UUID) that Datameer's clients use from the dialect ids
(gateway/jobs/numbers.py). This module holds the wire models; gateway/datameer/views.py fills them from the
job service, and the handlers write them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.contract.jobs import NodeState


class DatameerStatus(StrEnum):
    NONE = "_NONE"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_WARNINGS = "COMPLETED_WITH_WARNINGS"
    CANCELED = "CANCELED"
    ERROR = "ERROR"


OF_RUN: dict[str, DatameerStatus] = {
    "PREPARING": DatameerStatus.QUEUED, "RUNNING": DatameerStatus.RUNNING,
    "PAUSED": DatameerStatus.RUNNING,  # Datameer has no paused job: it is still under way
    "SUCCEEDED": DatameerStatus.COMPLETED, "FAILED": DatameerStatus.ERROR, "KILLED": DatameerStatus.CANCELED,
}
TRIGGER = "RESTAPI"  # how Datameer names a run triggered through its REST API
NOT_ACCESSIBLE = "File doesn't exist or isn't accessible with current permissions"


def run_status(state: str, nodes: Collection[str] = ()) -> DatameerStatus:
    """A run's Datameer status from its state (and its nodes' states, when they were read). A run that
    succeeded with nodes skipped (disabled when it was triggered) completed, but not all of it ran:
    COMPLETED_WITH_WARNINGS."""
    status = OF_RUN.get(state, DatameerStatus.QUEUED)
    if status == DatameerStatus.COMPLETED and NodeState.SKIPPED in nodes:
        return DatameerStatus.COMPLETED_WITH_WARNINGS
    return status


def datameer_time(ms: int) -> str | None:
    """Datameer's times: Java's medium date-time in the server's zone, e.g. "Sep 28, 2018 6:44:56 PM"."""
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    hour = moment.hour % 12 or 12
    return f"{moment:%b} {moment.day}, {moment.year} {hour}:{moment:%M:%S} {moment:%p}"


def plain(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def failure(status: int, reason: str) -> web.Response:
    """Datameer's failure answer, with the HTTP status batchgate gives the same failure elsewhere."""
    return web.Response(text=json.dumps({"status": "failure", "reason": reason}), status=status,
                        content_type="application/json")


# --- wire models ---------------------------------------------------------------------------------


class DatameerModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class JobStatusAnswer(DatameerModel):
    status: str = "success"
    file_id: int | None = Field(default=None, alias="file-id")
    job_execution_id: int | None = Field(default=None, alias="job-execution-id")
    job_status: DatameerStatus = Field(alias="job-status")
    start_time: str | None = Field(default=None, alias="start-time")
    stop_time: str | None = Field(default=None, alias="stop-time")


class TriggerAnswer(DatameerModel):
    status: str = "success"
    job_execution_id: int = Field(alias="job-execution-id")
    job_execution_user: str = Field(alias="job-execution-user")
    job_execution_trigger: str = Field(default=TRIGGER, alias="job-execution-trigger")


class RunningJob(DatameerModel):
    job_status: DatameerStatus = Field(alias="jobStatus")
    file_name: str = Field(alias="fileName")
    job_name: str = Field(alias="jobName")
    file_id: int = Field(alias="fileId")
    uuid: str
    creation_date: int = Field(alias="creationDate")
    job_execution_id: int = Field(alias="jobExecutionId")
    dap_job_configuration_id: int = Field(alias="dapJobConfigurationId")
    estimated_time: int = Field(default=0, alias="estimatedTime")
    start_time: int = Field(alias="startTime")


class HistoryEntry(DatameerModel):
    id: int
    job_status: DatameerStatus = Field(alias="jobStatus")


class FileRef(DatameerModel):
    id: int
    uuid: str
    path: str


class JobDetails(DatameerModel):
    start_time: str | None = Field(alias="startTime")
    stop_time: str | None = Field(alias="stopTime")
    job_status: DatameerStatus = Field(alias="jobStatus")
    job_configuration_id: int = Field(alias="jobConfigurationId")
    file: FileRef
    success_count: int = Field(alias="successCount")
    failure_count: int = Field(alias="failureCount")
    counters: dict[str, Any]


class PlanStep(DatameerModel):
    job_configuration_name: str = Field(alias="job-configuration-name")
    job_configuration_id: int = Field(alias="job-configuration-id")
    trigger: bool = True
    job_execution_id: int = Field(alias="job-execution-id")


class PlanAnswer(DatameerModel):
    status: str = "success"
    execution_plan: list[PlanStep] = Field(alias="execution-plan")


class SequentialTrigger(DatameerModel):
    """The sequential trigger's body: the jobs in order, and variables for all of them."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    variables: dict[str, str] = Field(default_factory=dict)
    file_ids: list[int | str] = Field(alias="fileIds", min_length=1, max_length=100)


def now_ms() -> int:
    return int(time.time() * 1000)
