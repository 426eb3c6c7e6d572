"""LOCAL: run a program on the gateway's machine, with no shell. appId = local-<pid>."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import time
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.base import (
    AppInfo,
    BatchFacts,
    EngineContext,
    Event,
    Exited,
    Handle,
    InvalidRequest,
    LaunchSpec,
    LogLines,
    Note,
    NotSupported,
    csv_list,
)
from engines.process import ProcessRun, ProcessSupervisor, clean_env
from engines.process_handle import ProcessExit, ProcessHandle

FOUND_CACHE_SECONDS = 5.0
FOUND_CACHE_SIZE = 1024
SHELL = "/bin/sh"


class LocalExit(BatchFacts):
    """batchInfo.local: the program's end as the runner recorded it."""

    local: ProcessExit


class LocalPaused(BatchFacts):
    """batchInfo after a pause: how the program was stopped."""

    paused_by: str = Field(serialization_alias="pausedBy")


class LocalRun:
    def __init__(self, process: ProcessRun, grace: float, *, announce: bool) -> None:
        self._process = process
        self._grace = grace
        self._announce = announce

    @property
    def handle(self) -> ProcessHandle:
        return self._process.handle

    @property
    def process(self) -> ProcessRun:
        return self._process

    async def events(self) -> AsyncIterator[Event]:
        if self._announce:
            yield AppInfo(app_id=f"local-{self._process.pid}", app_state="RUNNING", running=True)
        async for event in self._process.output():
            if isinstance(event, Exited):
                yield Exited(event.app_state, event.diagnostic, LocalExit(local=ProcessExit.parse(event.info)))
            else:
                yield event

    async def kill(self) -> None:
        await self._process.terminate(self._grace)

    async def pause(self) -> LocalPaused:
        if not self._process.signal_group(signal.SIGSTOP):
            raise NotSupported("the program has already exited")
        return LocalPaused(paused_by="SIGSTOP")

    async def resume(self) -> BatchFacts:
        if not self._process.signal_group(signal.SIGCONT):
            raise NotSupported("the program has already exited")
        return BatchFacts()

    async def detach(self) -> None:
        self._process.detach()


class LocalEngine:
    batch_types = frozenset({"LOCAL"})

    def __init__(
        self, supervisor: ProcessSupervisor, *, allowed_programs: Collection[str] = (), kill_grace: float = 10.0
    ) -> None:
        self._sup = supervisor
        self._allowed = {str(Path(p)) for p in allowed_programs}
        # The files the entries name, links resolved: a program is allowed by any name that leads to it.
        self._allowed_files = {os.path.realpath(found) for p in self._allowed
                               if (found := p if "/" in p else shutil.which(p)) is not None}
        self._grace = kill_grace
        self._found: dict[str, tuple[float, str]] = {}

    def _program(self, resource: str) -> str | None:
        # A PATH search is a stat per PATH entry, on every submit: remember what was found for a while.
        # Only hits are kept, so a program installed a moment ago is found at once.
        now = time.monotonic()
        hit = self._found.get(resource)
        if hit is not None and hit[0] > now:
            return hit[1]
        if "/" in resource:
            path = Path(resource)
            program = str(path) if path.is_file() else None
        else:
            program = shutil.which(resource)
        if program is not None:
            if len(self._found) >= FOUND_CACHE_SIZE:
                self._found.clear()
            self._found[resource] = (now + FOUND_CACHE_SECONDS, program)
        return program

    def pause_refusal(self, spec: LaunchSpec) -> str | None:
        return None  # SIGSTOP and SIGCONT on the process group work for any program

    def validate(self, spec: LaunchSpec) -> None:
        """The allow-list governs the program that actually executes: the resource itself, or the
        interpreter of a .py (the gateway's Python) or .sh (/bin/sh) resource, wherever the file comes
        from (a path, an uploaded file, an artifact)."""
        program = self._program(spec.resource) if spec.resource_ready else spec.resource
        if program is None:
            raise InvalidRequest("resource", f"program {spec.resource!r} not found")
        runs = self.executable(program)
        if not self._allowed or self._allows(runs) or (runs == program and spec.resource in self._allowed):
            return
        if runs != program:
            raise InvalidRequest("resource", f"{spec.resource!r} runs with {runs}, which is not in the LOCAL "
                                             "allow-list")
        raise InvalidRequest("resource", f"program {spec.resource!r} is not in the LOCAL allow-list")

    def _allows(self, program: str) -> bool:
        return program in self._allowed or os.path.realpath(program) in self._allowed_files

    def executable(self, program: str) -> str:
        """What execve runs for a program: its interpreter for a .py or .sh file, else the program."""
        if program.endswith(".py"):
            return self._sup.python
        if program.endswith(".sh"):
            return SHELL
        return program

    def argv(self, spec: LaunchSpec) -> list[str]:
        program = self._program(spec.resource) or spec.resource
        runs = self.executable(program)
        return [program, *spec.args] if runs == program else [runs, program, *spec.args]

    async def submit(self, spec: LaunchSpec) -> LocalRun:
        argv = self.argv(spec)
        env = clean_env({"BATCHGATE_BATCH_ID": spec.batch_id, "BATCHGATE_USER": spec.user})
        process = await self._sup.launch(argv, spec.workdir, env)
        return _Announced(process, self._grace, argv)

    async def recover(self, spec: LaunchSpec, handle: Handle, offset: int) -> LocalRun | None:
        process = self._sup.attach(ProcessHandle.parse(handle), offset)
        if process is None:
            return None
        return LocalRun(process, self._grace, announce=False)


class _Announced(LocalRun):
    """A fresh launch: the log starts with the command line, then the app id is reported."""

    def __init__(self, process: ProcessRun, grace: float, argv: list[str]) -> None:
        super().__init__(process, grace, announce=True)
        self._argv = argv

    async def events(self) -> AsyncIterator[Event]:
        yield Note(f"launched pid {self._process.pid}: {shlex.join(self._argv)}")
        async for event in super().events():
            yield event


__all__ = ["LocalEngine", "LocalRun", "LogLines"]


class LocalSettings(BaseSettings):
    """BATCHGATE_LOCAL_PROGRAMS: the programs a LOCAL batch may run (empty: any)."""

    model_config = SettingsConfigDict(extra="ignore")

    programs: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _programs = field_validator("programs", mode="before")(csv_list)


class LocalPlugin:
    name = "local"
    batch_types = LocalEngine.batch_types
    settings = LocalSettings
    enabled_with_users = False  # a LOCAL batch runs a program on the gateway's own machine

    def create(self, settings: LocalSettings, context: EngineContext) -> LocalEngine:
        return LocalEngine(context.processes, allowed_programs=settings.programs, kill_grace=context.kill_grace)


PLUGIN = LocalPlugin()
