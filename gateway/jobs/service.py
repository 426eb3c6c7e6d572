"""JobService: jobs (create, read, update, delete, history), triggering runs and their control, permissions;
what there is to read of a run, through RunLogs (gateway/jobs/logs.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog

from gateway.batches.admission import Admission
from gateway.batches.logs import LogStore
from gateway.contract.jobs import JobSpec, NodeState, Permission
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from gateway.instance.listener import Hub
from gateway.jobs.graph import check_graph, check_variables, downstream, node_request
from gateway.jobs.logs import RunLogs
from gateway.jobs.plan import DONE_BAD
from gateway.jobs.runs import RunCoordinator
from gateway.projects.service import ProjectService
from gateway.security.auth import Principal
from gateway.store import BatchRecord
from gateway.store.jobs import JobRecord, JobRepository, NodeRecord, RunRecord

log = structlog.get_logger("gateway.jobs")

ALL = frozenset(p.value for p in Permission)


class JobService:
    def __init__(self, jobs: JobRepository, runs: RunCoordinator, logs: LogStore, admission: Admission, hub: Hub,
                 projects: ProjectService | None = None) -> None:
        self._jobs = jobs
        self._runs = runs
        self._admission = admission
        self._projects = projects
        self._run_logs = RunLogs(jobs, logs, hub)

    # --- permissions ---------------------------------------------------------------------

    async def roles(self, who: Principal, job: JobRecord) -> frozenset[str]:
        """The owner's rights, the job's own grants, and the roles of the job's project, together."""
        if who.is_admin or who.name == job.owner:
            return ALL
        granted = frozenset(job.permissions.get(who.name, ()))
        if job.project and self._projects is not None:
            granted |= await self._projects.roles(who, job.project)
        return granted

    async def _require(self, who: Principal, job: JobRecord, permission: str) -> None:
        if permission not in await self.roles(who, job):
            raise Forbidden(f"job {job.name}: user {who.name} lacks {permission}")

    async def job(self, who: Principal, name: str, permission: str = "READ") -> JobRecord:
        job = await self._jobs.get_job(name)
        if job is None:
            raise NotFound(f"job {name} not found")
        await self._require(who, job, permission)
        return job

    async def batch_roles(self, who: Principal, batch: BatchRecord) -> frozenset[str]:
        """Roles a user holds on a node batch through its run's job (node batches inherit them)."""
        roles: frozenset[str] = frozenset()
        if batch.project and self._projects is not None:
            roles |= await self._projects.roles(who, batch.project)
        job_name = batch.batch_info.get("job")
        if job_name and "runId" in batch.batch_info:
            job = await self._jobs.get_job(str(job_name))
            if job is not None:
                roles |= await self.roles(who, job)
        return roles

    # --- jobs ----------------------------------------------------------------------------

    async def _validate(self, who: Principal, spec: JobSpec) -> dict[str, Any]:
        """The graph, its variables, and every node through the admission step with the variables' defaults
        and the saver as principal: what cannot run is refused now, not when a run reaches it."""
        check_graph(spec.nodes)
        check_variables(spec.nodes, spec.variables)
        for node in spec.nodes:
            request = node_request(node.id, node.request, spec.variables, self._admission.batch_types)
            await self._admission.check_node(who, node.id, request, project=spec.project)
        return {
            "nodes": [n.model_dump(mode="json", by_alias=True) for n in spec.nodes],
            "variables": spec.variables,
            "failureAction": spec.failure_action.value,
        }

    async def create(self, who: Principal, spec: JobSpec) -> JobRecord:
        if not spec.name:
            raise BadRequest("name: required")
        await self._check_project(who, spec.project)
        definition = await self._validate(who, spec)
        job = await self._jobs.create_job(
            name=spec.name, owner=who.name, description=spec.description, definition=definition,
            permissions={u: [p.value for p in ps] for u, ps in spec.permissions.items()}, project=spec.project,
        )
        if job is None:
            raise Conflict(f"name: a job named {spec.name} exists already")
        log.info("job.created", job=job.name, user=who.name)
        return job

    async def update(self, who: Principal, name: str, spec: JobSpec) -> JobRecord:
        job = await self.job(who, name, "WRITE")
        if spec.name and spec.name != name:
            raise BadRequest(f"name: a job cannot be renamed ({spec.name!r} != {name!r})")
        definition = await self._validate(who, spec)
        if spec.project != job.project:
            await self._check_project(who, spec.project)
        permissions = {u: [p.value for p in ps] for u, ps in spec.permissions.items()}
        if permissions != job.permissions and who.name != job.owner and not who.is_admin:
            raise Forbidden(f"permissions: only the owner of job {name} may change its permissions")
        updated = await self._jobs.update_job(name=name, actor=who.name, description=spec.description,
                                              definition=definition, permissions=permissions, project=spec.project)
        if updated is None:
            raise NotFound(f"job {name} not found")
        return updated

    async def _check_project(self, who: Principal, project: str | None) -> None:
        if project:
            if self._projects is None:
                raise BadRequest("project: projects are not available on this gateway")
            await self._projects.check_put(who, project, "job")

    async def delete(self, who: Principal, name: str, *, with_runs: bool = False) -> list[uuid.UUID]:
        """Delete a job; with_runs, its runs' records too (Datameer's "Delete Job"). Returns the runs removed."""
        await self.job(who, name, "WRITE")
        active = await self._jobs.active_runs_of_job(name)
        if active:
            raise Conflict(f"job {name} has active runs: {', '.join(str(r) for r in active)}; cancel them first")
        removed = await self._jobs.delete_job(name, who.name, with_runs=with_runs)
        if removed is None:
            raise NotFound(f"job {name} not found")
        return removed

    async def find(self, name: str) -> JobRecord | None:
        """A job's record without an authorization check: for showing the job of a run the caller was
        already allowed to read (its name and description, say)."""
        return await self._jobs.get_job(name)

    async def list_jobs(self, who: Principal, owner: str | None, project: str | None, offset: int,
                   size: int) -> tuple[int, list[JobRecord]]:
        shared = await self._shared(who)
        return await self._jobs.list_jobs(reader=None if who.is_admin else who.name, owner=owner, project=project,
                                          offset=offset, size=size, reader_projects=shared)

    async def _shared(self, who: Principal) -> tuple[str, ...]:
        if who.is_admin or self._projects is None:
            return ()
        return await self._projects.readable_projects(who)

    async def history(self, who: Principal, name: str, offset: int, size: int) -> tuple[int, list[dict[str, Any]]]:
        job = await self._jobs.get_job(name)
        if job is not None:
            await self._require(who, job, "READ")
        elif not who.is_admin:
            raise NotFound(f"job {name} not found")
        return await self._jobs.read_job_log(name, offset, size)

    # --- runs ----------------------------------------------------------------------------

    async def trigger(self, who: Principal, name: str, variables: dict[str, str], disabled: list[str],
                      failure_action: str | None, *, trigger: str = "API", schedule_id: uuid.UUID | None = None,
                      fire_time: int | None = None, user: str | None = None,
                      record: JobRecord | None = None) -> RunRecord:
        """Start a run. `record`: the job as the caller read it (a tick runs the version it decided on)."""
        if record is not None:
            await self._require(who, record, "EXECUTE")
        job, merged = await self._prepare(who, name, variables, disabled, trigger=trigger, user=user, job=record)
        run = await self._create_run(who, job, merged, disabled, failure_action, trigger=trigger,
                                     schedule_id=schedule_id, fire_time=fire_time, user=user)
        return await self._runs.advance(run.id) or run

    async def trigger_sequence(self, who: Principal, names: list[str], variables: dict[str, str]) -> list[RunRecord]:
        """One run of each job, in order: each starts once the run before it has succeeded, and is canceled
        if that one fails or is killed (Datameer's sequential trigger). Each job takes the variables it
        declares; a variable that no job of the sequence declares is a 400. Every job is checked (through
        the admission step, as a trigger is) before any run is made."""
        prepared = []
        for name in names:
            job = await self.job(who, name, "EXECUTE")
            declared: dict[str, str] = job.definition.get("variables", {})
            prepared.append(await self._prepare(who, name, {k: v for k, v in variables.items() if k in declared}, [],
                                                job=job))
        known = {k for job, _ in prepared for k in job.definition.get("variables", {})}
        unknown = sorted(set(variables) - known)
        if unknown:
            raise BadRequest(f"variables: {unknown[0]!r} is declared by none of the jobs {names}")
        runs: list[RunRecord] = []
        for job, merged in prepared:
            runs.append(await self._create_run(who, job, merged, [], None, after_run=runs[-1].id if runs else None))
        first = await self._runs.advance(runs[0].id)
        if first is not None:
            runs[0] = first
        return runs

    async def _prepare(self, who: Principal, name: str, variables: dict[str, str], disabled: list[str], *,
                       trigger: str = "API", user: str | None = None,
                       job: JobRecord | None = None) -> tuple[JobRecord, dict[str, str]]:
        """A trigger's checks: the caller may execute the job, the variables and disabled nodes exist, and
        (but for a schedule's tick, which nobody is there to answer) every node passes admission now."""
        job = job or await self.job(who, name, "EXECUTE")
        definition = job.definition
        declared: dict[str, str] = definition.get("variables", {})
        unknown = sorted(set(variables) - set(declared))
        if unknown:
            raise BadRequest(f"variables: unknown variable {unknown[0]!r}; the job declares {sorted(declared)}")
        ids = [n["id"] for n in definition["nodes"]]
        bad = sorted(set(disabled) - set(ids))
        if bad:
            raise BadRequest(f"disabled: unknown node {bad[0]!r}")
        merged = {**declared, **variables}
        if trigger == "SCHEDULE":
            # Nobody is there to answer: the run goes ahead, and a node the admission step refuses ends as
            # an ERROR batch with the refusal as its diagnostic. Only what cannot even be parsed stops it.
            for node in definition["nodes"]:
                if node["id"] not in disabled:
                    node_request(node["id"], node["request"], merged, self._admission.batch_types)
        else:
            await self._admission.check_rate(who)
            await self.check_nodes(who, job, variables, skip=disabled, user=user)
        return job, merged

    async def _create_run(self, who: Principal, job: JobRecord, merged: dict[str, str], disabled: list[str],
                          failure_action: str | None, *, trigger: str = "API", schedule_id: uuid.UUID | None = None,
                          fire_time: int | None = None, user: str | None = None,
                          after_run: uuid.UUID | None = None) -> RunRecord:
        definition = job.definition
        run = await self._jobs.create_run(
            run_id=uuid.uuid4(), job=job.name, version=job.version, trigger=trigger, user=user or who.name,
            real_user=who.name, variables=merged, failure_action=failure_action or definition["failureAction"],
            project=job.project, schedule_id=schedule_id, fire_time=fire_time, after_run=after_run,
            nodes=[(n["id"], NodeState.SKIPPED if n["id"] in disabled else NodeState.READY, n.get("dependsOn", []))
                   for n in definition["nodes"]],
        )
        log.info("run.triggered", run_id=str(run.id), job=job.name, user=who.name, trigger=trigger,
                 after_run=str(after_run) if after_run else None)
        return run

    async def scheduled_principal(self, owner: Principal, job: JobRecord) -> Principal:
        """Who a schedule of `owner` runs the job's current version as (Admission.scheduled_principal)."""
        version = await self._jobs.job_version(job.name, job.version)
        author = version.author if version is not None else job.owner

        async def may_execute(who: Principal) -> bool:
            return "EXECUTE" in await self.roles(who, job)

        return await self._admission.scheduled_principal(owner, author, may_execute,
                                                          f"job {job.name} version {job.version}")

    async def check_nodes(self, who: Principal, job: JobRecord, variables: dict[str, str], *,
                          skip: list[str] | tuple[str, ...] = (), user: str | None = None) -> None:
        """Refuse now, naming the node, what a run of the job with these variables could not start: every
        node through the admission step, with `who` as the run's principal."""
        merged = {**job.definition.get("variables", {}), **variables}
        for node in job.definition["nodes"]:
            if node["id"] not in skip:
                request = node_request(node["id"], node["request"], merged, self._admission.batch_types)
                await self._admission.check_node(who, node["id"], request, project=job.project,
                                                 user=user or who.name)

    async def run(self, who: Principal, run_id: str, permission: str = "READ") -> RunRecord:
        rid = _run_id(run_id)
        run = await self._jobs.get_run(rid)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        if who.is_admin or (who.name in (run.submit_user, run.real_user) and permission == "READ"):
            return run
        job = await self._jobs.get_job(run.job)
        roles = await self.roles(who, job) if job is not None else frozenset()
        if run.project and self._projects is not None:
            roles |= await self._projects.roles(who, run.project)
        if who.name in (run.submit_user, run.real_user):
            roles = roles | {"READ", "EXECUTE"}
        if permission not in roles:
            raise Forbidden(f"run {run_id}: user {who.name} lacks {permission} on job {run.job}")
        return run

    async def nodes(self, run: RunRecord, since: int = 0) -> list[NodeRecord]:
        return await self._jobs.run_nodes(run.id, since)

    async def list_runs(self, who: Principal, job: str | None, states: list[str], project: str | None, offset: int,
                        size: int) -> tuple[int, list[RunRecord]]:
        reader = None if who.is_admin else who.name
        if job and not who.is_admin:
            await self.job(who, job, "READ")
            reader = None  # READ on the job shows all of its runs
        return await self._jobs.list_runs(reader=reader, job=job, states=states, project=project, offset=offset,
                                          size=size, reader_projects=await self._shared(who))

    async def control(self, who: Principal, run_id: str, action: str, variables: dict[str, str]) -> RunRecord:
        run = await self.run(who, run_id, "EXECUTE")
        if action == "cancel":
            result = await self._runs.cancel(run.id)
        elif action == "pause":
            result = await self._runs.pause(run.id)
        elif action == "resume":
            result = await self._runs.resume(run.id)
        else:
            job_version = await self._jobs.get_job(run.job)
            declared = job_version.definition.get("variables", {}) if job_version else run.variables
            await self._check_retry(who, run, {**run.variables, **variables})
            result = await self._runs.retry(run.id, variables, declared)
        await self._jobs.job_log(run.job, who.name, f"run_{action}", {"run": str(run.id)})
        return result

    async def _check_retry(self, who: Principal, run: RunRecord, variables: dict[str, str]) -> None:
        """A retry starts the run's nodes again, as the run's user, maybe with new variables: the one who asks
        must be allowed to start them so, as for a trigger."""
        version = await self._jobs.job_version(run.job, run.version)
        if version is None:
            return
        await self._admission.check_rate(who)
        nodes = await self._jobs.run_nodes(run.id)
        again = downstream({n.node_id: list(n.depends_on) for n in nodes},
                           {n.node_id for n in nodes if n.state in DONE_BAD})
        for node in version.definition.get("nodes", []):
            if node["id"] not in again:
                continue
            request = node_request(node["id"], node["request"], variables, self._admission.batch_types)
            await self._admission.check_node(who, node["id"], request, project=run.project, user=run.submit_user)

    # --- reading runs (gateway/jobs/logs.py), for a run read through run() ---------------

    async def node_log(self, who: Principal, run_id: str, node_id: str, start: int, size: int) -> list[str]:
        return await self._run_logs.node_log(await self.run(who, run_id), node_id, start, size)

    async def node_log_chars(self, run: RunRecord, node_ids: list[str], start: int, size: int) -> str:
        return await self._run_logs.node_log_chars(run, node_ids, start, size)

    async def run_log_chars(self, run: RunRecord, start: int, size: int) -> str:
        return await self._run_logs.run_log_chars(run, start, size)

    def events(self, run: RunRecord, after: int) -> AsyncIterator[list[dict[str, Any]]]:
        return self._run_logs.events(run, after)


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest(f"runId: {value!r} is not a valid run id (a UUID)") from None


