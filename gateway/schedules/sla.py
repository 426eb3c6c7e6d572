"""SLAs: what they are on, who may see and change them, and the judgement at a deadline.

An SLA is on a job (each run, from its creation), one node of it, a schedule (each tick, from its fire
time) or one batch (from its conf: `batchgate.sla.finishWithin=30m`, from its submission). Its deadlines
are rows (`sla_deadlines`), registered in the transaction that creates the run (a trigger), claims the
tick (the ticker) or writes the batch (the admission step, gateway/batches/slaterms.py); the DeadlineTimer
judges each one once, at its time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum

import structlog

from gateway.batches.service import BatchService
from gateway.contract.schedules import Rule, SlaSpec
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.jobs.service import JobService
from gateway.projects.service import ProjectService
from gateway.schedules.service import ScheduleService, parse_id
from gateway.schedules.timer import now_ms
from gateway.schedules.timing import DURATION_UNITS, TimingError, parse_duration
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.security.outbound import OutboundRule
from gateway.store.slas import BreachRecord, Progress, SlaRecord, SlaRepository

log = structlog.get_logger("gateway.sla")


class Outcome(StrEnum):
    """What a deadline found: MET, BREACHED, or GONE (the target no longer exists, or was a skipped tick)."""

    MET = "MET"
    BREACHED = "BREACHED"
    GONE = "GONE"


def judge(rule: str, due_at: int, progress: Progress) -> Outcome:
    """Whether the target kept its deadline."""
    if not progress.exists or progress.skipped:
        return Outcome.GONE
    started = progress.started_at is not None and progress.started_at <= due_at
    ended = progress.ended_at is not None and progress.ended_at <= due_at
    if rule == Rule.START_WITHIN:
        met = started or ended
    elif rule == Rule.FINISH_WITHIN:
        met = ended
    else:
        met = ended and progress.succeeded
    return Outcome.MET if met else Outcome.BREACHED


def format_duration(ms: int) -> str:
    """Milliseconds as the shortest duration text that parse_duration reads back (90000 -> 1m30s)."""
    parts: list[str] = []
    rest = ms
    for unit in ("w", "d", "h", "m", "s"):
        size = DURATION_UNITS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


class SlaService:
    def __init__(self, store: SlaRepository, jobs: JobService, schedules: ScheduleService,
                 projects: ProjectService | None, batches: BatchService, audit: AuditService, *,
                 webhooks: OutboundRule | None = None, clock: Callable[[], int] = now_ms) -> None:
        self._audit = audit
        self._webhooks = webhooks or OutboundRule()
        self._store = store
        self._jobs = jobs
        self._schedules = schedules
        self._projects = projects
        self._batches = batches
        self._clock = clock

    # --- commands ------------------------------------------------------------------------

    async def create(self, who: Principal, spec: SlaSpec) -> SlaRecord:
        if (spec.job is None) == (spec.schedule is None):
            raise BadRequest("job: give either job or schedule (not both, not neither)")
        schedule_id: uuid.UUID | None = None
        if spec.schedule is not None:
            schedule = await self._schedules.get(who, spec.schedule, "SCHEDULE")
            schedule_id, job_name = schedule.id, schedule.job
        else:
            assert spec.job is not None
            job_name = spec.job
        job = await self._jobs.job(who, job_name, "SCHEDULE")
        try:
            duration = parse_duration(spec.duration)
        except TimingError as exc:
            raise BadRequest(exc.message) from None
        if spec.node is not None and spec.node not in {n["id"] for n in job.definition.get("nodes", [])}:
            raise BadRequest(f"node: job {job.name} has no node {spec.node!r}")
        if spec.webhook and (problem := self._webhooks.problem(spec.webhook)):
            raise BadRequest(problem)
        sla = await self._store.create({
            "id": uuid.uuid4(), "owner": who.name, "job": job.name, "schedule_id": schedule_id, "node": spec.node,
            "rule": spec.rule.value, "duration_ms": duration, "actions": sorted({a.value for a in spec.actions}),
            "webhook": spec.webhook, "emails": spec.emails, "description": spec.description,
        }, who.name)
        assert sla is not None  # a fresh uuid4
        await self._audit.record(who.name, "sla_create", str(sla.id),
                                 detail={"job": job.name, "rule": sla.rule, "durationMs": duration})
        log.info("sla.created", sla_id=str(sla.id), job=job.name, rule=sla.rule, user=who.name)
        return sla

    async def delete(self, who: Principal, sla_id: str) -> None:
        sla = await self.get(who, sla_id, "SCHEDULE")
        if await self._store.delete(sla.id, who.name) is None:
            raise NotFound(f"SLA {sla_id} not found")
        await self._audit.record(who.name, "sla_delete", str(sla.id), detail={"job": sla.job})
        log.info("sla.deleted", sla_id=str(sla.id), user=who.name)

    # --- queries -------------------------------------------------------------------------

    async def get(self, who: Principal, sla_id: str, permission: str = "READ") -> SlaRecord:
        sla = await self._store.get(parse_id(sla_id, "slaId"))
        if sla is None:
            raise NotFound(f"SLA {sla_id} not found")
        if sla.job is not None:
            await self._schedules.check_job(who, sla.job, permission)
        elif not who.is_admin and who.name != sla.owner:
            try:
                if permission == "READ":
                    await self._batches.readable(who, str(sla.batch_id))
                else:
                    await self._batches.modifiable(who, str(sla.batch_id))
            except NotFound:
                raise Forbidden(f"SLA {sla_id} belongs to another user") from None
        return sla

    async def list_slas(self, who: Principal, job: str | None, schedule: str | None, batch: str | None,
                        offset: int, size: int) -> tuple[int, list[SlaRecord]]:
        schedule_id = parse_id(schedule, "schedule") if schedule is not None else None
        batch_id = parse_id(batch, "batch") if batch is not None else None
        reader: str | None = None
        projects: tuple[str, ...] = ()
        if not who.is_admin:
            if job:
                await self._schedules.check_job(who, job, "READ")
            elif schedule:
                await self._schedules.get(who, schedule)
            elif batch:
                await self._batches.readable(who, batch)
            else:
                reader = who.name
                projects = await self._projects.readable_projects(who) if self._projects is not None else ()
        return await self._store.list_slas(job=job, schedule_id=schedule_id, batch_id=batch_id, reader=reader,
                                           reader_projects=projects, offset=offset, size=size)

    async def breaches(self, who: Principal, sla_id: str, offset: int, size: int) -> tuple[int, list[BreachRecord]]:
        sla = await self.get(who, sla_id)
        return await self._store.list_breaches(sla.id, offset, size)
