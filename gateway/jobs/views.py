"""JobViews: the jobs and runs REST API's answers. It asks the JobService (which checks permissions and
owns the state machines) and returns the contract's models, so that the handlers see no store record:
a job's nodes with their inputs and outputs worked out from its definition, a run with its nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from gateway.contract.jobs import Job, JobList, JobLog, JobLogEntry, JobSpec, NodeOut, Run, RunList, RunNode
from gateway.jobs.service import JobService
from gateway.security.auth import Principal
from gateway.store.jobs import JobRecord, NodeRecord, RunRecord


def job_view(job: JobRecord) -> Job:
    """A job as the API shows it: each node with the nodes it depends on (in) and those that depend on it
    (out)."""
    nodes = job.definition.get("nodes", [])
    children: dict[str, list[str]] = {n["id"]: [] for n in nodes}
    for node in nodes:
        for dep in node.get("dependsOn", []):
            children[dep].append(node["id"])
    return Job(
        name=job.name, owner=job.owner, version=job.version, description=job.description,
        nodes=[NodeOut(id=n["id"], request=n["request"], depends_on=n.get("dependsOn", []),
                       in_=n.get("dependsOn", []), out=children[n["id"]]) for n in nodes],
        variables=job.definition.get("variables", {}), failure_action=job.definition.get("failureAction", ""),
        permissions=job.permissions, project=job.project, created_at=job.created_at, updated_at=job.updated_at,
    )


def run_view(run: RunRecord, nodes: list[NodeRecord]) -> Run:
    return Run(
        id=str(run.id), job=run.job, version=run.version, state=run.state, trigger=run.trigger,
        submit_user=run.submit_user, variables=run.variables, failure_action=run.failure_action,
        attempt=run.attempt, project=run.project,
        schedule_id=str(run.schedule_id) if run.schedule_id else None, fire_time=run.fire_time,
        create_time=run.create_time, start_time=run.start_time, end_time=run.end_time,
        update_time=run.update_time,
        nodes=[RunNode(id=n.node_id, state=n.state, batch_id=str(n.batch_id) if n.batch_id else None,
                       in_=n.depends_on, attempt=n.attempt, start_time=n.start_time, end_time=n.end_time,
                       update_time=n.update_time) for n in nodes],
    )


class JobViews:
    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    # --- jobs ----------------------------------------------------------------------------

    async def create(self, who: Principal, spec: JobSpec) -> Job:
        return job_view(await self._jobs.create(who, spec))

    async def update(self, who: Principal, name: str, spec: JobSpec) -> Job:
        return job_view(await self._jobs.update(who, name, spec))

    async def job(self, who: Principal, name: str) -> Job:
        return job_view(await self._jobs.job(who, name))

    async def delete(self, who: Principal, name: str) -> None:
        await self._jobs.delete(who, name)

    async def list_jobs(self, who: Principal, owner: str | None, project: str | None, offset: int,
                        size: int) -> JobList:
        total, jobs = await self._jobs.list_jobs(who, owner, project, offset, size)
        return JobList(from_=offset, total=total, jobs=[job_view(j) for j in jobs])

    async def history(self, who: Principal, name: str, offset: int, size: int) -> JobLog:
        total, entries = await self._jobs.history(who, name, offset, size)
        return JobLog(from_=offset, total=total, entries=[JobLogEntry(**e) for e in entries])

    # --- runs ----------------------------------------------------------------------------

    async def trigger(self, who: Principal, name: str, variables: dict[str, str], disabled: list[str],
                      failure_action: str | None) -> Run:
        return await self._view(await self._jobs.trigger(who, name, variables, disabled, failure_action))

    async def list_runs(self, who: Principal, job: str | None, states: list[str], project: str | None,
                        offset: int, size: int) -> RunList:
        total, runs = await self._jobs.list_runs(who, job, states, project, offset, size)
        return RunList(from_=offset, total=total, runs=[await self._view(r) for r in runs])

    async def run(self, who: Principal, run_id: str, since: int = 0) -> Run:
        """A run with its nodes (only those changed after `since`, when given)."""
        return await self._view(await self._jobs.run(who, run_id), since)

    async def control(self, who: Principal, run_id: str, action: str, variables: dict[str, str]) -> Run:
        return await self._view(await self._jobs.control(who, run_id, action, variables))

    async def node_log(self, who: Principal, run_id: str, node_id: str, start: int, size: int) -> list[str]:
        return await self._jobs.node_log(who, run_id, node_id, start, size)

    async def events(self, who: Principal, run_id: str) -> Callable[[int], AsyncIterator[list[dict[str, Any]]]]:
        """The run's events after a given event number, as they happen, until it ends. The run is found and
        the caller's read permission checked now, before any stream opens."""
        return partial(self._jobs.events, await self._jobs.run(who, run_id))

    async def _view(self, run: RunRecord, since: int = 0) -> Run:
        return run_view(run, await self._jobs.nodes(run, since))
