"""ECHO: a tiny engine plug-in for batchgate (docs/engines/plugins.md). An ECHO batch runs nothing: it
prints its greeting and each of its arguments as log lines, then finishes. BATCHGATE_ECHO_GREETING sets
the greeting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic_settings import BaseSettings

from engines.base import AppInfo, EngineContext, Event, Exited, Handle, InvalidRequest, LaunchSpec, LogLines


class EchoSettings(BaseSettings):
    greeting: str = "hello"


class EchoHandle(Handle):
    """What the gateway stores for an ECHO batch (as {"echo": "<batch id>"})."""

    echo: str


class EchoRun:
    def __init__(self, spec: LaunchSpec, greeting: str) -> None:
        self.handle = EchoHandle(echo=spec.batch_id)
        self._lines = [f"{greeting} from {spec.user}", *spec.args]
        self._stop = asyncio.Event()

    async def events(self) -> AsyncIterator[Event]:
        yield AppInfo(app_id=f"echo-{self.handle.echo[:8]}", app_state="RUNNING", running=True)
        yield LogLines(self._lines)
        yield Exited("KILLED" if self._stop.is_set() else "FINISHED")

    async def kill(self) -> None:
        self._stop.set()

    async def detach(self) -> None:
        pass


class EchoEngine:
    batch_types = frozenset({"ECHO"})

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def validate(self, spec: LaunchSpec) -> None:
        if len(spec.args) > 100:
            raise InvalidRequest("args", "an ECHO batch echoes at most 100 arguments")

    async def submit(self, spec: LaunchSpec) -> EchoRun:
        return EchoRun(spec, self.greeting)

    async def recover(self, spec: LaunchSpec, handle: Handle, offset: int) -> EchoRun | None:
        return None  # nothing outlives the gateway: an ECHO batch found after a restart is lost


class EchoPlugin:
    name = "echo"  # its settings: BATCHGATE_ECHO_<FIELD>
    batch_types = EchoEngine.batch_types
    settings = EchoSettings
    enabled_with_users = True

    def create(self, settings: EchoSettings, context: EngineContext) -> EchoEngine:
        return EchoEngine(settings.greeting)


PLUGIN = EchoPlugin()
