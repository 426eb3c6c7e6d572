"""Spark jobs and stages from the event log Spark writes into the batch's dir (JSON lines:
SparkListenerJobStart/End, StageSubmitted/Completed with the task metrics in "Stage Info"/"Accumulables",
TaskEnd for the task counts), read once the driver is gone, so that a short run that ended before its UI
was asked still has its details. It reads files: run it in a thread.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from engines.spark_details import STAGE_METRICS, Job, Snapshot, Stage, as_count, as_millis, build_snapshot

# The event log is read when the driver ended, before the batch's end is recorded: a bigger one is not read
# (the driver's UI's last snapshot stays). With a snapshot from the UI already, a smaller bound applies.
EVENT_LOG_MAX_BYTES = 512 * 1024 * 1024
EVENT_LOG_MAX_BYTES_WITH_LIVE = 64 * 1024 * 1024
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
        key = (as_count(info.get("Stage ID")), as_count(info.get("Stage Attempt ID")))
        stage = self.stages.get(key)
        if stage is None:
            stage = self.stages[key] = Stage(stage_id=key[0], attempt_id=key[1], name="", start=None, end=None,
                                             state=state)
        stage.name = str(info.get("Stage Name") or stage.name)
        stage.num_tasks = as_count(info.get("Number of Tasks")) or stage.num_tasks
        return stage

    def _event(self, event: str, data: dict[str, Any]) -> None:
        if event == "SparkListenerJobStart":
            infos = [i for i in data.get("Stage Infos") or [] if isinstance(i, dict)]
            for info in infos:
                self._stage(info, "PENDING")
            last = max(infos, key=lambda i: as_count(i.get("Stage ID")), default={})
            name = last.get("Stage Name") or ""  # as the REST API names a job: after its last stage
            job_id = as_count(data.get("Job ID"))
            stage_ids = ([as_count(s) for s in data.get("Stage IDs") or []]
                         or [as_count(i.get("Stage ID")) for i in infos])
            self.jobs[job_id] = Job(
                job_id=job_id, name=str(name), start=as_millis(data.get("Submission Time")), end=None,
                state="RUNNING", num_tasks=sum(as_count(i.get("Number of Tasks")) for i in infos), stage_ids=stage_ids,
            )
        elif event == "SparkListenerJobEnd":
            job = self.jobs.get(as_count(data.get("Job ID")))
            if job is not None:
                job.end = as_millis(data.get("Completion Time"))
                result = (data.get("Job Result") or {}).get("Result")
                job.state = "SUCCEEDED" if result == "JobSucceeded" else "FAILED"
        elif event == "SparkListenerStageSubmitted":
            info = data.get("Stage Info") or {}
            stage = self._stage(info, "ACTIVE")
            stage.state = "ACTIVE"
            stage.start = as_millis(info.get("Submission Time")) or stage.start
        elif event == "SparkListenerStageCompleted":
            info = data.get("Stage Info") or {}
            stage = self._stage(info, "COMPLETE")
            stage.start = as_millis(info.get("Submission Time")) or stage.start
            stage.end = as_millis(info.get("Completion Time"))
            stage.state = "FAILED" if info.get("Failure Reason") else "COMPLETE"
            metrics = dict.fromkeys(STAGE_METRICS, 0)
            for acc in info.get("Accumulables") or []:
                if isinstance(acc, dict):
                    for key in _ACCUMULATORS.get(str(acc.get("Name")), ()):
                        metrics[key] += as_count(acc.get("Value"))
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

