"""AzkabanViews: the jobs and runs behind Azkaban's flows and executions, from the job service
(docs/azkaban.md). It turns an `execid` into a run through app[NUMBERS] (Kind.RUN, keyed by the run's
UUID), asks the JobService (which checks permissions: a run's are its job's) and returns the contract's
`Job` and `Run` (gateway/jobs/views.py), execution ids, a page of executions or the text of a log window,
so that the handlers (manager, executor, schedule, logs) see no job or run record. gateway/azkaban/models.py
writes them in Azkaban's shapes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway.azkaban.models import OF_RUN, flow_of
from gateway.contract.jobs import Job, Permission, Run, RunState
from gateway.errors import NotFound
from gateway.jobs.numbers import Kind, Numbers
from gateway.jobs.service import JobService
from gateway.jobs.views import job_view, run_view
from gateway.security.auth import Principal

ACTIVE = [RunState.PREPARING.value, RunState.RUNNING.value, RunState.PAUSED.value]
MAX_RUNNING = 1000
MAX_FLOWS = 1000


class AzkabanViews:
    def __init__(self, jobs: JobService, numbers: Numbers) -> None:
        self._jobs = jobs
        self._numbers = numbers

    async def job(self, who: Principal, name: str, permission: Permission) -> Job:
        """The job, if the caller holds the permission on it."""
        return job_view(await self._jobs.job(who, name, permission))

    async def find(self, name: str) -> Job | None:
        """The job, whoever asks (to name a run's flow and its jobs' types, once the run was allowed)."""
        record = await self._jobs.find(name)
        return job_view(record) if record is not None else None

    async def flows(self, who: Principal, project: str) -> dict[str, Job]:
        """The project's flows: {flow name: its job}."""
        _, jobs = await self._jobs.list_jobs(who, None, project, 0, MAX_FLOWS)
        return {name: job_view(job) for job in jobs if job.project == project and (name := flow_of(project, job.name))}

    async def executions(self, who: Principal, job: str, flow: str, project_id: int, start: int,
                         length: int) -> tuple[int, list[dict[str, Any]]]:
        """fetchFlowExecutions' page of the flow's runs, newest first, and how many there are."""
        total, runs = await self._jobs.list_runs(who, job, [], None, start, length)
        numbers = await self._numbers.numbers(Kind.RUN, [str(r.id) for r in runs])
        return total, [{"startTime": r.start_time or -1, "submitUser": r.submit_user,
                        "status": OF_RUN[r.state].value, "submitTime": r.create_time,
                        "execId": numbers[str(r.id)], "projectId": project_id, "endTime": r.end_time or -1,
                        "flowId": flow} for r in runs]

    async def execution(self, who: Principal, execid: int, permission: Permission = Permission.READ) -> Run:
        """The run an `execid` names, with its nodes, if the caller holds the permission on it."""
        with _unknown(execid):
            key = await self._numbers.key(Kind.RUN, execid) if execid > 0 else None
            if key is None:
                raise NotFound(f"no run numbered {execid}")
            record = await self._jobs.run(who, key, permission)
        return run_view(record, await self._jobs.nodes(record))

    async def running(self, who: Principal, job: str, limit: int = MAX_RUNNING) -> list[int]:
        """The execution ids of the job's runs still going (at most `limit`)."""
        _, runs = await self._jobs.list_runs(who, job, ACTIVE, None, 0, limit)
        numbers = await self._numbers.numbers(Kind.RUN, [str(r.id) for r in runs])
        return [numbers[str(r.id)] for r in runs]

    async def execute(self, who: Principal, job: str, variables: dict[str, str], disabled: list[str],
                      failure_action: str | None) -> int:
        """The job's new run: its execution id."""
        run = await self._jobs.trigger(who, job, variables, disabled, failure_action)
        return await self._numbers.number(Kind.RUN, str(run.id))

    async def control(self, who: Principal, run_id: str, action: str) -> None:
        await self._jobs.control(who, run_id, action, {})

    async def job_log(self, who: Principal, run: Run, nodes: list[str], offset: int, length: int) -> str:
        """`length` characters from `offset` of the logs of the run's nodes, one after the other."""
        return await self._jobs.node_log_chars(await self._jobs.run(who, run.id), nodes, offset, length)

    async def flow_log(self, who: Principal, run: Run, offset: int, length: int) -> str:
        """`length` characters from `offset` of the run's own log."""
        return await self._jobs.run_log_chars(await self._jobs.run(who, run.id), offset, length)


@contextmanager
def _unknown(execid: int) -> Iterator[None]:
    """An execution not found (no such number, or no such run), as Azkaban names it."""
    try:
        yield
    except NotFound:
        raise NotFound(f"Cannot find execution '{execid}'") from None
