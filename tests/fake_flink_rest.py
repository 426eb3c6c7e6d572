"""A fake Flink, for the targets that cannot run here (yarn-application, kubernetes-application) and for
failure modes a real cluster will not show on demand.

- FakeFlinkRest: a real aiohttp server on loopback that serves the documented Flink REST JSON for
  GET /jobs/{id}, GET /jobs/{id}/exceptions, PATCH /jobs/{id}?mode=cancel and DELETE /cluster. Tests
  set job states; a cancel goes CANCELLING, then CANCELED shortly after, as Flink does.
- fake_flink_home(): a Flink home whose bin/flink is a small Python program. It records its argv in
  the batch's working dir, prints the lines the test asked for (JobIDs, "Web Interface" lines) and exits
  with the code the test asked for.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

ARGV_FILE = "fake-flink-argv.json"

_FAKE_FLINK = """#!{python}
import json, os, sys, time
home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(home, "behaviour.json")) as f:
    behaviour = json.load(f)
with open({argv_file!r}, "w") as f:
    json.dump(sys.argv[1:], f)
job_id = behaviour.get("job_id", "")
for i, word in enumerate(sys.argv):
    if word.startswith("$internal.pipeline.job-id="):
        job_id = word.split("=", 1)[1]
for line in behaviour.get("lines", []):
    print(line.format(job_id=job_id, rest=behaviour.get("rest", "")), flush=True)
time.sleep(behaviour.get("sleep", 0))
sys.exit(behaviour.get("exit", 0))
"""


def fake_flink_home(root: Path) -> Path:
    home = root / "fake-flink"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    script = home / "bin" / "flink"
    script.write_text(_FAKE_FLINK.format(python=sys.executable, argv_file=ARGV_FILE))
    script.chmod(0o755)
    set_behaviour(home)
    return home


def set_behaviour(home: Path, *, lines: list[str] | None = None, exit_code: int = 0, sleep: float = 0.0,
                  job_id: str = "", rest: str = "") -> None:
    """What the next `flink` run prints ({job_id} and {rest} are filled in) and how it exits."""
    behaviour = {"lines": lines or [], "exit": exit_code, "sleep": sleep, "job_id": job_id, "rest": rest}
    (home / "behaviour.json").write_text(json.dumps(behaviour))


def recorded_argv(workdir: Path) -> list[str]:
    argv: list[str] = json.loads((workdir / ARGV_FILE).read_text())
    return argv


@dataclass
class FakeJob:
    jid: str
    name: str = "fake-job"
    state: str = "RUNNING"
    start: int = field(default_factory=lambda: int(time.time() * 1000))
    end: int = -1
    failure: str | None = None
    timestamps: dict[str, int] = field(default_factory=dict)

    def set(self, state: str, failure: str | None = None) -> None:
        self.state = state
        now = int(time.time() * 1000)
        self.timestamps[state] = now
        if state in ("FINISHED", "FAILED", "CANCELED"):
            self.end = now
        if failure is not None:
            self.failure = failure

    def body(self) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {
            "jid": self.jid, "name": self.name, "isStoppable": False, "state": self.state,
            "job-type": "STREAMING", "start-time": self.start, "end-time": self.end,
            "duration": (self.end if self.end > 0 else now) - self.start, "maxParallelism": -1, "now": now,
            "timestamps": {s: self.timestamps.get(s, 0) for s in (
                "INITIALIZING", "CREATED", "RUNNING", "FAILING", "FAILED", "CANCELLING", "CANCELED",
                "FINISHED", "RESTARTING", "SUSPENDED", "RECONCILING")},
            "vertices": [], "status-counts": {}, "plan": {"jid": self.jid, "name": self.name, "nodes": []},
        }

    def exceptions(self) -> dict[str, Any]:
        if self.failure is None:
            return {"exceptionHistory": {"entries": [], "truncated": False}}
        trace = (
            "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n"
            "\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(X.java:1)\n"
        )
        concurrent = (
            "java.lang.RuntimeException: Error received from SDK harness: Traceback (most recent call last):\n"
            '  File "/job.py", line 5, in boom\n'
            "    raise ValueError(...)\n"
            f"ValueError: {self.failure}\n"
            "\n\tat org.apache.beam.Foo.bar(Foo.java:1)\n"
        )
        entry = {
            "exceptionName": "org.apache.flink.runtime.JobException", "stacktrace": trace,
            "timestamp": self.timestamps.get("FAILED", int(time.time() * 1000)), "failureLabels": {},
            "concurrentExceptions": [{"exceptionName": "java.lang.RuntimeException", "stacktrace": concurrent,
                                      "timestamp": 1, "failureLabels": {}, "taskName": "Map (1/1)"}],
        }
        return {"exceptionHistory": {"entries": [entry], "truncated": False}}


class FakeFlinkRest:
    """Serves the Flink REST API for the jobs a test adds. Records every request."""

    def __init__(self, cancel_delay: float = 0.3) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[tuple[str, str]] = []
        self.job_polls: list[tuple[float, str]] = []
        self.shutdowns = 0
        self.cancel_delay = cancel_delay
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def add_job(self, jid: str, state: str = "RUNNING", name: str = "fake-job") -> FakeJob:
        job = FakeJob(jid, name=name)
        job.set(state)
        self.jobs[jid] = job
        return job

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/overview", self._overview)
        app.router.add_get("/jobs/{jid}", self._job)
        app.router.add_get("/jobs/{jid}/exceptions", self._exceptions)
        app.router.add_patch("/jobs/{jid}", self._cancel)
        app.router.add_delete("/cluster", self._shutdown)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        response: web.StreamResponse = await handler(request)
        return response

    def _get(self, request: web.Request) -> FakeJob:
        job = self.jobs.get(request.match_info["jid"])
        if job is None:
            raise web.HTTPNotFound(
                text=json.dumps({"errors": [f"org.apache.flink.runtime.rest.NotFoundException: Job "
                                            f"{request.match_info['jid']} not found"]}),
                content_type="application/json")
        return job

    async def _overview(self, request: web.Request) -> web.Response:
        return web.json_response({"taskmanagers": 1, "slots-total": 1, "flink-version": "fake"})

    async def _job(self, request: web.Request) -> web.Response:
        job = self._get(request)
        self.job_polls.append((time.monotonic(), job.jid))
        return web.json_response(job.body())

    async def _exceptions(self, request: web.Request) -> web.Response:
        return web.json_response(self._get(request).exceptions())

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._get(request)
        if request.query.get("mode") != "cancel":
            return web.json_response({"errors": ["mode must be cancel"]}, status=400)
        if job.state not in ("FINISHED", "FAILED", "CANCELED"):
            job.set("CANCELLING")
            asyncio.get_running_loop().call_later(self.cancel_delay, job.set, "CANCELED")
        return web.json_response({}, status=202)

    async def _shutdown(self, request: web.Request) -> web.Response:
        self.shutdowns += 1
        return web.json_response({}, status=200)
