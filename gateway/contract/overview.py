"""The wire models of the summary views: batch statistics over time and running against the limits."""

from __future__ import annotations

from pydantic import Field

from gateway.contract.batches import ApiModel


class StatsBucket(ApiModel):
    """One time bucket [start, start + bucket): batches created in it (by their state now), ended in it
    (by their end state), and how many were queued and running at some moment of it."""

    start: int
    created: dict[str, int] = Field(default_factory=dict)
    ended: dict[str, int] = Field(default_factory=dict)
    queued: int = 0
    running: int = 0


class BatchStats(ApiModel):
    """GET /api/v1/stats/batches: the caller's batches (an admin's: everyone's) from `from` to `to`
    (epoch ms; `from` aligned down to a whole bucket), in buckets of `bucket` ms."""

    from_: int = Field(alias="from")
    to: int
    bucket: int
    buckets: list[StatsBucket]


class LimitUsage(ApiModel):
    """Batches counted against a limit (PENDING, RUNNING and running ones paused) and queued behind it;
    `limit` 0 means none."""

    limit: int
    running: int
    queued: int


class UserLimit(LimitUsage):
    user: str


class TypeLimit(LimitUsage):
    batch_type: str = Field(alias="batchType")


class LimitsView(ApiModel):
    """GET /api/v1/limits: the whole gateway against its global limit, each enabled type against its
    limit, and users against the per-user limit (the caller only; an admin sees every user with batches
    running or queued). Counts only, never whose batches they are."""

    total: LimitUsage
    per_user: list[UserLimit] = Field(alias="perUser")
    per_type: list[TypeLimit] = Field(alias="perType")
