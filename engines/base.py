"""The engine adapter contract. Adapters know nothing of HTTP or SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from engines.process import ProcessSupervisor

# A file in a batch's working dir: the engine started something there without the detached runner (which
# leaves pids.json). The supervisor then re-attaches after a crash, and never launches the batch again.
LAUNCH_MARK = "launched.mark"


def mark_launched(workdir: Path) -> None:
    """Call before starting anything for a batch outside the detached runner (blocking: from a thread)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LAUNCH_MARK).touch()


class EngineError(Exception):
    """A launch failed before any application existed; the message becomes the diagnostic."""


class InvalidRequest(ValueError):
    """A batch request this engine cannot run; `field` names the offending request field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an engine may know about a batch."""

    batch_id: str
    batch_type: str
    user: str
    real_user: str
    name: str | None
    resource: str
    class_name: str | None
    conf: dict[str, str]
    args: list[str]
    workdir: Path
    # False: the resource is a file the gateway writes into the working dir at launch (an uploaded file or
    # an artifact), so validate() checks everything about it but its existence.
    resource_ready: bool = True


class Stored(BaseModel):
    """Facts an engine hands the gateway to keep as JSON. The gateway turns them into JSON with `stored()`
    where it writes them (its storage edge), and never reads their keys.

    The stored form is the one earlier versions wrote: a field given when the model was made is stored (None
    included), a field left out is not, and keys this version does not know pass through unchanged (a
    rolling upgrade: instances of two releases share the database).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    def stored(self) -> dict[str, Any]:
        """The JSON form (what the gateway writes to the database)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Stored | None) -> Self:
        """This model from its stored form, or from a more general model of the same facts."""
        if isinstance(data, cls):
            return data
        return cls.model_validate(data.stored() if isinstance(data, Stored) else dict(data or {}))


class Handle(Stored):
    """What recover() needs to find an application again; each engine declares its own subclass. The
    gateway writes `workdir` alone before a launch (the launch's intent), stores the run's handle once it is
    launched and whenever an AppInfo brings a new one, and hands the stored form back to the engine's
    recover() as a plain Handle, which the engine parses into its own (`MyHandle.parse(handle)`)."""

    workdir: str | None = None

    @property
    def launched(self) -> bool:
        """More is stored than the launch's intent (the working dir alone): something was launched."""
        return len(self.stored()) > 1


class BatchFacts(Stored):
    """Facts an engine adds to batchInfo: how an application ended (Exited.info), what a pause or resume
    did (Pausable). Each engine declares its own subclass; the base one adds nothing."""


@dataclass(frozen=True)
class AppInfo:
    """New facts about the application. None means unchanged."""

    app_id: str | None = None
    app_url: str | None = None
    app_state: str | None = None
    running: bool = False
    diagnostic: str | None = None
    handle: Handle | None = None


@dataclass(frozen=True)
class LogLines:
    """Output lines, and the byte offset in the output reached after them (for exactly-once replay)."""

    lines: list[str]
    offset: int | None = None


@dataclass(frozen=True)
class Note:
    """A line the gateway adds to the batch log about what the engine did ("launching: ...")."""

    text: str


@dataclass(frozen=True)
class Exited:
    """The application ended. app_state is FINISHED, FAILED or KILLED."""

    app_state: str
    diagnostic: str | None = None
    info: BatchFacts = field(default_factory=BatchFacts)


class Step(Stored):
    """One of the engine's own steps (a Spark job or stage, a Flink vertex) as the batch's details show it;
    the engine's own figures (task counts, records in and out, ids) are further fields of its own."""

    name: str
    kind: str = "engine"
    start: int | None = None  # epoch ms
    end: int | None = None
    duration: int | None = None  # ms
    state: str | None = None


@dataclass(frozen=True)
class Details:
    """A snapshot of the engine's own steps and its counters (named totals), replacing the last."""

    steps: list[Step]
    counters: Mapping[str, float]

    @classmethod
    def of(cls, steps: list[dict[str, Any]], counters: Mapping[str, float]) -> Details:
        """From the engine's step records (each a Step's fields), as its code builds them."""
        return cls(steps=[Step.parse(step) for step in steps], counters=dict(counters))

    def stored(self) -> dict[str, Any]:
        """The JSON form (what the gateway writes to the database)."""
        return {"steps": [step.stored() for step in self.steps], "counters": dict(self.counters)}


Event = AppInfo | LogLines | Note | Exited | Details


class NotSupported(Exception):
    """The engine cannot do this for this batch; the message says why (it becomes a 409)."""


class Run(Protocol):
    """One launched (or re-attached) application."""

    @property
    def handle(self) -> Handle:
        """The facts that recover() needs to find the application again."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Events until (and including) Exited. Ends early only if the gateway detaches."""
        ...

    async def kill(self) -> None:
        """Ask the application to stop; Exited follows."""
        ...

    async def detach(self) -> None:
        """Stop watching, leave the application running (gateway shutdown)."""
        ...


@runtime_checkable
class Pausable(Protocol):
    """A run that can be suspended and continued. Optional: runs without it cannot be paused."""

    async def pause(self) -> BatchFacts:
        """Suspend; returns facts for batchInfo (e.g. a savepoint). Raise NotSupported to refuse."""
        ...

    async def resume(self) -> BatchFacts:
        """Continue; returns facts for batchInfo (e.g. a new appId)."""
        ...


class Engine(Protocol):
    """An adapter for one or more batch types."""

    batch_types: frozenset[str]

    def validate(self, spec: LaunchSpec) -> None:
        """Raise InvalidRequest for a request this engine cannot run."""
        ...

    async def submit(self, spec: LaunchSpec) -> Run:
        """Launch and return at once; raise EngineError if nothing could be started."""
        ...

    async def recover(self, spec: LaunchSpec, handle: Handle, offset: int) -> Run | None:
        """Re-attach after a restart; output is replayed from byte `offset`. None if it is gone.

        `handle` is the stored form of the run's handle (an earlier release's too), parsed as a plain
        Handle: the engine parses it into its own model (`MyHandle.parse(handle)`)."""
        ...


def pause_refusal(engine: object, spec: LaunchSpec) -> str | None:
    """Why a running batch of this engine cannot be paused, or None if it can.

    Engines opt in with a `pause_refusal(spec)` method; without one, pausing is refused.
    """
    check = getattr(engine, "pause_refusal", None)
    if check is None:
        return f"{spec.batch_type} batches cannot be paused while they run"
    reason: str | None = check(spec)
    return reason


@dataclass(frozen=True)
class EngineContext:
    """What the gateway hands every engine it creates: the fork server every launch goes through, the
    grace between SIGTERM and SIGKILL when a batch is killed (BATCHGATE_KILL_GRACE_SECONDS), and the
    gateway's data dir, where an engine may keep files of its own (under a folder named after it)."""

    processes: ProcessSupervisor
    kill_grace: float
    data_dir: Path | None = None


class EnginePlugin(Protocol):
    """An engine as the gateway finds it: an object registered under the `batchgate.engines` entry-point
    group (docs/engines/plugins.md). The built-in engines are registered the same way.

    `settings` is a pydantic-settings model; the gateway reads it from BATCHGATE_<NAME>_<FIELD> and from
    the flat names `<name>_<field>` (flags, `Settings(...)`), and hands the result to `create`.
    """

    name: str  # lower case, e.g. "spark"
    batch_types: frozenset[str]  # upper case, e.g. {"SPARK", "PYSPARK"}
    settings: type[Any]
    enabled_with_users: bool  # False: off by default on a gateway with a users file (it runs host programs)

    def create(self, settings: Any, context: EngineContext) -> Engine:
        """The engine, built from its settings; `validate` and `submit` are its own."""
        ...


def csv_list(value: object) -> object:
    """"a, b,c" from the environment or a flag, as a list; anything else as it is (for list settings)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
