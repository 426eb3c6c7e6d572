"""Spark jobs and stages as detail steps, with their task counts, records and bytes.

Two sources give the same steps:
- the driver's REST API (`{ui}/api/v1/applications/{appId}/jobs` and `/stages`) while the driver runs:
  its Spark UI in client and local mode, or the ResourceManager's proxy to it on YARN;
- the event log Spark writes, read once the driver is gone (engines/spark_eventlog.py).

Nothing here knows about batches; `SparkUi` does HTTP through aiohttp with a timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

UI_TIMEOUT = 3.0
MAX_JOB_STEPS = 200  # steps kept per snapshot (the most recent); the counters still cover every stage
MAX_STAGE_STEPS = 400

STAGE_METRICS = ("inputRecords", "outputRecords", "inputBytes", "outputBytes", "shuffleReadRecords",
                 "shuffleReadBytes", "shuffleWriteRecords", "shuffleWriteBytes")
class DetailsUnavailable(Exception):
    """The driver's REST API could not be asked (not up yet, gone, or not a Spark UI)."""


@dataclass
class Job:
    job_id: int
    name: str
    start: int | None
    end: int | None
    state: str  # RUNNING, SUCCEEDED, FAILED, UNKNOWN
    num_tasks: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    stage_ids: list[int] = field(default_factory=list)


@dataclass
class Stage:
    stage_id: int
    attempt_id: int
    name: str
    start: int | None
    end: int | None
    state: str  # ACTIVE, COMPLETE, FAILED, PENDING, SKIPPED
    num_tasks: int = 0
    completed: int = 0
    failed: int = 0
    killed: int = 0
    metrics: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGE_METRICS, 0))


@dataclass(frozen=True)
class Snapshot:
    """Detail steps (each job, then its stages) and the counters summed over stages."""

    steps: list[dict[str, Any]]
    counters: dict[str, Any]
    active: bool  # a job or a stage was still running

    @property
    def jobs(self) -> int:
        return int(self.counters.get("jobs", 0))

    @property
    def stages(self) -> int:
        return int(self.counters.get("stages", 0))


def as_count(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def as_millis(value: Any) -> int | None:
    """Event log times are epoch millis; the REST API says "2026-01-01T10:00:00.123GMT"."""
    if isinstance(value, int | float):
        return int(value) if value > 0 else None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.strptime(value.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000)


def _duration(start: int | None, end: int | None, now: int) -> int:
    return max(0, (end or now) - start) if start else 0


def build_snapshot(jobs: Iterable[Job], stages: Iterable[Stage], now: int) -> Snapshot:
    """Steps: the jobs by id, each followed by its stages (a stage shared by jobs comes with the first)."""
    job_list = sorted(jobs, key=lambda j: j.job_id)
    stage_list = sorted(stages, key=lambda s: (s.stage_id, s.attempt_id))
    ran = [s for s in stage_list if s.state not in ("SKIPPED", "PENDING")]
    counters: dict[str, Any] = {
        "jobs": len(job_list),
        "stages": len(stage_list),
        "tasks": sum(s.num_tasks for s in stage_list if s.state != "SKIPPED"),
        "completedTasks": sum(s.completed for s in ran),
        "failedTasks": sum(s.failed for s in ran),
        **{key: sum(s.metrics.get(key, 0) for s in ran) for key in STAGE_METRICS},
    }
    active = any(j.state == "RUNNING" for j in job_list) or any(s.state == "ACTIVE" for s in stage_list)

    # Keep the most recent jobs and stages when there are very many; the counters above cover them all.
    kept_jobs = job_list[-MAX_JOB_STEPS:]
    kept_stage_keys = {(s.stage_id, s.attempt_id) for s in stage_list[-MAX_STAGE_STEPS:]}
    by_id: dict[int, list[Stage]] = {}
    for stage in stage_list:
        if (stage.stage_id, stage.attempt_id) in kept_stage_keys:
            by_id.setdefault(stage.stage_id, []).append(stage)
    steps: list[dict[str, Any]] = []
    for job in kept_jobs:
        steps.append(_job_step(job, now))
        for stage_id in sorted(job.stage_ids):
            steps.extend(_stage_step(s, now) for s in by_id.pop(stage_id, []))
    for rest in sorted(by_id.items()):
        steps.extend(_stage_step(s, now) for s in rest[1])
    omitted = (len(job_list) - len(kept_jobs)) + (len(stage_list) - len(kept_stage_keys))
    if omitted:
        counters["stepsOmitted"] = omitted
    return Snapshot(steps=steps, counters=counters, active=active)


def _job_step(job: Job, now: int) -> dict[str, Any]:
    return {
        "name": f"job {job.job_id}: {job.name}", "kind": "engine", "type": "job", "jobId": job.job_id,
        "start": job.start, "end": job.end, "duration": _duration(job.start, job.end, now), "state": job.state,
        "numTasks": job.num_tasks, "numCompletedTasks": job.completed, "numFailedTasks": job.failed,
        "numSkippedTasks": job.skipped, "stageIds": sorted(job.stage_ids),
    }


def _stage_step(stage: Stage, now: int) -> dict[str, Any]:
    return {
        "name": f"stage {stage.stage_id}.{stage.attempt_id}: {stage.name}", "kind": "engine", "type": "stage",
        "stageId": stage.stage_id, "attemptId": stage.attempt_id,
        "start": stage.start, "end": stage.end, "duration": _duration(stage.start, stage.end, now),
        "state": stage.state, "numTasks": stage.num_tasks, "numCompleteTasks": stage.completed,
        "numFailedTasks": stage.failed, "numKilledTasks": stage.killed,
        **{key: stage.metrics.get(key, 0) for key in STAGE_METRICS},
    }


# --- the driver's REST API ------------------------------------------------------------------------


def snapshot_from_rest(jobs: list[Any], stages: list[Any], now: int) -> Snapshot:
    """Steps from `/applications/{id}/jobs` and `/applications/{id}/stages` answers."""
    job_list = [
        Job(
            job_id=as_count(j.get("jobId")), name=str(j.get("name") or ""), start=as_millis(j.get("submissionTime")),
            end=as_millis(j.get("completionTime")), state=str(j.get("status") or "UNKNOWN"),
            num_tasks=as_count(j.get("numTasks")), completed=as_count(j.get("numCompletedTasks")),
            failed=as_count(j.get("numFailedTasks")), skipped=as_count(j.get("numSkippedTasks")),
            stage_ids=[as_count(s) for s in j.get("stageIds") or []],
        )
        for j in jobs if isinstance(j, dict)
    ]
    stage_list = [
        Stage(
            stage_id=as_count(s.get("stageId")), attempt_id=as_count(s.get("attemptId")), name=str(s.get("name") or ""),
            start=as_millis(s.get("submissionTime")), end=as_millis(s.get("completionTime")),
            state=str(s.get("status") or "UNKNOWN"), num_tasks=as_count(s.get("numTasks")),
            completed=as_count(s.get("numCompleteTasks")), failed=as_count(s.get("numFailedTasks")),
            killed=as_count(s.get("numKilledTasks")), metrics={key: as_count(s.get(key)) for key in STAGE_METRICS},
        )
        for s in stages if isinstance(s, dict)
    ]
    return build_snapshot(job_list, stage_list, now)


class SparkUi:
    """A driver's Spark UI (or a proxy to it), asked for its application's jobs and stages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id: str | None = None  # the UI's own application id, learned from /api/v1/applications

    async def _get(self, session: aiohttp.ClientSession, path: str) -> Any:
        url = f"{self.base_url}/api/v1/{path}"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=UI_TIMEOUT), max_redirects=3,
                                   headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise DetailsUnavailable(f"GET {url}: HTTP {resp.status}")
                text = await resp.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DetailsUnavailable(f"GET {url}: {type(exc).__name__} {exc}".rstrip()) from None
        try:
            return json.loads(text)
        except ValueError:
            raise DetailsUnavailable(f"GET {url}: not JSON") from None

    async def application(self, session: aiohttp.ClientSession) -> str:
        """The id of the application this UI serves (a driver's UI serves exactly one)."""
        if self.app_id is None:
            apps = await self._get(session, "applications")
            if not isinstance(apps, list) or not apps or not isinstance(apps[0], dict) or not apps[0].get("id"):
                raise DetailsUnavailable(f"{self.base_url}: no application in /api/v1/applications")
            self.app_id = str(apps[0]["id"])
        return self.app_id

    async def snapshot(self, session: aiohttp.ClientSession) -> Snapshot:
        app = quote(await self.application(session), safe="")
        try:
            jobs = await self._get(session, f"applications/{app}/jobs")
            stages = await self._get(session, f"applications/{app}/stages")
        except DetailsUnavailable:
            self.app_id = None  # a new SparkContext may serve this port now: ask again next time
            raise
        if not isinstance(jobs, list) or not isinstance(stages, list):
            raise DetailsUnavailable(f"{self.base_url}: jobs or stages is not a JSON list")
        return snapshot_from_rest(jobs, stages, int(time.time() * 1000))


__all__ = ["DetailsUnavailable", "Snapshot", "SparkUi", "as_count", "as_millis", "build_snapshot", "snapshot_from_rest"]
