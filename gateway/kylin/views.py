"""KylinViews: Kylin's job API's answers (docs/kylin.md). It asks the batch, control and job services (so
authorization and audit are theirs) and turns batches and runs into Kylin jobs (gateway/kylin/models.py),
so that the handlers see no store record.

A Kylin job is a batch (its steps are the batch's lifecycle phases, then the engine's own steps) or a run
(its steps are the run's nodes)."""

from __future__ import annotations

import time
from typing import Any

import gateway
from gateway.batches.control import BatchControl
from gateway.batches.service import BatchService
from gateway.batches.views import list_filter
from gateway.contract.batches import BatchQuery, BatchState
from gateway.contract.jobs import RUN_TERMINAL
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.jobs.service import JobService
from gateway.kylin.models import (
    LIFECYCLE,
    OF_BATCH,
    OF_NODE,
    OF_RUN,
    KylinJob,
    KylinStatus,
    KylinStep,
    StepOutput,
    job_uuid,
)
from gateway.security.auth import Principal
from gateway.store import BatchRecord
from gateway.store.jobs import NodeRecord, RunRecord

OUTPUT_LINES = 2000  # a step's output is the last lines of its batch's log, as Kylin keeps a step's tail


def _now() -> int:
    return int(time.time() * 1000)


def _seconds(start: int, end: int, now: int) -> int:
    return max(((end or now) - start) // 1000, 0) if start else 0


def _engine_status(state: Any) -> KylinStatus:
    text = str(state or "").upper()
    if text in ("RUNNING", "ACTIVE", "DEPLOYING", "INITIALIZING", "RECONCILING"):
        return KylinStatus.RUNNING
    if text in ("SUCCEEDED", "COMPLETE", "FINISHED"):
        return KylinStatus.FINISHED
    if text in ("FAILED", "FAILING"):
        return KylinStatus.ERROR
    if text in ("CANCELED", "CANCELLED", "CANCELING", "KILLED", "SKIPPED"):
        return KylinStatus.DISCARDED
    return KylinStatus.PENDING


def _lifecycle(batch: BatchRecord) -> list[tuple[str, int, int, KylinStatus]]:
    """Queued, Launching, Running: (name, start, end, status). Every phase is listed from the start, as
    Kylin lists a job's steps: PENDING until reached, DISCARDED if the batch ended before it."""
    state = batch.state
    ended = state in (BatchState.FINISHED, BatchState.ERROR, BatchState.CANCELED)
    bounds = [
        (batch.create_time, batch.claim_time or batch.end_time),
        (batch.claim_time, batch.app_start_time or (batch.end_time if batch.claim_time else 0)),
        (batch.app_start_time, batch.end_time if batch.app_start_time else 0),
    ]
    reached = [start > 0 for start, _ in bounds]
    last = max(i for i, r in enumerate(reached) if r)
    out: list[tuple[str, int, int, KylinStatus]] = []
    for i, (name, (start, end)) in enumerate(zip(LIFECYCLE, bounds, strict=True)):
        if not reached[i]:
            status = KylinStatus.DISCARDED if ended else KylinStatus.PENDING
        elif i < last:
            status = KylinStatus.FINISHED
        elif ended:
            status = OF_BATCH[state]
        elif state == BatchState.PAUSED:
            status = KylinStatus.STOPPED
        else:
            status = KylinStatus.PENDING if i == 0 else KylinStatus.RUNNING
        out.append((name, start if reached[i] else 0, end if reached[i] else 0, status))
    return out


def batch_steps(batch: BatchRecord) -> list[KylinStep]:
    steps: list[KylinStep] = []
    for name, start, end, status in _lifecycle(batch):
        steps.append(KylinStep(
            id=f"{batch.id}-{len(steps):02d}", name=name, sequence_id=len(steps), exec_start_time=start,
            exec_end_time=end, step_status=status, cmd_type=batch.batch_type,
            info={"startTime": str(start), "endTime": str(end)} if start else {},
        ))
    for engine_step in batch.details.get("steps", []):
        start = int(engine_step.get("start") or 0)
        end = int(engine_step.get("end") or 0)
        steps.append(KylinStep(
            id=f"{batch.id}-{len(steps):02d}", name=str(engine_step.get("name") or "step"),
            sequence_id=len(steps), exec_start_time=start, exec_end_time=end,
            step_status=_engine_status(engine_step.get("state")), cmd_type=batch.batch_type,
            info={k: str(v) for k, v in engine_step.items() if k not in ("name", "start", "end") and v is not None},
            run_async=True,
        ))
    return steps


def _progress(steps: list[KylinStep], finished: bool) -> float:
    if finished or not steps:
        return 100.0 if finished else 0.0
    done = sum(1 for s in steps if s.step_status == KylinStatus.FINISHED)
    return round(100.0 * done / len(steps), 2)


def batch_job(batch: BatchRecord) -> KylinJob:
    now = _now()
    steps = batch_steps(batch)
    name = batch.name or str(batch.id)
    status = OF_BATCH.get(batch.state, KylinStatus.PENDING)
    return KylinJob(
        uuid=str(batch.id), id=str(batch.id), last_modified=batch.update_time, version=gateway.__version__,
        name=name, job_name=name, type=batch.batch_type, duration=_seconds(batch.claim_time, batch.end_time, now),
        related_cube=name, display_cube_name=name, exec_start_time=batch.claim_time,
        exec_end_time=batch.end_time, steps=steps, submitter=batch.real_user, job_status=status,
        progress=_progress(steps, status == KylinStatus.FINISHED), project=batch.project,
        create_time=batch.create_time,
    )


def run_steps(run: RunRecord, nodes: list[NodeRecord], batches: dict[str, BatchRecord]) -> list[KylinStep]:
    steps: list[KylinStep] = []
    for node in sorted(nodes, key=lambda n: n.position):
        batch = batches.get(node.node_id)
        steps.append(KylinStep(
            id=f"{run.id}-{len(steps):02d}", name=node.node_id, sequence_id=len(steps),
            exec_start_time=node.start_time, exec_end_time=node.end_time,
            step_status=OF_NODE.get(node.state, KylinStatus.PENDING),
            cmd_type=batch.batch_type if batch is not None else "NODE",
            info={"batchId": str(node.batch_id)} if node.batch_id else {},
            run_async=True,
        ))
    return steps


def run_job(run: RunRecord, nodes: list[NodeRecord], batches: dict[str, BatchRecord]) -> KylinJob:
    now = _now()
    steps = run_steps(run, nodes, batches)
    status = OF_RUN.get(run.state, KylinStatus.PENDING)
    return KylinJob(
        uuid=str(run.id), id=str(run.id), last_modified=run.update_time, version=gateway.__version__,
        name=run.job, job_name=run.job, type="RUN", duration=_seconds(run.start_time, run.end_time, now),
        related_cube=run.job, display_cube_name=run.job, exec_start_time=run.start_time,
        exec_end_time=run.end_time if run.state in RUN_TERMINAL else 0, steps=steps, submitter=run.real_user,
        job_status=status, progress=_progress(steps, status == KylinStatus.FINISHED), project=run.project,
        create_time=run.create_time,
    )


class KylinViews:
    def __init__(self, batches: BatchService, control: BatchControl, jobs: JobService) -> None:
        self._batches = batches
        self._control = control
        self._jobs = jobs

    async def _find(self, who: Principal, raw: str, permission: str = "READ") -> BatchRecord | RunRecord:
        """A batch or a run by id, authorized as the batch and job services authorize them."""
        job_id = str(job_uuid(raw))
        try:
            if permission == "READ":
                return await self._batches.get(who, job_id)
            return await self._batches.modifiable(who, job_id)
        except NotFound:
            pass
        try:
            return await self._jobs.run(who, job_id, permission)
        except NotFound:
            raise NotFound(f"job {raw} not found") from None

    async def _job(self, job: BatchRecord | RunRecord) -> KylinJob:
        if isinstance(job, BatchRecord):
            return batch_job(job)
        nodes = await self._jobs.nodes(job)
        batches: dict[str, BatchRecord] = {}
        for node in nodes:
            if node.batch_id is not None:
                record = await self._batches.current(node.batch_id)
                if record is not None:
                    batches[node.node_id] = record
        return run_job(job, nodes, batches)

    async def job(self, who: Principal, raw: str) -> KylinJob:
        return await self._job(await self._find(who, raw))

    async def resume(self, who: Principal, raw: str) -> KylinJob:
        """Kylin resumes a paused job, and an errored one from where it failed: a failed run is retried (its
        failed nodes run again), a failed batch is restarted as a new batch (whose id the answer carries)."""
        job = await self._find(who, raw, "EXECUTE")
        if isinstance(job, BatchRecord):
            if job.state == BatchState.ERROR:
                return await self._job(await self._control.restart(who, str(job.id)))
            return await self._job(await self._control.resume(who, str(job.id)))
        action = "retry" if job.state == "FAILED" else "resume"
        return await self._job(await self._jobs.control(who, str(job.id), action, {}))

    async def cancel(self, who: Principal, raw: str) -> KylinJob:
        """Kylin's "discard": the batch is killed, or the run canceled."""
        job = await self._find(who, raw, "EXECUTE")
        if isinstance(job, BatchRecord):
            success, message, record = await self._batches.kill(who, str(job.id))
            if not success:
                raise Conflict(message)
            return await self._job(record)
        return await self._job(await self._jobs.control(who, str(job.id), "cancel", {}))

    async def pause(self, who: Principal, raw: str) -> KylinJob:
        job = await self._find(who, raw, "EXECUTE")
        if isinstance(job, BatchRecord):
            return await self._job(await self._control.pause(who, str(job.id)))
        return await self._job(await self._jobs.control(who, str(job.id), "pause", {}))

    async def drop(self, who: Principal, raw: str) -> KylinJob:
        """The job's record, log and files are removed; the answer is the job as it was."""
        job = await self._find(who, raw, "EXECUTE")
        if not isinstance(job, BatchRecord):
            raise Conflict(f"job {job.id} is a run: a run's record stays with its job; drop its batches instead")
        view = batch_job(job)
        await self._control.drop(who, str(job.id))
        return view

    async def step_output(self, who: Principal, raw_job: str, step_id: str) -> StepOutput:
        """A step's output: the tail of its batch's log (for a run, the node's batch)."""
        job = await self._find(who, raw_job)
        prefix, _, sequence = step_id.rpartition("-")
        if job_uuid(prefix) != job.id or not sequence.isdigit():
            raise BadRequest(f"stepId: {step_id!r} is not a step of job {raw_job} ({raw_job}-NN)")
        view = await self._job(job)
        index = int(sequence)
        if index >= len(view.steps):
            raise NotFound(f"job {raw_job} has no step {step_id} (it has {len(view.steps)})")
        batch_id = job.id if isinstance(job, BatchRecord) else view.steps[index].info.get("batchId")
        output = ""
        if batch_id is not None:
            batch = await self._batches.get(who, str(batch_id))
            start = max(batch.log_lines - OUTPUT_LINES, 0)
            output = "\n".join(await self._batches.read_log(who, str(batch.id), start, OUTPUT_LINES))
        return StepOutput(job_id=raw_job, cmd_output=output, step_id=step_id)

    async def list_jobs(self, who: Principal, query: BatchQuery) -> tuple[int, list[KylinJob]]:
        """The batches the query matches, as Kylin jobs, and how many match in all."""
        total, records = await self._batches.list_batches(who, list_filter(query))
        return total, [batch_job(r) for r in records]
