"""DeadlineTimer: judges each SLA deadline once, at its time, on whichever instance gets it first.

Every instance sleeps until the earliest open deadline (one query), woken early by NOTIFY when one is
registered. Due deadlines are locked with SKIP LOCKED, judged against what the target did by then (the
times are in the database, so a late judgement is still exact), and a breach is inserted once per SLA and
target in the same transaction. The actions run after the commit, and their results are written to the
breach; an instance that dies before it finishes them leaves the breach open for another to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from gateway.batches.logs import LogStore
from gateway.batches.service import BatchService
from gateway.contract.jobs import NodeState
from gateway.errors import GatewayError, Unavailable
from gateway.instance.metrics import Metrics
from gateway.jobs.service import JobService
from gateway.schedules.alerts import Alerter
from gateway.schedules.sla import Outcome, format_duration, judge
from gateway.schedules.timer import DueLoop, now_ms
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.store.schedules import ScheduleRepository
from gateway.store.slas import BreachRecord, Progress, SlaRecord, SlaRepository

log = structlog.get_logger("gateway.sla")

SYSTEM = Principal("batchgate-sla", is_admin=True)
DUE_BATCH = 100
ACTIVE_NODES = frozenset({NodeState.QUEUED, NodeState.RUNNING, NodeState.PAUSED})


class DeadlineTimer:
    def __init__(self, store: ScheduleRepository, slas: SlaRepository, alerts: Alerter, batches: BatchService,
                 jobs: JobService, logs: LogStore, audit: AuditService, instance: str, *, housekeeping_seconds: float,
                 metrics: Metrics | None = None, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._slas = slas
        self._audit = audit
        self._alerts = alerts
        self._batches = batches
        self._jobs = jobs
        self._logs = logs
        self._instance = instance
        self._metrics = metrics or Metrics()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._loop = DueLoop("sla.timer", slas.next_deadline, self.fire_due, housekeeping=self.housekeeping,
                             housekeeping_seconds=housekeeping_seconds, clock=clock)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_notify(self, _payload: str | None) -> None:
        self._loop.wake()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- judging -------------------------------------------------------------------------

    async def fire_due(self, now: int) -> bool:
        breaches: list[BreachRecord] = []
        async with self._slas.deadlines() as tx:
            due = await tx.due(now, DUE_BATCH)
            for deadline in due:
                try:
                    progress = await tx.progress(deadline)
                except ValueError:  # a target that names nothing (not an id): there is nothing to judge
                    progress = Progress(False)
                outcome = judge(deadline.rule, deadline.due_at, progress)
                if outcome is Outcome.BREACHED:
                    breach = await tx.breach(deadline, progress, self._instance)
                    if breach is not None:
                        breaches.append(breach)
                        if deadline.job:
                            await tx.job_log(deadline.job, SYSTEM.name, "sla_breached", _describe(breach))
                await tx.close(deadline, outcome)
                self._metrics.sla_event(outcome.lower())
                log.info("sla.deadline", sla_id=str(deadline.sla_id), target=deadline.target, outcome=outcome,
                         rule=deadline.rule, late_ms=now - deadline.due_at)
        for breach in breaches:
            self._spawn(self._act(breach))
        return not due  # something was due but others held it: their commit is near

    # --- actions -------------------------------------------------------------------------

    async def _act(self, breach: BreachRecord) -> None:
        bound = log.bind(sla_id=str(breach.sla_id), breach_id=breach.id, target=breach.target)
        try:
            sla = await self._slas.get(breach.sla_id)
            if sla is None:
                return  # deleted since: its breaches went with it
            with contextlib.suppress(Unavailable):
                await self._audit.record(SYSTEM.name, "sla_breached", str(sla.id), detail=_describe(breach))
            why = (f"SLA {sla.id} breached: {sla.rule} {format_duration(sla.duration_ms)} "
                   f"(due {breach.due_at}, {breach.kind.lower()} {breach.target})")
            results: dict[str, Any] = {}
            if "ALERT" in sla.actions:
                payload = _payload(sla, breach, self._instance)
                if sla.webhook:
                    results["webhook"] = await self._alerts.webhook(sla.webhook, payload, str(breach.id))
                if sla.emails:
                    results["email"] = await self._alerts.email(sla.emails, f"[batchgate] {why}", _mail(payload))
            if breach.batch_id is not None and breach.kind == "BATCH":
                await self._note(breach.batch_id, why + ("; killing the batch" if "KILL" in sla.actions else ""))
            if "KILL" in sla.actions:
                results["kill"] = await self._kill(breach, why)
            await self._slas.finish_breach(breach.id, results)
            self._metrics.sla_event("actions_done")
            bound.info("sla.actions_done", results=results)
        except Unavailable:
            bound.warning("sla.actions_db_unavailable")  # the breach stays open; housekeeping retries it
        except Exception:
            bound.exception("sla.actions_failed")

    async def _note(self, batch_id: uuid.UUID, text: str) -> None:
        with contextlib.suppress(GatewayError):
            await self._logs.note(batch_id, text)

    async def _kill_batch(self, batch_id: uuid.UUID) -> str:
        try:
            ok, message, batch = await self._batches.kill(SYSTEM, str(batch_id))
        except GatewayError as exc:
            return f"not killed: {exc.message}"
        return f"batch {batch_id}: {message} ({batch.state})" if ok else f"not killed: {message}"

    async def _kill(self, breach: BreachRecord, why: str) -> str:
        if breach.kind == "BATCH" or (breach.node is not None and breach.batch_id is not None):
            assert breach.batch_id is not None
            if breach.kind != "BATCH":
                await self._note(breach.batch_id, why + "; killing the node's batch")
            return await self._kill_batch(breach.batch_id)
        if breach.run_id is None:
            if breach.kind == "TICK":  # still queued: it will not start late
                schedule, _, fire = breach.target.partition("@")
                if await self._store.skip_queued_tick(uuid.UUID(schedule), int(fire), why):
                    return "the queued tick was skipped"
            return "nothing to kill: no run was started"
        try:
            run = await self._jobs.run(SYSTEM, str(breach.run_id))
            for node in await self._jobs.nodes(run):
                if node.batch_id is not None and node.state in ACTIVE_NODES:
                    await self._note(node.batch_id, why + f"; canceling run {run.id}")
            await self._jobs.control(SYSTEM, str(run.id), "cancel", {})
        except GatewayError as exc:
            return f"run {breach.run_id} not canceled: {exc.message}"
        return f"run {breach.run_id} canceled"

    # --- what dead instances left --------------------------------------------------------

    async def housekeeping(self) -> None:
        for breach in await self._slas.orphaned_breaches(self._instance, not self._started):
            log.info("sla.breach_taken_over", breach_id=breach.id, sla_id=str(breach.sla_id))
            self._spawn(self._act(breach))
        self._started = True


def _describe(breach: BreachRecord) -> dict[str, Any]:
    return {"sla": str(breach.sla_id), "breach": breach.id, "rule": breach.rule, "kind": breach.kind,
            "target": breach.target, "run": str(breach.run_id) if breach.run_id else None,
            "batch": str(breach.batch_id) if breach.batch_id else None, "node": breach.node,
            "dueTime": breach.due_at}


def _payload(sla: SlaRecord, breach: BreachRecord, instance: str) -> dict[str, Any]:
    return {
        "event": "sla.breached",
        "breach": {"id": breach.id, "kind": breach.kind, "target": breach.target, "startTime": breach.start_at,
                   "dueTime": breach.due_at, "breachTime": breach.breached_at, "instance": instance,
                   "job": breach.job, "runId": str(breach.run_id) if breach.run_id else None,
                   "batchId": str(breach.batch_id) if breach.batch_id else None, "node": breach.node},
        "sla": {"id": str(sla.id), "rule": sla.rule, "duration": format_duration(sla.duration_ms),
                "durationMs": sla.duration_ms, "actions": sla.actions, "job": sla.job,
                "schedule": str(sla.schedule_id) if sla.schedule_id else None, "node": sla.node,
                "batch": str(sla.batch_id) if sla.batch_id else None, "owner": sla.owner,
                "description": sla.description},
    }


def _mail(payload: dict[str, Any]) -> str:
    b, s = payload["breach"], payload["sla"]
    lines = [f"SLA {s['id']} was breached: {s['rule']} {s['duration']}.", ""]
    for key in ("job", "node", "runId", "batchId", "kind", "target", "startTime", "dueTime", "breachTime"):
        value = b.get(key) if key in b else s.get(key)
        if value is not None:
            lines.append(f"{key}: {value}")
    lines += ["", f"actions: {', '.join(s['actions'])}", f"description: {s['description'] or '-'}"]
    return "\n".join(lines)
