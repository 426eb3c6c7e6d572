"""What the gateway keeps of a runner-supervised process (engines/process.py): its handle, and the
runner's record of its end. Engines that launch through the runner extend the handle with their own facts."""

from __future__ import annotations

from engines.base import BatchFacts, Handle


class ProcessHandle(Handle):
    """A runner-supervised process: the runner's pid and start time (in clock ticks since boot, so that a
    reused pid is not mistaken for it), the program's pid (its process group) and the working dir. Engines
    that launch through the runner extend it with facts of their own."""

    runner_pid: int | None = None
    child_pid: int | None = None
    runner_start: int | None = None

    def process(self) -> ProcessHandle:
        """The process part: the stored form without the fields an engine's subclass adds (keys this version
        does not know stay)."""
        own = type(self).model_fields.keys() - ProcessHandle.model_fields.keys()
        return ProcessHandle.parse({key: value for key, value in self.stored().items() if key not in own})


class ProcessExit(BatchFacts):
    """The runner's record of the program's end (its EXIT file): the exit code, or None and the error that
    kept the program from starting; on an exit also its resource usage (cpu_seconds, max_rss_kb, ...)."""

    exit_code: int | None = None
    error: str | None = None
