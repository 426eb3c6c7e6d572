"""The jobs and runs API contract (DESIGN.md §8)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from gateway.contract.batches import ApiModel

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Permission(StrEnum):
    READ = "READ"
    EXECUTE = "EXECUTE"
    WRITE = "WRITE"
    SCHEDULE = "SCHEDULE"


class FailureAction(StrEnum):
    FINISH_CURRENTLY_RUNNING = "FINISH_CURRENTLY_RUNNING"
    CANCEL_ALL = "CANCEL_ALL"
    FINISH_ALL_POSSIBLE = "FINISH_ALL_POSSIBLE"


class RunState(StrEnum):
    PREPARING = "PREPARING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class NodeState(StrEnum):
    READY = "READY"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


RUN_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.KILLED})
NODE_TERMINAL = frozenset({NodeState.SUCCEEDED, NodeState.FAILED, NodeState.CANCELLED, NodeState.SKIPPED})


class NodeSpec(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    id: str
    request: dict[str, Any]
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not NODE_ID.match(value):
            raise ValueError(f"node id {value!r} must be 1-128 letters, digits, '.', '_' or '-'")
        return value


class JobSpec(ApiModel):
    """What a client sends to create or update a job."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str | None = None
    description: str | None = Field(default=None, max_length=4096)
    nodes: list[NodeSpec] = Field(min_length=1, max_length=2000)
    variables: dict[str, str] = Field(default_factory=dict)
    failure_action: FailureAction = Field(default=FailureAction.FINISH_CURRENTLY_RUNNING, alias="failureAction")
    permissions: dict[str, list[Permission]] = Field(default_factory=dict)
    project: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not JOB_NAME.match(value):
            raise ValueError(f"job name {value!r} must be 1-128 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"variable name {key!r} must be an identifier")
        return value


class NodeOut(ApiModel):
    id: str
    request: dict[str, Any]
    depends_on: list[str] = Field(alias="dependsOn")
    in_: list[str] = Field(alias="in")
    out: list[str]


class Job(ApiModel):
    name: str
    owner: str
    version: int
    description: str | None = None
    nodes: list[NodeOut]
    variables: dict[str, str]
    failure_action: str = Field(alias="failureAction")
    permissions: dict[str, list[str]]
    project: str | None = None
    created_at: int = Field(alias="createTime")
    updated_at: int = Field(alias="updateTime")


class JobList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    jobs: list[Job]


class TriggerRequest(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    variables: dict[str, str] = Field(default_factory=dict)
    disabled: list[str] = Field(default_factory=list)
    failure_action: FailureAction | None = Field(default=None, alias="failureAction")


class RetryRequest(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    variables: dict[str, str] = Field(default_factory=dict)


class RunNode(ApiModel):
    id: str
    state: NodeState
    batch_id: str | None = Field(default=None, alias="batchId")
    in_: list[str] = Field(alias="in")
    attempt: int
    start_time: int = Field(alias="startTime")
    end_time: int = Field(alias="endTime")
    update_time: int = Field(alias="updateTime")


class Run(ApiModel):
    id: str
    job: str
    version: int
    state: RunState
    trigger: str
    submit_user: str = Field(alias="submitUser")
    variables: dict[str, str]
    failure_action: str = Field(alias="failureAction")
    attempt: int
    project: str | None = None
    schedule_id: str | None = Field(default=None, alias="scheduleId")
    fire_time: int | None = Field(default=None, alias="fireTime")
    create_time: int = Field(alias="createTime")
    start_time: int = Field(alias="startTime")
    end_time: int = Field(alias="endTime")
    update_time: int = Field(alias="updateTime")
    nodes: list[RunNode]


class RunList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    runs: list[Run]


class JobLogEntry(ApiModel):
    id: int
    time: int
    actor: str
    action: str
    detail: dict[str, Any]


class JobLog(ApiModel):
    from_: int = Field(alias="from")
    total: int
    entries: list[JobLogEntry]


