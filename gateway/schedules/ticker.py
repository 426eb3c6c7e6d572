"""Ticker: fires each schedule's ticks exactly once across instances.

Every instance sleeps until the earliest `next_fire` (one query) and is woken early by NOTIFY when a
schedule changes. When a tick is due, whichever instance locks the schedule row first decides it in one
transaction: it inserts a row per tick (the primary key (schedule, fire time) makes the claim unique),
applies the concurrency and catchup rules, and moves `next_fire` on. Only then does it trigger the run, as
the schedule's owner when the owner or an admin saved the job's current version, else as that version's
author (Admission.scheduled_principal). A tick claimed by an instance that died before triggering is taken over once the
dead instance's lease has run out; a unique index on runs (schedule, fire time) keeps it to one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import structlog

from gateway.contract.schedules import TickOutcome
from gateway.errors import GatewayError, Unavailable
from gateway.instance.metrics import Metrics
from gateway.jobs.service import JobService
from gateway.schedules.timer import DueLoop, now_ms
from gateway.schedules.timing import Timing, TimingError, plan_due
from gateway.security.auth import Principal
from gateway.store.schedules import Busy, ScheduleRecord, ScheduleRepository, TickRecord

log = structlog.get_logger("gateway.schedules")

DUE_BATCH = 100
FIRE_RETRIES = 5


@dataclass(frozen=True)
class Decision:
    fire_time: int
    outcome: TickOutcome  # PENDING (fire it now), QUEUED or SKIPPED
    reason: str | None = None


def decide(fire_times: list[int], concurrency: str, busy: Busy, queue_limit: int, job: str) -> list[Decision]:
    """The concurrency rule, applied to due ticks in order (pure: the caller holds the job's lock)."""
    out: list[Decision] = []
    firing: int | None = None
    queued = busy.queued
    for t in fire_times:
        if busy.run_id is not None:
            why = f"a run of job {job} is still active ({busy.run_id})"
        elif busy.firing:
            why = f"a run of job {job} is being started"
        elif firing is not None:
            why = f"the tick of {firing} is starting a run of job {job}"
        else:
            why = ""
        if concurrency == "ALLOW" or (not why and not (concurrency == "QUEUE" and queued)):
            out.append(Decision(t, TickOutcome.PENDING))
            firing = t if firing is None else firing
        elif concurrency == "SKIP":
            out.append(Decision(t, TickOutcome.SKIPPED, why))
        elif queued >= queue_limit:
            out.append(Decision(t, TickOutcome.SKIPPED, f"{queued} ticks of job {job} are queued already (the limit)"))
        else:
            out.append(Decision(t, TickOutcome.QUEUED, why or f"earlier ticks of job {job} are queued"))
            queued += 1
    return out


def timing_of(schedule: ScheduleRecord) -> Timing:
    return Timing(cron=schedule.cron, every=schedule.every, timezone=schedule.timezone, anchor=schedule.anchor,
                  start_at=schedule.start_at, end_at=schedule.end_at)


def tick_variables(declared: dict[str, str], given: dict[str, str], schedule_id: uuid.UUID, fire_time: int,
                   zone: tzinfo) -> dict[str, str]:
    """A tick's run variables: the built-in ones the job declares (fireTime, fireTimeIso, scheduleId), then
    the schedule's own."""
    builtins = {"fireTime": str(fire_time), "scheduleId": str(schedule_id),
                "fireTimeIso": datetime.fromtimestamp(fire_time / 1000, zone).isoformat(timespec="seconds")}
    return {**{k: v for k, v in builtins.items() if k in declared}, **given}


class Ticker:
    def __init__(self, store: ScheduleRepository, jobs: JobService, instance: str, *,
                 principal: Callable[[str], Principal], misfire_seconds: float, queue_limit: int,
                 housekeeping_seconds: float, metrics: Metrics | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._jobs = jobs
        self._instance = instance
        self._principal = principal
        self._misfire_ms = int(misfire_seconds * 1000)
        self._queue_limit = queue_limit
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = DueLoop("schedule.ticker", store.next_fire, self.fire_due, housekeeping=self.housekeeping,
                             housekeeping_seconds=housekeeping_seconds, clock=clock)
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._tasks:  # let runs being triggered finish; what does not is taken over later
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_notify(self, payload: str | None) -> None:
        """NOTIFY batchgate_schedule: a schedule changed, or a run of a job with schedules ended."""
        if payload is not None and payload.startswith("run-ended "):
            self._spawn(self.dispatch_queued(payload.removeprefix("run-ended ")))
            return
        self._loop.wake()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- due ticks -----------------------------------------------------------------------

    async def fire_due(self, now: int) -> bool:
        contended = False
        for schedule_id in await self._store.due_schedules(now, DUE_BATCH):
            if not await self._claim(schedule_id, now):
                contended = True
        return contended

    async def _claim(self, schedule_id: uuid.UUID, now: int) -> bool:
        pending: list[TickRecord] = []
        async with self._store.claim(schedule_id, now) as tx:
            if tx is None:
                return False
            s = tx.schedule
            assert s.next_fire is not None
            try:
                timing = timing_of(s)
            except TimingError as exc:  # stored by an older release with other rules: stop, say why
                log.error("schedule.bad_timing", schedule_id=str(s.id), error=exc.message)
                await tx.advance(None, None)
                return True
            plan = plan_due(timing, s.next_fire, now, catchup=s.catchup, bound=s.catchup_bound,
                            misfire_ms=self._misfire_ms)
            await tx.lock_job()
            decisions = decide(plan.fire, s.concurrency, await tx.busy(), self._queue_limit, s.job)
            caught = f"caught up after it was missed (catchup {s.catchup})"
            for d in decisions:
                if d.fire_time in plan.caught:
                    d = Decision(d.fire_time, d.outcome, f"{caught}; {d.reason}" if d.reason else caught)
                if not await tx.insert_tick(d.fire_time, self._instance, d.outcome, d.reason):
                    continue  # claimed before (a schedule moved back in time): it never fires twice
                detail = {"schedule": str(s.id), "fireTime": d.fire_time, "reason": d.reason}
                if d.outcome is TickOutcome.PENDING:
                    pending.append(TickRecord(schedule_id=s.id, fire_time=d.fire_time, instance=self._instance,
                                              outcome=TickOutcome.PENDING, reason=d.reason, run_id=None, claimed_at=now,
                                              updated_at=now))
                else:
                    action = "tick_skipped" if d.outcome is TickOutcome.SKIPPED else "tick_queued"
                    await tx.job_log(s.owner, action, detail)
                    self._metrics.schedule_event(d.outcome.lower())
                    log.info("schedule.tick_" + d.outcome.lower(), schedule_id=str(s.id), job=s.job,
                             fire_time=d.fire_time, reason=d.reason)
            if plan.skipped:
                why = (f"missed while no instance was running (catchup {s.catchup}"
                       + (f", bound {s.catchup_bound})" if s.catchup == "ALL" else ")"))
                for t in plan.skipped:
                    await tx.insert_tick(t, self._instance, TickOutcome.SKIPPED, why)
                await tx.job_log(s.owner, "tick_skipped", {
                    "schedule": str(s.id), "reason": why, "count": plan.skipped_count, "last": plan.skipped[-1]})
                self._metrics.schedule_event("missed")
                log.info("schedule.ticks_missed", schedule_id=str(s.id), job=s.job, count=plan.skipped_count,
                         catchup=s.catchup)
            considered = [*plan.fire, *plan.skipped]
            await tx.advance(timing.next_after(now), max(considered) if considered else None)
        if pending or s.concurrency == "QUEUE":
            self._spawn(self._fire_all(s, pending))
        return True

    async def _fire_all(self, s: ScheduleRecord, ticks: list[TickRecord]) -> None:
        for tick in ticks:
            await self._fire(s, tick)
        if s.concurrency == "QUEUE":
            await self.dispatch_queued(s.job)

    async def dispatch_queued(self, job: str) -> None:
        """Fire a job's oldest queued tick if none of its runs is active, one at a time."""
        try:
            while (tick := await self._store.claim_queued(job, self._instance)) is not None:
                schedule = await self._store.get_schedule(tick.schedule_id)
                if schedule is not None:
                    await self._fire(schedule, tick)
        except Unavailable:
            log.warning("schedule.dispatch_db_unavailable", job=job)

    async def _fire(self, s: ScheduleRecord, tick: TickRecord, *, recovered: bool = False) -> None:
        """Trigger the run of a claimed tick, as the scheduled-run rule says (the schedule's owner, or the
        author of the job version that runs), and record how it went."""
        bound = log.bind(schedule_id=str(s.id), job=s.job, fire_time=tick.fire_time)
        owner = self._principal(s.owner)
        run_id: uuid.UUID | None = None
        reason: str | None = None
        for attempt in range(FIRE_RETRIES):
            try:
                run_id = await self._store.run_of_tick(s.id, tick.fire_time) if recovered or attempt else None
                if run_id is None:
                    job = await self._jobs.job(owner, s.job, "READ")
                    run_as = await self._jobs.scheduled_principal(owner, job)
                    variables = tick_variables(job.definition.get("variables", {}), s.variables, s.id,
                                               tick.fire_time, timing_of(s).zone)
                    run = await self._jobs.trigger(run_as, s.job, variables, [], None, trigger="SCHEDULE",
                                                   schedule_id=s.id, fire_time=tick.fire_time, user=run_as.name,
                                                   record=job)
                    run_id = run.id
                break
            except Unavailable:
                await asyncio.sleep(min(2**attempt, 10))
            except GatewayError as exc:  # the owner lost EXECUTE, a variable no longer fits, ...
                reason = exc.message
                break
            except Exception as exc:  # a second run for the tick was refused by the unique index
                run_id = await self._store.run_of_tick(s.id, tick.fire_time)
                if run_id is None:
                    bound.exception("schedule.trigger_failed")
                    reason = f"trigger failed: {type(exc).__name__}"
                break
        else:
            bound.warning("schedule.tick_left_pending")  # the database stayed away; taken over later
            return
        lateness = self._clock() - tick.fire_time
        detail = {"schedule": str(s.id), "fireTime": tick.fire_time, "run": str(run_id) if run_id else None,
                  "reason": reason, "instance": self._instance, "latenessMs": lateness, "recovered": recovered}
        outcome = TickOutcome.FIRED if run_id is not None else TickOutcome.FAILED
        with contextlib.suppress(Unavailable):
            await self._store.finish_tick(tick, outcome, reason, run_id, detail, s.owner, s.job)
        self._metrics.schedule_event(outcome.lower())
        if run_id is not None:
            bound.info("schedule.tick_fired", run_id=str(run_id), lateness_ms=lateness, recovered=recovered)
        else:
            bound.warning("schedule.tick_failed", reason=reason)

    # --- what dead instances left --------------------------------------------------------

    async def recover(self, include_mine: bool) -> int:
        """Fire the ticks an instance claimed and did not fire before it died (or this one, before a restart)."""
        ticks = await self._store.orphaned_ticks(self._instance, include_mine)
        for tick in ticks:
            schedule = await self._store.get_schedule(tick.schedule_id)
            if schedule is not None:
                log.info("schedule.tick_taken_over", schedule_id=str(tick.schedule_id), fire_time=tick.fire_time)
                self._spawn(self._fire(schedule, tick, recovered=True))
        return len(ticks)

    async def housekeeping(self) -> None:
        await self.recover(include_mine=not self._started)
        self._started = True
        for job in await self._store.jobs_with_queued_ticks():  # a lost run-ended notification
            self._spawn(self.dispatch_queued(job))


__all__ = ["Decision", "Ticker", "decide", "tick_variables", "timing_of"]
