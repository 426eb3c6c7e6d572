"""What a Spark batch knows, as typed state: its launcher's and its kill's state, and the facts of its
handle ("spark": what recover() and the cluster APIs need, and batchInfo.spark at the end), with the one
conversion to and from the JSON the gateway stores. The stored form keeps the keys of earlier versions
(batchId, master, deployMode, appId, driverId, ...), and keys this version does not know pass through.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

from engines.base import BatchFacts
from engines.process_handle import ProcessExit, ProcessHandle


class LauncherState(StrEnum):
    """spark-submit as recover() finds it: never launched here, its exit status recorded, running, or gone
    (no process and no exit status: it died while the gateway was away)."""

    NONE = "none"
    EXITED = "exited"
    RUNNING = "running"
    GONE = "gone"


class Kill(Enum):
    """How far a kill of the run has got."""

    NONE = "none"
    REQUESTED = "requested"  # asked for; the cluster API may not know the application yet
    SENT = "sent"  # the cluster API took the kill


class PollTarget(Enum):
    """What the run's poller asks next."""

    API = "api"  # the cluster API
    EVENT_LOG = "eventlog"  # the event log's name, for the application id of a quiet local/client driver
    WAIT = "wait"  # nothing yet (the driver's UI may still be asked for details)


@dataclass(frozen=True)
class AppIds:
    """What a cluster API needs to find an application: whichever of these ids are known."""

    app_id: str | None = None
    driver_id: str | None = None
    pod: str | None = None
    namespace: str | None = None


# Stored key -> field; the order is the stored order.
_KEYS = {
    "batchId": "batch_id", "master": "master", "deployMode": "deploy_mode", "launcherWaits": "launcher_waits",
    "restSubmission": "rest_submission", "namespace": "namespace", "appId": "app_id", "appUrl": "app_url",
    "appState": "app_state", "driverId": "driver_id", "pod": "pod", "uiUrl": "ui_url", "launcher": "launcher",
    "worker": "worker", "amContainerLogs": "am_container_logs",
}


@dataclass
class SparkFacts:
    """The Spark side of a batch's handle."""

    batch_id: str | None = None
    master: str | None = None
    deploy_mode: str | None = None  # client or cluster
    launcher_waits: bool = True  # False: in cluster mode spark-submit returns once the app is submitted
    rest_submission: bool | None = None  # standalone: the batch asked for the master's REST server
    namespace: str | None = None  # Kubernetes
    app_id: str | None = None
    app_url: str | None = None
    app_state: str | None = None
    driver_id: str | None = None  # standalone cluster mode
    pod: str | None = None  # Kubernetes: the driver pod
    ui_url: str | None = None  # where the running driver's UI is reachable (YARN: the RM's proxy)
    launcher: str | None = None  # "jvm": submitted by the long-lived launcher
    worker: str | None = None  # standalone: the worker running the driver
    am_container_logs: str | None = None  # YARN: the application master's logs
    extra: dict[str, Any] = field(default_factory=dict)  # stored keys this version does not know

    @property
    def cluster(self) -> bool:
        return self.deploy_mode == "cluster"

    @property
    def ids(self) -> AppIds:
        return AppIds(app_id=self.app_id, driver_id=self.driver_id, pod=self.pod, namespace=self.namespace)

    def set(self, key: str, value: Any) -> None:
        """A fact by its stored key (appId, worker, amContainerLogs, ...)."""
        name = _KEYS.get(key)
        if name:
            setattr(self, name, value)
        elif value is None:
            self.extra.pop(key, None)
        else:
            self.extra[key] = value

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.set(key, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparkFacts:
        """The stored form (handle["spark"]) as typed facts."""
        facts = cls()
        facts.update({key: value for key, value in data.items() if key != "launcherWaits"})
        facts.launcher_waits = bool(data.get("launcherWaits", True))
        return facts

    def to_dict(self) -> dict[str, Any]:
        """The stored form: JSON, in the keys every version reads; facts not known are left out."""
        data = {key: getattr(self, name) for key, name in _KEYS.items()}
        return {**{key: value for key, value in data.items() if value is not None}, **self.extra}


def _facts(value: object) -> SparkFacts:
    if isinstance(value, SparkFacts):
        return value
    return SparkFacts.from_dict(value if isinstance(value, Mapping) else {})


# SparkFacts in a model: parsed from and stored as the stored form above.
StoredFacts = Annotated[SparkFacts, PlainValidator(_facts), PlainSerializer(lambda facts: facts.to_dict())]


class SparkHandle(ProcessHandle):
    """A Spark batch's handle: spark-submit's process (when one was launched; a submission by the
    long-lived launcher has the working dir alone) and, under "spark", the facts."""

    spark: StoredFacts | None = None

    @classmethod
    def of(cls, base: ProcessHandle, facts: SparkFacts) -> SparkHandle:
        """The handle now: the process's and a copy of the facts (the run goes on changing its own)."""
        return cls.model_validate({**base.stored(), "spark": copy.deepcopy(facts)})


class SparkExit(BatchFacts):
    """batchInfo.spark when a batch ends: the facts but appState, and spark-submit's end as the runner
    recorded it (under "launcher", which replaces the facts' own "launcher": "jvm")."""

    facts: StoredFacts
    launcher: ProcessExit | None = None

    def stored(self) -> dict[str, Any]:
        info = {key: value for key, value in self.facts.to_dict().items() if key != "appState"}
        launcher = self.launcher.stored() if self.launcher is not None else {}
        if launcher:
            info["launcher"] = launcher
        return {"spark": info}
