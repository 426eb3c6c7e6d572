"""DatameerViews: Datameer's job commands answered from the job service (docs/datameer.md). It turns
Datameer's ids into jobs and runs through app[NUMBERS], asks the JobService (which checks permissions and
keeps each job's history) and returns Datameer's wire models (gateway/datameer/models.py), so that the
handlers see no store record. Jobs and runs reach it as the contract's `Job` and `Run`
(gateway/jobs/views.py), or are read once where they are found."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.batches.control import BatchControl
from gateway.contract.jobs import RUN_TERMINAL, Job, NodeState, Permission, Run, RunState
from gateway.datameer.models import (
    NOT_ACCESSIBLE,
    DatameerStatus,
    FileRef,
    HistoryEntry,
    JobDetails,
    JobStatusAnswer,
    PlanAnswer,
    PlanStep,
    RunningJob,
    TriggerAnswer,
    datameer_time,
    run_status,
)
from gateway.errors import Conflict, Forbidden, NotFound
from gateway.jobs.numbers import Kind, Numbers, named_key, parse_named_key
from gateway.jobs.service import JobService
from gateway.jobs.views import job_view, run_view
from gateway.security.auth import Principal

ACTIVE = [RunState.PREPARING.value, RunState.RUNNING.value, RunState.PAUSED.value]
MAX_RUNNING = 1000  # list-running answers at most this many executions


class DatameerViews:
    def __init__(self, jobs: JobService, numbers: Numbers, control: BatchControl) -> None:
        self._jobs = jobs
        self._numbers = numbers
        self._control = control

    # --- ids -------------------------------------------------------------------------------------

    async def job(self, who: Principal, ref: str, permission: Permission = Permission.READ) -> Job:
        """A job by `<file-id>|<uuid>|<path>`: its number, its UUID, or its path (`/name`, or
        `/project/name` for a job in a project). Unknown and unreadable jobs get Datameer's sentence."""
        project: str | None = None
        if ref.isdigit():
            key = await self._numbers.key(Kind.JOB, int(ref)) if len(ref) < 19 else None
        elif _is_uuid(ref):
            key = await self._numbers.key_by_uid(Kind.JOB, uuid.UUID(ref))
        else:
            parts = [p for p in ref.replace("+", " ").split("/") if p]
            key = None
            if parts:
                project = "/".join(parts[:-1]) or None
                key = named_key(parts[-1], 0)
        if key is None:
            raise NotFound(f"{NOT_ACCESSIBLE}: no job {ref}")
        name, created = parse_named_key(key)
        try:
            job = job_view(await self._jobs.job(who, name, permission))
        except (NotFound, Forbidden) as exc:
            raise type(exc)(f"{NOT_ACCESSIBLE}: {exc.message}") from None
        if (created and job.created_at != created) or (project is not None and job.project != project):
            raise NotFound(f"{NOT_ACCESSIBLE}: no job {ref}")
        return job

    async def _run(self, who: Principal, ref: str) -> Run:
        """An execution by its number, with its nodes."""
        key = await self._numbers.key(Kind.RUN, int(ref)) if ref.isdigit() and len(ref) < 19 else None
        if key is None:
            raise NotFound(f"job execution {ref} not found")
        run = await self._jobs.run(who, key)
        return run_view(run, await self._jobs.nodes(run))

    async def _file(self, job: Job) -> FileRef:
        number, uid = await self._numbers.number_and_uid(Kind.JOB, named_key(job.name, job.created_at))
        path = f"/{job.project}/{job.name}" if job.project else f"/{job.name}"
        return FileRef(id=number, uuid=str(uid), path=path)

    # --- job-execution commands ------------------------------------------------------------------

    async def status(self, who: Principal, ref: str) -> dict[str, Any]:
        """The job's latest execution: its number, status and times ("_NONE" if it never ran)."""
        job = await self.job(who, ref)
        _, runs = await self._jobs.list_runs(who, job.name, [], None, 0, 1)
        if not runs:
            return {"status": "success", "job-status": DatameerStatus.NONE.value}
        run = run_view(runs[0], await self._jobs.nodes(runs[0]))
        answer: dict[str, Any] = JobStatusAnswer(
            file_id=(await self._file(job)).id, job_execution_id=await self._numbers.number(Kind.RUN, run.id),
            job_status=run_status(run.state, [n.state for n in run.nodes]),
            start_time=datameer_time(run.start_time),
        ).model_dump(mode="json", by_alias=True, exclude={"stop_time"})
        if run.state in RUN_TERMINAL:
            answer["stop-time"] = datameer_time(run.end_time)
        return answer

    async def trigger(self, who: Principal, ref: str) -> TriggerAnswer:
        job = await self.job(who, ref, Permission.EXECUTE)
        run = await self._jobs.trigger(who, job.name, {}, [], None)
        return TriggerAnswer(job_execution_id=await self._numbers.number(Kind.RUN, str(run.id)),
                             job_execution_user=who.name)

    async def stop(self, who: Principal, ref: str) -> None:
        """Every execution of the job still going is canceled."""
        job = await self.job(who, ref, Permission.EXECUTE)
        _, runs = await self._jobs.list_runs(who, job.name, ACTIVE, None, 0, MAX_RUNNING)
        if not runs:
            raise Conflict(f"job {job.name} isn't running")
        for run in runs:
            await self._jobs.control(who, str(run.id), "cancel", {})

    async def running(self, who: Principal) -> list[RunningJob]:
        _, runs = await self._jobs.list_runs(who, None, ACTIVE, None, 0, MAX_RUNNING)
        numbers = await self._numbers.numbers(Kind.RUN, [str(r.id) for r in runs])
        out: list[RunningJob] = []
        files: dict[str, tuple[Job, FileRef] | None] = {}
        for run in runs:
            if run.job not in files:
                record = await self._jobs.find(run.job)
                job = job_view(record) if record is not None else None
                files[run.job] = (job, await self._file(job)) if job is not None else None
            found = files[run.job]
            if found is None:
                continue  # its job was deleted while it ran
            job, file = found
            out.append(RunningJob(
                job_status=run_status(run.state), file_name=job.name, job_name=job.description or job.name,
                file_id=file.id, uuid=file.uuid, creation_date=job.created_at,
                job_execution_id=numbers[str(run.id)], dap_job_configuration_id=file.id,
                start_time=run.start_time,
            ))
        return out

    async def sequence(self, who: Principal, refs: list[int | str], variables: dict[str, str]) -> PlanAnswer:
        """The jobs run one after the other; the answer is the execution plan."""
        chain = [await self.job(who, str(ref), Permission.EXECUTE) for ref in refs]
        runs = await self._jobs.trigger_sequence(who, [job.name for job in chain], variables)
        plan = [PlanStep(job_configuration_name=job.name, job_configuration_id=(await self._file(job)).id,
                         job_execution_id=await self._numbers.number(Kind.RUN, str(run.id)))
                for job, run in zip(chain, runs, strict=True)]
        return PlanAnswer(execution_plan=plan)

    # --- the /rest calls -------------------------------------------------------------------------

    async def history(self, who: Principal, ref: str, start: int, length: int) -> list[HistoryEntry]:
        """A job's executions, newest first."""
        job = await self.job(who, ref)
        _, runs = await self._jobs.list_runs(who, job.name, [], None, start, length)
        numbers = await self._numbers.numbers(Kind.RUN, [str(r.id) for r in runs])
        return [HistoryEntry(id=numbers[str(r.id)], job_status=run_status(r.state)) for r in runs]

    async def details(self, who: Principal, execution: str) -> JobDetails:
        """An execution: status, times, its job, how many nodes succeeded and failed, and the counters of
        its nodes' batches (`<node>.<counter>`)."""
        run = await self._run(who, execution)
        counters: dict[str, Any] = {}
        for node in run.nodes:
            if node.batch_id is None:
                continue
            try:
                _, _, batch_counters, _ = await self._control.details(who, node.batch_id)
            except NotFound:
                continue  # a node batch dropped or purged since
            counters.update({f"{node.id}.{k}": v for k, v in batch_counters.items() if v is not None})
        record = await self._jobs.find(run.job)
        if record is None:
            raise NotFound(f"job execution {execution}: its job {run.job} was deleted")
        file = await self._file(job_view(record))
        return JobDetails(
            start_time=datameer_time(run.start_time), stop_time=datameer_time(run.end_time),
            job_status=run_status(run.state, [n.state for n in run.nodes]), job_configuration_id=file.id,
            file=file, success_count=sum(1 for n in run.nodes if n.state == NodeState.SUCCEEDED),
            failure_count=sum(1 for n in run.nodes if n.state in (NodeState.FAILED, NodeState.CANCELLED)),
            counters=counters,
        )

    async def delete(self, who: Principal, ref: str) -> None:
        """The job and its executions' records go, and their numbers with them."""
        try:
            job = await self.job(who, ref, Permission.WRITE)
        except NotFound:
            raise NotFound(f"Entity of type 'Data' with id '{ref}' not found.") from None
        removed = await self._jobs.delete(who, job.name, with_runs=True)
        await self._numbers.forget(Kind.RUN, [str(r) for r in removed])
        await self._numbers.forget(Kind.JOB, [named_key(job.name, job.created_at)])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
