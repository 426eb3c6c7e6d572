"""A small client for the Flink REST API, and how Flink's job states map to batchgate's.

Documented endpoints only: GET /jobs/{id}, GET /jobs/{id}/exceptions, PATCH /jobs/{id}?mode=cancel,
POST /jobs/{id}/stop (stop with a savepoint), GET /jobs/{id}/savepoints/{request id} and DELETE /cluster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from engines.flink_cli import MAX_DIAGNOSTIC, CauseScanner

# Flink JobStatus -> batchgate appState.
APP_STATES = {
    "INITIALIZING": "PENDING",
    "CREATED": "PENDING",
    "SUSPENDED": "PENDING",  # terminal for this JobManager only: HA brings the job back elsewhere
    "RUNNING": "RUNNING",
    "RESTARTING": "RUNNING",
    "RECONCILING": "RUNNING",
    "FAILING": "RUNNING",
    "CANCELLING": "RUNNING",
    "FINISHED": "FINISHED",
    "FAILED": "FAILED",
    "CANCELED": "KILLED",
}
TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED"})
NOT_FOUND = "NOT_FOUND"  # ours, not Flink's: the cluster does not know the job
ENDED = TERMINAL | {NOT_FOUND}
# States that are about to change: polled at the fastest interval.
TRANSITIONAL = frozenset({"INITIALIZING", "CREATED", "RESTARTING", "FAILING", "CANCELLING", "RECONCILING",
                          "SUSPENDED"})
MAX_TRACE_LINES = 400


def app_state(flink_state: str) -> str:
    return APP_STATES.get(flink_state, "UNKNOWN")


def job_url(rest_url: str, job_id: str, terminal: bool = False) -> str:
    """The job's page in the Flink web UI (served by the same endpoint as the REST API)."""
    return f"{rest_url}/#/job/{'completed' if terminal else 'running'}/{job_id}/overview"


def overall_state(job_ids: list[str], states: Mapping[str, str]) -> str | None:
    """Several jobs: the application runs while any of them runs. None once all have ended."""
    live = [app_state(states.get(j, "CREATED")) for j in job_ids if states.get(j) not in ENDED]
    return "RUNNING" if "RUNNING" in live else "PENDING" if live else None


def conclusion(job_ids: list[str], states: Mapping[str, str], diagnostics: Mapping[str, str], *,
               canceled_on_request: bool) -> tuple[str, str | None]:
    """(app state, diagnostic) once every job has ended: a failure wins, then a cancel."""
    failed = [j for j in job_ids if states.get(j) in ("FAILED", NOT_FOUND)]
    canceled = [j for j in job_ids if states.get(j) == "CANCELED"]
    if failed:
        text = diagnostics.get(failed[0]) or f"Flink job {failed[0]} failed"
        return "FAILED", (f"job {failed[0]}: {text}" if len(job_ids) > 1 else text)
    if canceled:
        return "KILLED", ("canceled on request" if canceled_on_request
                          else f"Flink job {canceled[0]} was canceled outside the gateway")
    return "FINISHED", None


def poll_interval(age: float, *, hurry: bool, fastest: float, slowest: float) -> float:
    """Seconds until the next look: fast for a young job or one in a transitional state, then
    slower as the job ages, never above `slowest`."""
    if hurry:
        return fastest
    return min(slowest, fastest + age / 30.0)


class FlinkRestError(Exception):
    """The Flink REST API could not be reached or answered with an error."""


class JobNotFound(FlinkRestError):
    """The cluster does not know the job (yet, or any more)."""


class FlinkRest:
    """One cluster's REST API. Open it lazily, close it with close()."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None) -> Any:
        try:
            async with self._open().request(method, self.base_url + path, params=params, json=body) as resp:
                text = await resp.text()
                if resp.status == 404:
                    raise JobNotFound(f"{method} {path}: 404 {_first_error(text)}")
                if resp.status >= 400:
                    raise FlinkRestError(f"{method} {path}: {resp.status} {_first_error(text)}")
                if not text.strip():
                    return {}
                try:
                    return await resp.json(content_type=None)
                except ValueError as exc:
                    raise FlinkRestError(f"{method} {path}: not JSON ({exc})") from None
        except aiohttp.ClientError as exc:
            raise FlinkRestError(f"{method} {self.base_url}{path}: {exc or type(exc).__name__}") from None
        except TimeoutError:
            raise FlinkRestError(f"{method} {self.base_url}{path}: timed out") from None

    async def job(self, job_id: str) -> dict[str, Any]:
        data = await self._call("GET", f"/jobs/{job_id}")
        if not isinstance(data, dict) or "state" not in data:
            raise FlinkRestError(f"GET /jobs/{job_id}: no state in the answer")
        return data

    async def exceptions(self, job_id: str) -> dict[str, Any]:
        data = await self._call("GET", f"/jobs/{job_id}/exceptions")
        return data if isinstance(data, dict) else {}

    async def cancel(self, job_id: str) -> None:
        await self._call("PATCH", f"/jobs/{job_id}", params={"mode": "cancel"})

    async def shutdown_cluster(self) -> None:
        await self._call("DELETE", "/cluster")

    async def stop_with_savepoint(self, job_id: str, target_directory: str, *, drain: bool = False) -> str:
        """Ask for a savepoint and a graceful stop; returns the request id to poll."""
        data = await self._call("POST", f"/jobs/{job_id}/stop",
                                body={"targetDirectory": target_directory, "drain": drain})
        request_id = data.get("request-id") if isinstance(data, dict) else None
        if not request_id:
            raise FlinkRestError(f"POST /jobs/{job_id}/stop: no request-id in the answer")
        return str(request_id)

    async def savepoint_status(self, job_id: str, request_id: str) -> SavepointStatus:
        data = await self._call("GET", f"/jobs/{job_id}/savepoints/{request_id}")
        if not isinstance(data, dict):
            raise FlinkRestError(f"GET /jobs/{job_id}/savepoints/{request_id}: unexpected answer")
        status = str((data.get("status") or {}).get("id") or "")
        operation = data.get("operation") or {}
        location = operation.get("location")
        cause = operation.get("failure-cause")
        return SavepointStatus(
            completed=status == "COMPLETED", location=str(location) if location else None,
            failure=savepoint_failure(cause) if cause else None)


@dataclass(frozen=True)
class SavepointStatus:
    """A savepoint request: still in progress, or completed with a location or a failure."""

    completed: bool
    location: str | None = None
    failure: str | None = None


def savepoint_failure(cause: Any) -> str:
    """One line from a savepoint's `failure-cause` ({"class", "stack-trace", …})."""
    if not isinstance(cause, dict):
        return str(cause)[:MAX_DIAGNOSTIC]
    trace = str(cause.get("stack-trace") or "")
    scanner = CauseScanner()
    scanner.feed(trace.splitlines())
    first = trace.strip().splitlines()[0] if trace.strip() else str(cause.get("class") or "unknown failure")
    return (scanner.caused_by or first)[:MAX_DIAGNOSTIC]


def _count(value: Any) -> int:
    """A Flink metric as an int: missing, negative or NaN count as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and math.isnan(value):
        return 0
    return max(0, int(value))


def _millis(value: Any) -> int | None:
    """A Flink timestamp (ms); -1 or 0 means not yet."""
    return int(value) if isinstance(value, int | float) and value > 0 else None


def vertex_steps(job_id: str, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The vertices of a job (GET /jobs/{id}) as detail steps, with records and bytes in and out."""
    steps: list[dict[str, Any]] = []
    for vertex in job.get("vertices") or []:
        if not isinstance(vertex, dict):
            continue
        metrics = vertex.get("metrics") or {}
        start, end = _millis(vertex.get("start-time")), _millis(vertex.get("end-time"))
        steps.append({
            "name": str(vertex.get("name") or vertex.get("id") or "vertex"), "kind": "engine",
            "start": start, "end": end, "duration": _count(vertex.get("duration")) if start else 0,
            "state": vertex.get("status"), "parallelism": _count(vertex.get("parallelism")),
            "recordsIn": _count(metrics.get("read-records")), "recordsOut": _count(metrics.get("write-records")),
            "bytesIn": _count(metrics.get("read-bytes")), "bytesOut": _count(metrics.get("write-bytes")),
            "jobId": job_id, "vertexId": vertex.get("id"),
        })
    return steps


def detail_counters(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over vertex steps, and how many vertices and jobs they come from."""
    counters: dict[str, Any] = {key: sum(int(s.get(key) or 0) for s in steps)
                                for key in ("recordsIn", "recordsOut", "bytesIn", "bytesOut")}
    counters["vertices"] = len(steps)
    counters["jobs"] = len({s.get("jobId") for s in steps})
    return counters


def _first_error(text: str) -> str:
    """Flink errors are {"errors": ["…stack trace…"]}: keep the first line of the first."""
    try:
        errors = json.loads(text).get("errors") or []
        first = str(errors[0]) if errors else text
    except (ValueError, AttributeError):
        first = text
    return first.strip().splitlines()[0][:300] if first.strip() else ""


def latest_failure(exceptions: dict[str, Any]) -> tuple[int | None, str | None, list[str]]:
    """(timestamp, one-line diagnostic, stack trace lines for the log) of the most recent failure."""
    history = exceptions.get("exceptionHistory") or {}
    entries = history.get("entries") or []
    if entries:
        entry = entries[0]
        traces = [str(c.get("stacktrace") or "") for c in entry.get("concurrentExceptions") or []]
        main = str(entry.get("stacktrace") or entry.get("exceptionName") or "")
        timestamp = entry.get("timestamp")
    else:  # Flink 1.x also had a flat root-exception
        main = str(exceptions.get("root-exception") or "")
        traces = []
        timestamp = exceptions.get("timestamp")
    if not main and not traces:
        return None, None, []
    scanners = []
    for text in [*traces, main]:
        scanner = CauseScanner()
        scanner.feed(text.splitlines())
        scanners.append(scanner)
    diagnostic = (next((s.python for s in scanners if s.python), None)
                  or next((s.caused_by for s in scanners if s.caused_by), None)
                  or (main.splitlines()[0] if main else None))
    if diagnostic:
        diagnostic = diagnostic[:MAX_DIAGNOSTIC]
    lines = main.splitlines()
    for text in traces:
        lines += ["Concurrent exception:", *text.splitlines()]
    if len(lines) > MAX_TRACE_LINES:
        lines = [*lines[:MAX_TRACE_LINES], f"... {len(lines) - MAX_TRACE_LINES} more lines"]
    return (int(timestamp) if isinstance(timestamp, int | float) else None), diagnostic, lines
