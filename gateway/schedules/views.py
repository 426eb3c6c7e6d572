"""ScheduleViews and SlaViews: the schedules and SLAs REST API's answers. They ask the ScheduleService and
the SlaService (which check permissions and validate) and return the contract's models, so that the
handlers see no store record: a schedule with its next fire times and its last tick, an SLA with its
duration written out, a breach."""

from __future__ import annotations

from gateway.contract.schedules import (
    Breach,
    BreachList,
    Schedule,
    ScheduleList,
    ScheduleSpec,
    Sla,
    SlaList,
    SlaSpec,
    TickList,
    TickOut,
)
from gateway.schedules.service import ScheduleService
from gateway.schedules.sla import SlaService, format_duration
from gateway.security.auth import Principal
from gateway.store.schedules import ScheduleRecord, TickRecord
from gateway.store.slas import BreachRecord, SlaRecord


def tick_view(tick: TickRecord) -> TickOut:
    return TickOut(fire_time=tick.fire_time, outcome=tick.outcome, reason=tick.reason,
                   run_id=str(tick.run_id) if tick.run_id else None, instance=tick.instance, time=tick.updated_at)


def schedule_view(s: ScheduleRecord, last: TickRecord | None) -> Schedule:
    return Schedule(
        id=str(s.id), job=s.job, owner=s.owner, description=s.description, cron=s.cron, every=s.every,
        timezone=s.timezone, variables=s.variables, concurrency=s.concurrency, catchup=s.catchup,
        catchup_bound=s.catchup_bound, start_at=s.start_at, end_at=s.end_at, enabled=s.enabled,
        next_fire_times=ScheduleService.next_fire_times(s), last_fire=tick_view(last) if last else None,
        create_time=s.created_at, update_time=s.updated_at,
    )


def sla_view(s: SlaRecord) -> Sla:
    return Sla(id=str(s.id), owner=s.owner, job=s.job, schedule=str(s.schedule_id) if s.schedule_id else None,
               batch=str(s.batch_id) if s.batch_id else None, node=s.node, rule=s.rule,
               duration=format_duration(s.duration_ms), duration_ms=s.duration_ms, actions=s.actions,
               webhook=s.webhook, emails=s.emails, description=s.description, breaches=s.breaches,
               create_time=s.created_at)


def breach_view(b: BreachRecord) -> Breach:
    return Breach(id=b.id, sla=str(b.sla_id), rule=b.rule, kind=b.kind, target=b.target, job=b.job,
                  run_id=str(b.run_id) if b.run_id else None, batch_id=str(b.batch_id) if b.batch_id else None,
                  node=b.node, start_time=b.start_at, due_time=b.due_at, breach_time=b.breached_at,
                  instance=b.instance, actions_done=b.actions_done, results=b.results)


class ScheduleViews:
    def __init__(self, schedules: ScheduleService) -> None:
        self._schedules = schedules

    async def create(self, who: Principal, spec: ScheduleSpec) -> Schedule:
        return await self._view(await self._schedules.create(who, spec))

    async def update(self, who: Principal, schedule_id: str, spec: ScheduleSpec) -> Schedule:
        return await self._view(await self._schedules.update(who, schedule_id, spec))

    async def get(self, who: Principal, schedule_id: str, permission: str = "READ") -> Schedule:
        """The schedule, if the caller holds `permission` on it (READ to see it, SCHEDULE to change it)."""
        return await self._view(await self._schedules.get(who, schedule_id, permission))

    async def delete(self, who: Principal, schedule_id: str) -> None:
        await self._schedules.delete(who, schedule_id)

    async def list_schedules(self, who: Principal, job: str | None, offset: int, size: int) -> ScheduleList:
        total, schedules = await self._schedules.list_schedules(who, job, offset, size)
        last = await self._schedules.last_ticks(schedules)
        return ScheduleList(from_=offset, total=total, schedules=[schedule_view(s, last.get(s.id)) for s in schedules])

    async def ticks(self, who: Principal, schedule_id: str, offset: int, size: int) -> TickList:
        total, ticks = await self._schedules.ticks(who, schedule_id, offset, size)
        return TickList(from_=offset, total=total, ticks=[tick_view(t) for t in ticks])

    async def _view(self, schedule: ScheduleRecord) -> Schedule:
        last = await self._schedules.last_ticks([schedule])
        return schedule_view(schedule, last.get(schedule.id))


class SlaViews:
    def __init__(self, slas: SlaService) -> None:
        self._slas = slas

    async def create(self, who: Principal, spec: SlaSpec) -> Sla:
        return sla_view(await self._slas.create(who, spec))

    async def get(self, who: Principal, sla_id: str) -> Sla:
        return sla_view(await self._slas.get(who, sla_id))

    async def delete(self, who: Principal, sla_id: str) -> None:
        await self._slas.delete(who, sla_id)

    async def list_slas(self, who: Principal, job: str | None, schedule: str | None, batch: str | None,
                        offset: int, size: int) -> SlaList:
        total, slas = await self._slas.list_slas(who, job, schedule, batch, offset, size)
        return SlaList(from_=offset, total=total, slas=[sla_view(s) for s in slas])

    async def breaches(self, who: Principal, sla_id: str, offset: int, size: int) -> BreachList:
        total, breaches = await self._slas.breaches(who, sla_id, offset, size)
        return BreachList(from_=offset, total=total, breaches=[breach_view(b) for b in breaches])
