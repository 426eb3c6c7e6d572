"""What a Flink batch knows about its Flink side, as typed state: the phase of the run, the savepoint
request under way, and the facts recover() needs (the handle's "flink" part) with the one conversion to
and from the JSON the gateway stores. batchInfo.flink at the end is `FlinkInfo`.

The stored form is the one earlier versions wrote (cli_done, paused, resuming, pausing, ...), so that a
gateway re-attaches to batches launched before an upgrade, and an older one to batches launched after.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator

from engines.base import BatchFacts
from engines.flink_cli import Target, fixed_job_id
from engines.process_handle import ProcessExit, ProcessHandle


class Phase(StrEnum):
    """Where a Flink batch is. A launcher (`flink run`) runs in LAUNCHING and RESUMING only."""

    LAUNCHING = "launching"  # `flink run` runs: it submits the job (local target: it is the job)
    FOLLOWING = "following"  # the launcher has exited; the job is followed on the cluster
    PAUSING = "pausing"  # a stop with a savepoint is under way
    PAUSED = "paused"  # stopped with a savepoint; no job runs
    RESUMING = "resuming"  # `flink run -s <savepoint>` runs and has not printed the new JobID yet

    @property
    def launcher_running(self) -> bool:
        return self in (Phase.LAUNCHING, Phase.RESUMING)

    @property
    def paused(self) -> bool:
        return self in (Phase.PAUSED, Phase.RESUMING)

    @property
    def holding(self) -> bool:
        """A stop with a savepoint is under way or done: the job's FINISHED is a pause, not the end."""
        return self in (Phase.PAUSING, Phase.PAUSED, Phase.RESUMING)


@dataclass
class SavepointRequest:
    """A stop with a savepoint asked of the JobManager (kept, so that a restart follows it up)."""

    job: str
    request: str
    dir: str

    def to_dict(self) -> dict[str, str]:
        return {"job": self.job, "request": self.request, "dir": self.dir}

    @classmethod
    def from_dict(cls, data: object) -> SavepointRequest | None:
        if not isinstance(data, Mapping) or not data.get("job") or not data.get("request"):
            return None
        return cls(str(data["job"]), str(data["request"]), str(data.get("dir") or ""))


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _text(value: object) -> str | None:
    return str(value) if value else None


@dataclass
class FlinkFacts:
    """The Flink side of a batch's handle.

    job_ids are the jobs followed now, app_ids every JobID so far (across resumes); submitted is when
    the current launcher started; argv the launch command (for a resume); savepoint the last pause's;
    yarn_app and tracking_url the YARN application of a yarn-application batch.
    """

    target: str
    rest_url: str | None = None
    phase: Phase = Phase.LAUNCHING
    submitted: float = 0.0
    job_ids: list[str] = field(default_factory=list)
    app_ids: list[str] = field(default_factory=list)
    argv: list[str] | None = None
    savepoint: str | None = None
    paused_job: str | None = None
    pending: SavepointRequest | None = None  # only while PAUSING
    restored_from: str | None = None
    yarn_app: str | None = None
    tracking_url: str | None = None
    tracked: bool = False  # tracking_url is the RM's own (not the proxy path guessed before it answered)

    @classmethod
    def new(cls, batch_id: str, target: Target, rest_url: str | None) -> FlinkFacts:
        """A launch's facts; an application target's JobID is known in advance."""
        jobs = [fixed_job_id(batch_id)] if target.application else []
        return cls(target=target.name, rest_url=rest_url, submitted=time.time(), job_ids=jobs, app_ids=list(jobs))

    @property
    def cli_done(self) -> bool:
        return not self.phase.launcher_running

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlinkFacts:
        """The stored form (handle["flink"]) as typed facts."""
        paused = bool(data.get("paused"))
        pending = None if paused else SavepointRequest.from_dict(data.get("pausing"))
        if paused:
            phase = Phase.RESUMING if data.get("resuming") else Phase.PAUSED
        elif pending is not None:
            phase = Phase.PAUSING
        else:
            phase = Phase.FOLLOWING if data.get("cli_done") else Phase.LAUNCHING
        job_ids = _strings(data.get("job_ids"))
        submitted = data.get("submitted")
        return cls(
            target=str(data.get("target")), rest_url=_text(data.get("rest_url")), phase=phase,
            submitted=float(submitted) if isinstance(submitted, int | float) else 0.0,
            job_ids=job_ids, app_ids=_strings(data.get("app_ids")) or list(job_ids),
            argv=_strings(data["argv"]) if isinstance(data.get("argv"), list) else None,
            savepoint=_text(data.get("savepoint")), paused_job=_text(data.get("paused_job")),
            pending=pending, restored_from=_text(data.get("restored_from")), yarn_app=_text(data.get("yarn_app")),
            tracking_url=_text(data.get("tracking_url")), tracked=bool(data.get("tracked")),
        )

    def to_dict(self) -> dict[str, object]:
        """The stored form: JSON, in the keys every version reads."""
        data: dict[str, object] = {
            "target": self.target, "rest_url": self.rest_url, "cli_done": self.cli_done,
            "submitted": self.submitted, "job_ids": list(self.job_ids), "app_ids": list(self.app_ids),
            "paused": self.phase.paused, "resuming": self.phase is Phase.RESUMING,
        }
        if self.argv is not None:
            data["argv"] = list(self.argv)
        if self.pending is not None and self.phase is Phase.PAUSING:
            data["pausing"] = self.pending.to_dict()
        optional = {"savepoint": self.savepoint, "paused_job": self.paused_job if self.phase.paused else None,
                    "restored_from": self.restored_from, "yarn_app": self.yarn_app,
                    "tracking_url": self.tracking_url}
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.tracking_url is not None:
            data["tracked"] = self.tracked
        return data


@dataclass(frozen=True)
class FlinkInfo:
    """batchInfo.flink when a batch ends: where it ran, its jobs and their last states."""

    target: str
    job_ids: list[str]
    rest_url: str | None
    job_states: dict[str, str]
    app_ids: list[str]
    savepoint: str | None = None
    yarn_app: str | None = None

    @classmethod
    def of(cls, facts: FlinkFacts, job_states: Mapping[str, str]) -> FlinkInfo:
        return cls(target=facts.target, job_ids=list(facts.job_ids), rest_url=facts.rest_url,
                   job_states=dict(job_states), app_ids=list(facts.app_ids), savepoint=facts.savepoint,
                   yarn_app=facts.yarn_app)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"target": self.target, "jobIds": list(self.job_ids), "restUrl": self.rest_url,
                                   "jobStates": dict(self.job_states)}
        if self.app_ids != self.job_ids:
            data["appIds"] = list(self.app_ids)
        if self.savepoint:
            data["savepoint"] = self.savepoint
        if self.yarn_app:
            data["yarnApplicationId"] = self.yarn_app
        return data


def _facts(value: object) -> FlinkFacts | None:
    if isinstance(value, FlinkFacts):
        return value
    return FlinkFacts.from_dict(value) if isinstance(value, Mapping) and value else None


# FlinkFacts in a model: parsed from and stored as the stored form above; None if nothing was stored.
StoredFacts = Annotated[FlinkFacts | None, PlainValidator(_facts),
                        PlainSerializer(lambda facts: facts.to_dict() if facts is not None else None)]


class FlinkHandle(ProcessHandle):
    """A Flink batch's handle: the launcher's process (the latest one: a resume launches another) and,
    under "flink", the facts. A handle without them was stored before the launch was noted."""

    flink: StoredFacts = None

    @classmethod
    def of(cls, base: ProcessHandle, facts: FlinkFacts) -> FlinkHandle:
        """The handle now: the process's and a copy of the facts (the run goes on changing its own)."""
        return cls.model_validate({**base.stored(), "flink": copy.deepcopy(facts)})


class FlinkExit(BatchFacts):
    """batchInfo when a batch ends: "flink" (FlinkInfo) and "launcher", the launcher's end as the runner
    recorded it (if it was followed to its end)."""

    flink: FlinkInfo
    launcher: ProcessExit | None = None

    def stored(self) -> dict[str, Any]:
        data: dict[str, Any] = {"flink": self.flink.to_dict()}
        launcher = self.launcher.stored() if self.launcher is not None else {}
        if launcher:
            data["launcher"] = launcher
        return data


class FlinkPaused(BatchFacts):
    """batchInfo after a pause: where the savepoint is."""

    savepoint: str | None


class FlinkResumed(BatchFacts):
    """batchInfo after a resume: every JobID so far."""

    app_ids: list[str] = Field(serialization_alias="appIds")
