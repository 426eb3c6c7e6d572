"""ScheduleService: create, read, change and delete schedules; validation and permissions.

Creating or changing a job's schedule needs SCHEDULE on the job, reading it READ (the owner and admins
hold everything: JobService.roles). The schedule's owner is whoever last created or changed it; its runs
are triggered as the owner when the owner or an admin saved the job's current version, else as that
version's author (docs/security.md, "Scheduled runs").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from gateway.contract.schedules import ScheduleSpec
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.jobs.service import JobService
from gateway.projects.service import ProjectService
from gateway.schedules.ticker import tick_variables
from gateway.schedules.timer import now_ms
from gateway.schedules.timing import SECOND, Timing, TimingError, parse_zone, to_instant
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.store.jobs import JobRecord
from gateway.store.schedules import ScheduleRecord, ScheduleRepository, TickRecord

log = structlog.get_logger("gateway.schedules")

NEXT_SHOWN = 5
TIMING_FIELDS = ("cron", "every", "timezone", "start_at", "end_at")


def parse_id(value: str, field: str = "scheduleId") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is not a valid id (a UUID)") from None


def _instant(value: int | str | None, field: str, zone_name: str) -> int | None:
    """Epoch ms, or ISO 8601; an ISO time without an offset is a wall-clock time in the schedule's zone."""
    if value is None or isinstance(value, int):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is neither epoch milliseconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        return to_instant(moment.replace(microsecond=0), parse_zone(zone_name))
    return int(moment.timestamp() * 1000)


class ScheduleService:
    def __init__(self, store: ScheduleRepository, jobs: JobService, projects: ProjectService | None,
                 audit: AuditService, *, catchup_bound: int, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._audit = audit
        self._jobs = jobs
        self._projects = projects
        self._bound = catchup_bound
        self._clock = clock

    # --- validation ----------------------------------------------------------------------

    def _values(self, spec: ScheduleSpec, job: JobRecord, now: int,
                current: ScheduleRecord | None) -> tuple[dict[str, Any], Timing]:
        if (spec.cron is None) == (spec.every is None):
            raise BadRequest("cron: give either cron or every (not both, not neither)")
        try:
            parse_zone(spec.timezone)
            start_at = _instant(spec.start_at, "startAt", spec.timezone)
            end_at = _instant(spec.end_at, "endAt", spec.timezone)
            values: dict[str, Any] = {
                "description": spec.description, "cron": spec.cron.strip() if spec.cron else None,
                "every": spec.every.strip() if spec.every else None, "timezone": spec.timezone,
                "start_at": start_at, "end_at": end_at,
            }
            same_timing = current is not None and all(getattr(current, f) == values[f] for f in TIMING_FIELDS)
            if current is not None and same_timing:
                anchor = current.anchor
            else:
                anchor = start_at if start_at is not None else -(-now // SECOND) * SECOND
            timing = Timing(cron=values["cron"], every=values["every"], timezone=spec.timezone, anchor=anchor,
                            start_at=start_at, end_at=end_at)
        except TimingError as exc:
            raise BadRequest(exc.message) from None
        declared: dict[str, str] = job.definition.get("variables", {})
        unknown = sorted(set(spec.variables) - set(declared))
        if unknown:
            raise BadRequest(f"variables: unknown variable {unknown[0]!r}; the job declares {sorted(declared)}")
        if end_at is not None and end_at <= now:
            raise BadRequest(f"endAt: {spec.end_at!r} is in the past")
        # A period without startAt counts from its creation: the first fire is one period later.
        upcoming = timing.next_after(max(now, anchor) if values["every"] and start_at is None else now)
        if upcoming is None:
            what = f"cron: {spec.cron!r}" if spec.cron else f"every: {spec.every!r}"
            raise BadRequest(f"{what} never fires" + (" before endAt" if end_at is not None else ""))
        keep = (current is not None and same_timing and current.enabled and spec.enabled
                and current.next_fire is not None)
        values.update(
            variables=spec.variables, concurrency=spec.concurrency.value, catchup=spec.catchup.value,
            catchup_bound=spec.catchup_bound or (current.catchup_bound if current else self._bound),
            anchor=anchor, enabled=spec.enabled,
            # A change of timing (or enabling) starts from now: nothing from before the change catches up.
            next_fire=(current.next_fire if keep and current else upcoming) if spec.enabled else None,
        )
        return values, timing

    # --- commands ------------------------------------------------------------------------

    async def create(self, who: Principal, spec: ScheduleSpec) -> ScheduleRecord:
        if not spec.job:
            raise BadRequest("job: required")
        job = await self._jobs.job(who, spec.job, "SCHEDULE")
        values, timing = self._values(spec, job, self._clock(), None)
        values.update(id=uuid.uuid4(), job=job.name, owner=who.name)
        await self._check_runs(who, job, values, timing)
        schedule = await self._store.create_schedule(values, who.name)
        await self._audit.record(who.name, "schedule_create", str(schedule.id),
                                 detail={"job": job.name, "cron": schedule.cron, "every": schedule.every})
        log.info("schedule.created", schedule_id=str(schedule.id), job=job.name, user=who.name,
                 next_fire=schedule.next_fire)
        return schedule

    async def update(self, who: Principal, schedule_id: str, spec: ScheduleSpec) -> ScheduleRecord:
        current = await self.get(who, schedule_id, "SCHEDULE")
        if spec.job and spec.job != current.job:
            raise BadRequest(f"job: a schedule cannot move to another job ({spec.job!r} != {current.job!r})")
        job = await self._jobs.job(who, current.job, "SCHEDULE")
        values, timing = self._values(spec, job, self._clock(), current)
        values["owner"] = who.name
        await self._check_runs(who, job, {**values, "id": current.id}, timing)
        changes = sorted(k for k, v in values.items() if k not in ("anchor", "next_fire", "owner")
                         and getattr(current, k) != v)
        updated = await self._store.update_schedule(current.id, values, who.name, changes)
        if updated is None:
            raise NotFound(f"schedule {schedule_id} not found")
        await self._audit.record(who.name, "schedule_update", str(current.id),
                                 detail={"job": current.job, "changed": changes})
        log.info("schedule.updated", schedule_id=str(current.id), job=current.job, user=who.name, changed=changes)
        return updated

    async def _check_runs(self, who: Principal, job: JobRecord, values: dict[str, Any], timing: Timing) -> None:
        """Refuse now what the schedule's runs could not start, with the variables of its next tick."""
        fire_time = values["next_fire"] or self._clock()
        variables = tick_variables(job.definition.get("variables", {}), values["variables"], values["id"],
                                   fire_time, timing.zone)
        run_as = await self._jobs.scheduled_principal(who, job)
        await self._jobs.check_nodes(run_as, job, variables)

    async def delete(self, who: Principal, schedule_id: str) -> None:
        current = await self.get(who, schedule_id, "SCHEDULE")
        if await self._store.delete_schedule(current.id, who.name) is None:
            raise NotFound(f"schedule {schedule_id} not found")
        await self._audit.record(who.name, "schedule_delete", str(current.id), detail={"job": current.job})
        log.info("schedule.deleted", schedule_id=str(current.id), job=current.job, user=who.name)

    # --- queries -------------------------------------------------------------------------

    async def get(self, who: Principal, schedule_id: str, permission: str = "READ") -> ScheduleRecord:
        schedule = await self._store.get_schedule(parse_id(schedule_id))
        if schedule is None:
            raise NotFound(f"schedule {schedule_id} not found")
        await self.check_job(who, schedule.job, permission)
        return schedule

    async def check_job(self, who: Principal, job: str, permission: str) -> JobRecord:
        """The job, if the caller holds the permission on it; SCHEDULE lets one read schedules too."""
        try:
            return await self._jobs.job(who, job, permission)
        except Forbidden as denied:
            if permission != "READ":
                raise
            try:
                return await self._jobs.job(who, job, "SCHEDULE")
            except Forbidden:
                raise denied from None

    async def list_schedules(self, who: Principal, job: str | None, offset: int,
                             size: int) -> tuple[int, list[ScheduleRecord]]:
        reader: str | None = None
        projects: tuple[str, ...] = ()
        if job and not who.is_admin:
            await self.check_job(who, job, "READ")  # READ on the job shows all of its schedules
        elif not who.is_admin:
            reader = who.name
            projects = await self._projects.readable_projects(who) if self._projects is not None else ()
        return await self._store.list_schedules(job=job, reader=reader, reader_projects=projects, offset=offset,
                                                size=size)

    async def ticks(self, who: Principal, schedule_id: str, offset: int, size: int) -> tuple[int, list[TickRecord]]:
        schedule = await self.get(who, schedule_id)
        return await self._store.list_ticks(schedule.id, offset, size)

    async def last_ticks(self, schedules: list[ScheduleRecord]) -> dict[uuid.UUID, TickRecord]:
        return await self._store.last_ticks([s.id for s in schedules])

    @staticmethod
    def next_fire_times(schedule: ScheduleRecord, n: int = NEXT_SHOWN) -> list[int]:
        """The next n fire times: the stored next tick (it may be due right now), then the timing's."""
        if not schedule.enabled or schedule.next_fire is None:
            return []
        try:
            timing = Timing(cron=schedule.cron, every=schedule.every, timezone=schedule.timezone,
                            anchor=schedule.anchor, start_at=schedule.start_at, end_at=schedule.end_at)
        except TimingError:
            return []
        return [schedule.next_fire, *timing.upcoming(schedule.next_fire, n - 1)]
