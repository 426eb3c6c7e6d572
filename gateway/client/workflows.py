"""Jobs, runs and schedules (DESIGN.md §8, §9): the part of the client beyond batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from gateway.client.streams import RunEvents
from gateway.contract.batches import DropResponse, LocalLog
from gateway.contract.jobs import RUN_TERMINAL, Job, JobList, JobLog, JobSpec, Run, RunList
from gateway.contract.schedules import Schedule, ScheduleList, ScheduleSpec, TickList

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _body(model: type[BaseModel], value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    spec = value if isinstance(value, BaseModel) else model.model_validate(dict(value))
    body: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body


def _page(offset: int, size: int, **filters: str | None) -> dict[str, str]:
    params = {"from": str(offset), "size": str(size)}
    params.update({k: v for k, v in filters.items() if v})
    return params


def _states(state: str | Iterable[str] | None) -> str | None:
    if state is None or isinstance(state, str):
        return state
    return ",".join(state)


class AsyncWorkflows:
    """Mixed into AsyncClient, which provides `_model`."""

    async def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        raise NotImplementedError

    # --- jobs ------------------------------------------------------------------------------

    async def create_job(self, spec: JobSpec | Mapping[str, Any]) -> Job:
        """A new job: one node is a saved batch, many make a DAG (`dependsOn`)."""
        return await self._model(Job, "POST", "/api/v1/jobs", json_body=_body(JobSpec, spec))

    async def jobs(self, *, owner: str | None = None, project: str | None = None, offset: int = 0,
                   size: int = 100) -> JobList:
        return await self._model(JobList, "GET", "/api/v1/jobs",
                                 params=_page(offset, size, owner=owner, project=project))

    async def job(self, name: str) -> Job:
        return await self._model(Job, "GET", f"/api/v1/jobs/{name}")

    async def update_job(self, name: str, spec: JobSpec | Mapping[str, Any]) -> Job:
        """A new version of the job; runs keep the version they started with."""
        return await self._model(Job, "PUT", f"/api/v1/jobs/{name}", json_body=_body(JobSpec, spec))

    async def delete_job(self, name: str) -> DropResponse:
        return await self._model(DropResponse, "DELETE", f"/api/v1/jobs/{name}")

    async def job_history(self, name: str, *, offset: int = 0, size: int = 100) -> JobLog:
        return await self._model(JobLog, "GET", f"/api/v1/jobs/{name}/log", params=_page(offset, size))

    async def trigger(self, name: str, *, variables: Mapping[str, str] | None = None,
                      disabled: Iterable[str] | None = None, failure_action: str | None = None) -> Run:
        """Start a run of the job's current version."""
        body: dict[str, Any] = {"variables": dict(variables or {}), "disabled": list(disabled or [])}
        if failure_action:
            body["failureAction"] = failure_action
        return await self._model(Run, "POST", f"/api/v1/jobs/{name}/runs", json_body=body)

    # --- runs ------------------------------------------------------------------------------

    async def runs(self, *, job: str | None = None, state: str | Iterable[str] | None = None,
                   project: str | None = None, offset: int = 0, size: int = 100) -> RunList:
        """Runs, newest first, with `total`."""
        path = f"/api/v1/jobs/{job}/runs" if job else "/api/v1/runs"
        return await self._model(RunList, "GET", path,
                                 params=_page(offset, size, state=_states(state), project=project))

    async def run(self, run_id: str, *, updated_since: int | None = None) -> Run:
        """A run; with `updated_since` (epoch ms) only the nodes changed after it."""
        params = {"updatedSince": str(updated_since)} if updated_since else None
        return await self._model(Run, "GET", f"/api/v1/runs/{run_id}", params=params)

    def run_events(self, run_id: str) -> RunEvents:
        """Iterate over the run's changes until it ends (`events.run` is then its final state)."""
        return RunEvents(self, run_id)  # type: ignore[arg-type]

    async def cancel_run(self, run_id: str) -> Run:
        return await self._model(Run, "POST", f"/api/v1/runs/{run_id}/cancel")

    async def pause_run(self, run_id: str) -> Run:
        """Stop launching new nodes; running ones go on."""
        return await self._model(Run, "POST", f"/api/v1/runs/{run_id}/pause")

    async def resume_run(self, run_id: str) -> Run:
        return await self._model(Run, "POST", f"/api/v1/runs/{run_id}/resume")

    async def retry_run(self, run_id: str, *, variables: Mapping[str, str] | None = None) -> Run:
        """Re-run the failed and cancelled nodes and what depends on them, as attempt n+1."""
        return await self._model(Run, "POST", f"/api/v1/runs/{run_id}/retry",
                                 json_body={"variables": dict(variables or {})})

    async def node_log(self, run_id: str, node: str, start: int = 0, size: int = 100) -> LocalLog:
        return await self._model(LocalLog, "GET", f"/api/v1/runs/{run_id}/nodes/{node}/log",
                                 params={"from": str(start), "size": str(size)})

    async def wait_run(self, run_id: str, *, timeout: float | None = None,
                       on_change: Callable[[Run], None] | None = None) -> Run:
        """Wait until the run ends, by its event stream; `on_change` sees the run after each change."""
        async def follow() -> Run:
            events = self.run_events(run_id)
            async with events:
                async for _ in events:
                    if on_change is not None:
                        on_change(await self.run(run_id))
            return events.run or await self.run(run_id)

        final = await asyncio.wait_for(follow(), timeout)
        if final.state not in RUN_TERMINAL:  # the stream ended early (a restart): ask again
            return await self.wait_run(run_id, timeout=timeout, on_change=on_change)
        return final

    # --- schedules ---------------------------------------------------------------------------

    async def create_schedule(self, spec: ScheduleSpec | Mapping[str, Any]) -> Schedule:
        """A schedule of a job: `cron` (5 to 7 fields) or `every` (30m, 1d, 1w)."""
        return await self._model(Schedule, "POST", "/api/v1/schedules", json_body=_body(ScheduleSpec, spec))

    async def schedules(self, *, job: str | None = None, offset: int = 0, size: int = 100) -> ScheduleList:
        return await self._model(ScheduleList, "GET", "/api/v1/schedules", params=_page(offset, size, job=job))

    async def schedule(self, schedule_id: str) -> Schedule:
        return await self._model(Schedule, "GET", f"/api/v1/schedules/{schedule_id}")

    async def update_schedule(self, schedule_id: str, spec: ScheduleSpec | Mapping[str, Any]) -> Schedule:
        return await self._model(Schedule, "PUT", f"/api/v1/schedules/{schedule_id}",
                                 json_body=_body(ScheduleSpec, spec))

    async def delete_schedule(self, schedule_id: str) -> DropResponse:
        return await self._model(DropResponse, "DELETE", f"/api/v1/schedules/{schedule_id}")

    async def schedule_ticks(self, schedule_id: str, *, offset: int = 0, size: int = 100) -> TickList:
        """The schedule's fire times and what became of each (FIRED, SKIPPED, ...), newest first."""
        return await self._model(TickList, "GET", f"/api/v1/schedules/{schedule_id}/ticks",
                                 params=_page(offset, size))


class SyncWorkflows:
    """Mixed into Client: the blocking twins of AsyncWorkflows' calls."""

    aio: AsyncWorkflows

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

    def create_job(self, spec: JobSpec | Mapping[str, Any]) -> Job:
        return self._run(self.aio.create_job(spec))

    def jobs(self, *, owner: str | None = None, project: str | None = None, offset: int = 0,
             size: int = 100) -> JobList:
        return self._run(self.aio.jobs(owner=owner, project=project, offset=offset, size=size))

    def job(self, name: str) -> Job:
        return self._run(self.aio.job(name))

    def update_job(self, name: str, spec: JobSpec | Mapping[str, Any]) -> Job:
        return self._run(self.aio.update_job(name, spec))

    def delete_job(self, name: str) -> DropResponse:
        return self._run(self.aio.delete_job(name))

    def job_history(self, name: str, *, offset: int = 0, size: int = 100) -> JobLog:
        return self._run(self.aio.job_history(name, offset=offset, size=size))

    def trigger(self, name: str, *, variables: Mapping[str, str] | None = None,
                disabled: Iterable[str] | None = None, failure_action: str | None = None) -> Run:
        return self._run(self.aio.trigger(name, variables=variables, disabled=disabled,
                                          failure_action=failure_action))

    def runs(self, *, job: str | None = None, state: str | Iterable[str] | None = None,
             project: str | None = None, offset: int = 0, size: int = 100) -> RunList:
        return self._run(self.aio.runs(job=job, state=state, project=project, offset=offset, size=size))

    def run(self, run_id: str, *, updated_since: int | None = None) -> Run:
        return self._run(self.aio.run(run_id, updated_since=updated_since))

    def cancel_run(self, run_id: str) -> Run:
        return self._run(self.aio.cancel_run(run_id))

    def pause_run(self, run_id: str) -> Run:
        return self._run(self.aio.pause_run(run_id))

    def resume_run(self, run_id: str) -> Run:
        return self._run(self.aio.resume_run(run_id))

    def retry_run(self, run_id: str, *, variables: Mapping[str, str] | None = None) -> Run:
        return self._run(self.aio.retry_run(run_id, variables=variables))

    def node_log(self, run_id: str, node: str, start: int = 0, size: int = 100) -> LocalLog:
        return self._run(self.aio.node_log(run_id, node, start, size))

    def wait_run(self, run_id: str, *, timeout: float | None = None,
                 on_change: Callable[[Run], None] | None = None) -> Run:
        return self._run(self.aio.wait_run(run_id, timeout=timeout, on_change=on_change))

    def create_schedule(self, spec: ScheduleSpec | Mapping[str, Any]) -> Schedule:
        return self._run(self.aio.create_schedule(spec))

    def schedules(self, *, job: str | None = None, offset: int = 0, size: int = 100) -> ScheduleList:
        return self._run(self.aio.schedules(job=job, offset=offset, size=size))

    def schedule(self, schedule_id: str) -> Schedule:
        return self._run(self.aio.schedule(schedule_id))

    def update_schedule(self, schedule_id: str, spec: ScheduleSpec | Mapping[str, Any]) -> Schedule:
        return self._run(self.aio.update_schedule(schedule_id, spec))

    def delete_schedule(self, schedule_id: str) -> DropResponse:
        return self._run(self.aio.delete_schedule(schedule_id))

    def schedule_ticks(self, schedule_id: str, *, offset: int = 0, size: int = 100) -> TickList:
        return self._run(self.aio.schedule_ticks(schedule_id, offset=offset, size=size))
