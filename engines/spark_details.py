"""Spark jobs and stages as detail steps, with their task counts, records and bytes.

Two sources give the same steps:
- the driver's REST API (`{ui}/api/v1/applications/{appId}/jobs` and `/stages`) while the driver runs:
  its Spark UI in client and local mode, or the ResourceManager's proxy to it on YARN;
- the event log Spark writes (JSON lines: SparkListenerJobStart/End, StageSubmitted/Completed with the
  task metrics in "Stage Info"/"Accumulables", TaskEnd for the task counts), read once the driver is gone,
  so that a short run that ended before the UI was asked still has its details.

Nothing here knows about batches; `SparkUi` does HTTP through aiohttp with a timeout, `read_event_log`
reads files (run it in a thread).
"""

from __future__ import annotations

import importlib
import io
import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import aiohttp

UI_TIMEOUT = 3.0
MAX_JOB_STEPS = 200  # steps kept per snapshot (the most recent); the counters still cover every stage
MAX_STAGE_STEPS = 400
# The event log is read when the driver ended, before the batch's end is recorded: a bigger one is not read
# (the driver's UI's last snapshot stays). With a snapshot from the UI already, a smaller bound applies.
EVENT_LOG_MAX_BYTES = 512 * 1024 * 1024
EVENT_LOG_MAX_BYTES_WITH_LIVE = 64 * 1024 * 1024

STAGE_METRICS = ("inputRecords", "outputRecords", "inputBytes", "outputBytes", "shuffleReadRecords",
                 "shuffleReadBytes", "shuffleWriteRecords", "shuffleWriteBytes")
# Event log accumulators -> stage metrics (shuffle read bytes are remote + local).
_ACCUMULATORS = {
    "internal.metrics.input.recordsRead": ("inputRecords",),
    "internal.metrics.input.bytesRead": ("inputBytes",),
    "internal.metrics.output.recordsWritten": ("outputRecords",),
    "internal.metrics.output.bytesWritten": ("outputBytes",),
    "internal.metrics.shuffle.read.recordsRead": ("shuffleReadRecords",),
    "internal.metrics.shuffle.read.remoteBytesRead": ("shuffleReadBytes",),
    "internal.metrics.shuffle.read.localBytesRead": ("shuffleReadBytes",),
    "internal.metrics.shuffle.write.recordsWritten": ("shuffleWriteRecords",),
    "internal.metrics.shuffle.write.bytesWritten": ("shuffleWriteBytes",),
}


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


def _count(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _millis(value: Any) -> int | None:
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
            job_id=_count(j.get("jobId")), name=str(j.get("name") or ""), start=_millis(j.get("submissionTime")),
            end=_millis(j.get("completionTime")), state=str(j.get("status") or "UNKNOWN"),
            num_tasks=_count(j.get("numTasks")), completed=_count(j.get("numCompletedTasks")),
            failed=_count(j.get("numFailedTasks")), skipped=_count(j.get("numSkippedTasks")),
            stage_ids=[_count(s) for s in j.get("stageIds") or []],
        )
        for j in jobs if isinstance(j, dict)
    ]
    stage_list = [
        Stage(
            stage_id=_count(s.get("stageId")), attempt_id=_count(s.get("attemptId")), name=str(s.get("name") or ""),
            start=_millis(s.get("submissionTime")), end=_millis(s.get("completionTime")),
            state=str(s.get("status") or "UNKNOWN"), num_tasks=_count(s.get("numTasks")),
            completed=_count(s.get("numCompleteTasks")), failed=_count(s.get("numFailedTasks")),
            killed=_count(s.get("numKilledTasks")), metrics={key: _count(s.get(key)) for key in STAGE_METRICS},
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


# --- the event log --------------------------------------------------------------------------------

_EVENT = re.compile(r'\{\s*"Event"\s*:\s*"([^"]+)"')
_TASK_STAGE = re.compile(r'"Stage ID"\s*:\s*(\d+)\s*,\s*"Stage Attempt ID"\s*:\s*(\d+)')
_TASK_REASON = re.compile(r'"Task End Reason"\s*:\s*\{\s*"Reason"\s*:\s*"([^"]+)"')
_COMPRESSED = (".lz4", ".lzf", ".snappy", ".zstd")
_WANTED = frozenset({
    "SparkListenerJobStart", "SparkListenerJobEnd", "SparkListenerStageSubmitted",
    "SparkListenerStageCompleted", "SparkListenerTaskEnd",
})


class EventLogParser:
    """Folds event log lines into jobs and stages. Lines it cannot read (a torn last line) are skipped."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.stages: dict[tuple[int, int], Stage] = {}
        self._job_stage_tasks: dict[int, int] = {}  # stage id -> its task count, from JobStart

    def feed(self, lines: Iterable[str]) -> None:
        for line in lines:
            match = _EVENT.match(line)
            if match is None or match.group(1) not in _WANTED:
                continue
            event = match.group(1)
            if event == "SparkListenerTaskEnd":
                self._task_end(line[:600])  # the ids and the reason come first; skip the metrics
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                self._event(event, data)

    def _stage(self, info: dict[str, Any], state: str) -> Stage:
        key = (_count(info.get("Stage ID")), _count(info.get("Stage Attempt ID")))
        stage = self.stages.get(key)
        if stage is None:
            stage = self.stages[key] = Stage(stage_id=key[0], attempt_id=key[1], name="", start=None, end=None,
                                             state=state)
        stage.name = str(info.get("Stage Name") or stage.name)
        stage.num_tasks = _count(info.get("Number of Tasks")) or stage.num_tasks
        return stage

    def _event(self, event: str, data: dict[str, Any]) -> None:
        if event == "SparkListenerJobStart":
            infos = [i for i in data.get("Stage Infos") or [] if isinstance(i, dict)]
            for info in infos:
                self._stage(info, "PENDING")
            last = max(infos, key=lambda i: _count(i.get("Stage ID")), default={})
            name = last.get("Stage Name") or ""  # as the REST API names a job: after its last stage
            job_id = _count(data.get("Job ID"))
            stage_ids = [_count(s) for s in data.get("Stage IDs") or []] or [_count(i.get("Stage ID")) for i in infos]
            self.jobs[job_id] = Job(
                job_id=job_id, name=str(name), start=_millis(data.get("Submission Time")), end=None,
                state="RUNNING", num_tasks=sum(_count(i.get("Number of Tasks")) for i in infos), stage_ids=stage_ids,
            )
        elif event == "SparkListenerJobEnd":
            job = self.jobs.get(_count(data.get("Job ID")))
            if job is not None:
                job.end = _millis(data.get("Completion Time"))
                result = (data.get("Job Result") or {}).get("Result")
                job.state = "SUCCEEDED" if result == "JobSucceeded" else "FAILED"
        elif event == "SparkListenerStageSubmitted":
            info = data.get("Stage Info") or {}
            stage = self._stage(info, "ACTIVE")
            stage.state = "ACTIVE"
            stage.start = _millis(info.get("Submission Time")) or stage.start
        elif event == "SparkListenerStageCompleted":
            info = data.get("Stage Info") or {}
            stage = self._stage(info, "COMPLETE")
            stage.start = _millis(info.get("Submission Time")) or stage.start
            stage.end = _millis(info.get("Completion Time"))
            stage.state = "FAILED" if info.get("Failure Reason") else "COMPLETE"
            metrics = dict.fromkeys(STAGE_METRICS, 0)
            for acc in info.get("Accumulables") or []:
                if isinstance(acc, dict):
                    for key in _ACCUMULATORS.get(str(acc.get("Name")), ()):
                        metrics[key] += _count(acc.get("Value"))
            stage.metrics = metrics

    def _task_end(self, head: str) -> None:
        ids, reason = _TASK_STAGE.search(head), _TASK_REASON.search(head)
        if ids is None:
            return
        key = (int(ids.group(1)), int(ids.group(2)))
        stage = self.stages.get(key)
        if stage is None:
            stage = self.stages[key] = Stage(stage_id=key[0], attempt_id=key[1], name="", start=None, end=None,
                                             state="ACTIVE")
        what = reason.group(1) if reason else "Success"
        if what == "Success":
            stage.completed += 1
        elif what == "TaskKilled":
            stage.killed += 1
        else:
            stage.failed += 1

    def snapshot(self, now: int) -> Snapshot:
        ended = {sid for job in self.jobs.values() if job.state != "RUNNING" for sid in job.stage_ids}
        by_stage: dict[int, list[Stage]] = {}
        for stage in self.stages.values():
            if stage.state == "PENDING" and stage.stage_id in ended:
                stage.state = "SKIPPED"  # part of a job that ended without running it (its output was reused)
            by_stage.setdefault(stage.stage_id, []).append(stage)
        for job in self.jobs.values():
            mine = [s for sid in job.stage_ids for s in by_stage.get(sid, [])]
            job.completed = sum(s.completed for s in mine)
            job.failed = sum(s.failed for s in mine)
            job.skipped = sum(s.num_tasks for s in mine if s.state == "SKIPPED")
        return build_snapshot(self.jobs.values(), self.stages.values(), now)


def event_log_files(directory: Path, app_id: str | None) -> list[Path]:
    """The event log of `app_id` (or of the only application) in `directory`: the files of a rolling log
    (eventlog_v2_<id>/events_<n>_<id>…) in order, or a single file (<id>[.codec][.inprogress])."""
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    entries = [e for e in entries if not e.name.startswith(".") and not e.name.endswith(".crc")]
    mine = [e for e in entries if app_id and app_id in e.name] or entries
    if not mine:
        return []
    chosen = mine[-1]  # several applications (a script that made several contexts): the latest
    if chosen.is_dir():
        def index(p: Path) -> int:
            parts = p.name.split("_")
            return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0

        return sorted((p for p in chosen.iterdir() if p.name.startswith("events_") and p.is_file()), key=index)
    return [chosen] if chosen.is_file() else []


@contextmanager
def _open_lines(path: Path) -> Iterator[IO[str]]:
    name = path.name.removesuffix(".inprogress")
    with open(path, "rb") as raw:
        if name.endswith(".zstd"):
            try:
                zstandard: Any = importlib.import_module("zstandard")
            except ImportError:
                raise OSError(f"{path.name} is zstd-compressed and the zstandard module is not installed") from None
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with io.TextIOWrapper(reader, encoding="utf-8", errors="replace") as text:
                yield text
        elif name.endswith(_COMPRESSED):
            raise OSError(f"{path.name}: this compression codec cannot be read here")
        else:
            with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as text:
                yield text


def read_event_log(directory: Path, app_id: str | None, max_bytes: int = EVENT_LOG_MAX_BYTES) -> Snapshot | None:
    """The jobs and stages of an application's event log, or None if there is none that can be read."""
    files = event_log_files(directory, app_id)
    try:
        if not files or sum(p.stat().st_size for p in files) > max_bytes:
            return None
    except OSError:
        return None
    parser = EventLogParser()
    for path in files:
        try:
            with _open_lines(path) as lines:
                parser.feed(lines)
        except Exception:  # unreadable, or torn mid-frame (zstandard.ZstdError): keep what was read
            break
    if not parser.jobs and not parser.stages:
        return None
    return parser.snapshot(int(time.time() * 1000))


__all__ = [
    "EVENT_LOG_MAX_BYTES", "EVENT_LOG_MAX_BYTES_WITH_LIVE", "DetailsUnavailable", "EventLogParser", "Snapshot",
    "SparkUi", "read_event_log", "snapshot_from_rest",
]
