"""The schedules and SLAs API contract (DESIGN.md §9, docs/schedules.md)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from gateway.contract.batches import ApiModel

EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


class Concurrency(StrEnum):
    SKIP = "SKIP"
    QUEUE = "QUEUE"
    ALLOW = "ALLOW"


class Catchup(StrEnum):
    NONE = "NONE"
    LAST = "LAST"
    ALL = "ALL"


class Rule(StrEnum):
    START_WITHIN = "START_WITHIN"
    FINISH_WITHIN = "FINISH_WITHIN"
    SUCCEED_WITHIN = "SUCCEED_WITHIN"


class Action(StrEnum):
    ALERT = "ALERT"
    KILL = "KILL"


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class ScheduleSpec(ApiModel):
    """What a client sends to create (POST) or replace (PUT) a schedule."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    job: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=4096)
    cron: str | None = Field(default=None, max_length=256)
    every: str | None = Field(default=None, max_length=32)
    timezone: str = Field(default="UTC", max_length=64)
    variables: dict[str, str] = Field(default_factory=dict)
    concurrency: Concurrency = Concurrency.SKIP
    catchup: Catchup = Catchup.LAST
    catchup_bound: int | None = Field(default=None, ge=1, le=1000, alias="catchupBound")
    start_at: int | str | None = Field(default=None, alias="startAt",
                                       description="epoch ms, or ISO 8601 (without an offset: in the timezone)")
    end_at: int | str | None = Field(default=None, alias="endAt")
    enabled: bool = True

    _concurrency = field_validator("concurrency", "catchup", mode="before")(_upper)

    @field_validator("start_at", "end_at")
    @classmethod
    def _time(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 <= value < 2**53:
            raise ValueError("must be epoch milliseconds")
        return value


class TickOutcome(StrEnum):
    """What became of a schedule's fire time."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    FIRED = "FIRED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class TickOut(ApiModel):
    fire_time: int = Field(alias="fireTime")
    outcome: TickOutcome = Field(description="PENDING, QUEUED, FIRED, SKIPPED or FAILED")
    reason: str | None = None
    run_id: str | None = Field(default=None, alias="runId")
    instance: str
    time: int = Field(description="when the outcome was recorded (epoch ms)")


class Schedule(ApiModel):
    id: str
    job: str
    owner: str
    description: str | None = None
    cron: str | None = None
    every: str | None = None
    timezone: str
    variables: dict[str, str]
    concurrency: str
    catchup: str
    catchup_bound: int = Field(alias="catchupBound")
    start_at: int | None = Field(default=None, alias="startAt")
    end_at: int | None = Field(default=None, alias="endAt")
    enabled: bool
    next_fire_times: list[int] = Field(alias="nextFireTimes", description="the next five fire times (epoch ms)")
    last_fire: TickOut | None = Field(default=None, alias="lastFire")
    create_time: int = Field(alias="createTime")
    update_time: int = Field(alias="updateTime")


class ScheduleList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    schedules: list[Schedule]


class TickList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    ticks: list[TickOut]


class SlaSpec(ApiModel):
    """What a client sends to create an SLA: on a job (each run), one node of it, or a schedule (each tick)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    job: str | None = Field(default=None, max_length=128)
    schedule: str | None = Field(default=None, max_length=64, description="a schedule id")
    node: str | None = Field(default=None, max_length=128)
    rule: Rule
    duration: str = Field(max_length=32, description="30s, 15m, 1h30m, 2d, 1w")
    actions: list[Action] = Field(default_factory=lambda: [Action.ALERT], min_length=1, max_length=2)
    webhook: str | None = Field(default=None, max_length=2048)
    emails: list[str] = Field(default_factory=list, max_length=20)
    description: str | None = Field(default=None, max_length=4096)

    _rule = field_validator("rule", mode="before")(_upper)

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, value: Any) -> Any:
        return [_upper(v) for v in value] if isinstance(value, list) else value

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not EMAIL.match(address) or len(address) > 254:
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class Sla(ApiModel):
    id: str
    owner: str
    job: str | None = None
    schedule: str | None = None
    batch: str | None = None
    node: str | None = None
    rule: str
    duration: str
    duration_ms: int = Field(alias="durationMs")
    actions: list[str]
    webhook: str | None = None
    emails: list[str]
    description: str | None = None
    breaches: int
    create_time: int = Field(alias="createTime")


class SlaList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    slas: list[Sla]


class Breach(ApiModel):
    id: int
    sla: str
    rule: str
    kind: str = Field(description="RUN, BATCH or TICK (a schedule's tick)")
    target: str
    job: str | None = None
    run_id: str | None = Field(default=None, alias="runId")
    batch_id: str | None = Field(default=None, alias="batchId")
    node: str | None = None
    start_time: int = Field(alias="startTime", description="what the duration counts from (epoch ms)")
    due_time: int = Field(alias="dueTime")
    breach_time: int = Field(alias="breachTime")
    instance: str
    actions_done: bool = Field(alias="actionsDone")
    results: dict[str, Any] = Field(description="what each action did: webhook, email, kill")


class BreachList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    breaches: list[Breach]
