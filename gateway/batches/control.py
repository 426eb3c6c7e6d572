"""BatchControl: job control on batches (pause, resume, restart, drop, bulk actions, details)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from engines.base import LaunchSpec, pause_refusal
from engines.registry import EngineRegistry
from gateway.batches.admission import Admission
from gateway.batches.logs import LogStore
from gateway.batches.service import BatchService, parse_batch_id
from gateway.contract.batches import TERMINAL_STATES, BatchSort, BatchState
from gateway.errors import BadRequest, Conflict, GatewayError
from gateway.instance.listener import STATE, Hub
from gateway.projects.service import ProjectService
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.security.policy import Policy
from gateway.store import BatchRecord, BatchRepository, ListFilter
from gateway.store.control import ControlRepository

log = structlog.get_logger("gateway.control")

ACTIONS = ("PAUSE", "RESUME", "CANCEL", "RESTART", "DROP")
CONTROL_WAIT_SECONDS = 60.0
BULK_CHUNK = 500
MAX_REPORTED_FAILURES = 1000


@dataclass
class BulkResult:
    matched: int = 0
    succeeded: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    failures_truncated: bool = False


class BatchControl:
    def __init__(
        self, store: BatchRepository, controls: ControlRepository, logs: LogStore, engines: EngineRegistry,
        hub: Hub, policy: Policy, batches: BatchService, admission: Admission, audit: AuditService,
        workdir_of: Callable[[uuid.UUID], Path],
        projects: ProjectService | None = None,
    ) -> None:
        self._auditor = audit
        self._store = store
        self._controls = controls
        self._logs = logs
        self._engines = engines
        self._hub = hub
        self._policy = policy
        self._batches = batches
        self._admission = admission
        self._workdir_of = workdir_of
        self._projects = projects

    async def _modifiable(self, who: Principal, batch_id: str) -> BatchRecord:
        return await self._batches.modifiable(who, batch_id)

    async def _audit(self, who: Principal, action: str, batch: BatchRecord, **detail: Any) -> None:
        await self._auditor.record(who.name, action, str(batch.id), source_ip=who.source_ip,
                                   detail={"state": batch.state, **detail})

    # --- pause and resume ----------------------------------------------------------------

    async def pause(self, who: Principal, batch_id: str) -> BatchRecord:
        batch = await self._modifiable(who, batch_id)
        if batch.state is BatchState.PAUSED:
            return batch  # pausing twice is a no-op
        if batch.state in TERMINAL_STATES:
            raise Conflict(f"batch {batch.id} is {batch.state}; only a queued or running batch can be paused")
        if batch.state is BatchState.INITIALIZED:
            paused = await self._controls.pause_queued(batch.id)
            if paused is None:
                return await self.pause(who, batch_id)  # it was claimed meanwhile: pause the launched one
            await self._logs.note(batch.id, f"paused in the queue by {who.name}")
            await self._audit(who, "pause", batch)
            return paused
        if batch.state is BatchState.PENDING:
            raise Conflict(f"batch {batch.id} is launching; pause it once it is RUNNING")
        engine = self._engines.get(batch.batch_type)
        reason = pause_refusal(engine, _spec(batch)) if engine is not None else "its engine is not enabled"
        if reason:
            raise Conflict(f"batch {batch.id} cannot be paused: {reason}")
        return await self._ask_owner(who, batch, "PAUSE", [BatchState.RUNNING], BatchState.PAUSED)

    async def resume(self, who: Principal, batch_id: str) -> BatchRecord:
        batch = await self._modifiable(who, batch_id)
        if batch.state is not BatchState.PAUSED:
            raise Conflict(f"batch {batch.id} is {batch.state}, not PAUSED")
        if batch.paused_from is BatchState.INITIALIZED:
            resumed = await self._controls.resume_queued(batch.id)
            if resumed is None:
                raise Conflict(f"batch {batch.id} changed while resuming; try again")
            await self._logs.note(batch.id, f"resumed by {who.name}: back in the queue")
            await self._audit(who, "resume", batch)
            return resumed
        return await self._ask_owner(who, batch, "RESUME", [BatchState.PAUSED], BatchState.RUNNING)

    async def _ask_owner(
        self, who: Principal, batch: BatchRecord, action: str, states: list[BatchState], target: BatchState
    ) -> BatchRecord:
        """Record the request; the owner instance acts on it. Wait for the outcome."""
        with self._hub.subscribe(STATE, str(batch.id)) as changed:
            requested = await self._controls.request_control(batch.id, action, states)
            if requested is None:
                raise Conflict(f"batch {batch.id} changed meanwhile; it is no longer {'/'.join(states)}")
            await self._logs.note(batch.id, f"{action.lower()} requested by {who.name}")
            await self._audit(who, action.lower(), batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONTROL_WAIT_SECONDS
            while True:
                changed.clear()
                current = await self._store.get_batch(batch.id)
                assert current is not None
                if current.state == target or current.state in TERMINAL_STATES:
                    return current
                if current.control is None:
                    error = current.batch_info.get("controlError") or "the owner did not act on the request"
                    raise Conflict(f"batch {batch.id} could not be {'paused' if action == 'PAUSE' else 'resumed'}: "
                                   f"{error}")
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return current  # still in progress (a slow savepoint): the state will follow
                # The owner's answer changes state or batch_info; both bump the row, but only a state
                # change notifies, so also look again after a short while.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    # --- restart and drop ----------------------------------------------------------------

    async def restart(self, who: Principal, batch_id: str) -> BatchRecord:
        batch = await self._modifiable(who, batch_id)
        if batch.state not in TERMINAL_STATES:
            raise Conflict(f"batch {batch.id} is {batch.state}; only a finished, failed or canceled batch "
                           "can be restarted")
        attempt = int(batch.batch_info.get("attempt", 1)) + 1
        root = str(batch.batch_info.get("restartRoot") or batch.id)
        info: dict[str, Any] = {"restartOf": str(batch.id), "attempt": attempt, "restartRoot": root}
        new = await self._admission.restart(who, batch, info)
        await self._logs.note(new.id, f"restart of {batch.id} (attempt {attempt}) by {who.name}")
        # Only now: a claimer woken while the note's update held the row would skip it (SKIP LOCKED).
        self._batches.queued()
        await self._audit(who, "restart", batch, newBatch=str(new.id))
        return new

    async def drop(self, who: Principal, batch_id: str) -> None:
        batch = await self._modifiable(who, batch_id)
        if batch.state not in TERMINAL_STATES:
            raise Conflict(f"batch {batch.id} is {batch.state}; kill it before dropping it")
        if not await self._controls.drop_batch(batch.id):
            raise Conflict(f"batch {batch.id} changed meanwhile; try again")
        await self._audit(who, "drop", batch)
        workdir = self._workdir_of(batch.id)
        await asyncio.to_thread(shutil.rmtree, workdir, True)
        log.info("batch.dropped", batch_id=str(batch.id), user=who.name)

    # --- bulk ----------------------------------------------------------------------------

    async def bulk(self, who: Principal, action: str, ids: list[str], flt: ListFilter | None) -> BulkResult:
        """Apply one action to many batches, each authorized on its own, in chunks."""
        action = action.upper()
        if action not in ACTIONS:
            raise BadRequest(f"action: must be one of {', '.join(ACTIONS)}, not {action!r}")
        if not ids and flt is None:
            raise BadRequest("ids or filter: give at least one")
        base = flt or ListFilter()
        if ids:
            base = dataclasses.replace(base, ids=tuple(parse_batch_id(i) for i in ids))
        # A user's filter only ever reaches what the user may see; each batch is then checked on its own.
        if not ids:
            base = await self._batches.scoped(who, base)
        # Batches created from here on (a RESTART's new attempts, say) are not part of this action.
        base = dataclasses.replace(base, created_before=int(time.time() * 1000) + 1)
        result = BulkResult()
        seen: set[uuid.UUID] = set()
        after: tuple[int, uuid.UUID] | None = None
        while True:
            page_filter = dataclasses.replace(base, offset=0, size=BULK_CHUNK, desc=False, sort=BatchSort.CREATE_TIME,
                                              after=after)
            _, page = await self._store.list_batches(page_filter)
            if not page:
                break
            for batch in page:
                if batch.id in seen:
                    continue
                seen.add(batch.id)
                result.matched += 1
                try:
                    await self._one(who, action, str(batch.id))
                    result.succeeded += 1
                except GatewayError as exc:
                    if len(result.failed) < MAX_REPORTED_FAILURES:
                        result.failed.append({"id": str(batch.id), "message": exc.message})
                    else:
                        result.failures_truncated = True
            after = (page[-1].create_time, page[-1].id)
            await asyncio.sleep(0)  # one chunk at a time; other requests go between chunks
        if ids:
            found = {str(b) for b in seen}
            for missing in (i for i in ids if str(parse_batch_id(i)) not in found):
                result.matched += 1
                result.failed.append({"id": missing, "message": f"batch {missing} not found"})
        detail = {"matched": result.matched, "succeeded": result.succeeded}
        await self._auditor.record(who.name, f"bulk_{action.lower()}", base.project, source_ip=who.source_ip,
                                   detail=detail)
        if base.project and self._projects is not None:
            await self._projects.record(base.project, who.name, f"bulk_{action.lower()}", detail)
        return result

    async def _one(self, who: Principal, action: str, batch_id: str) -> None:
        if action == "PAUSE":
            await self.pause(who, batch_id)
        elif action == "RESUME":
            await self.resume(who, batch_id)
        elif action == "CANCEL":
            success, message, _ = await self._batches.kill(who, batch_id)
            if not success:
                raise Conflict(message)
        elif action == "RESTART":
            await self.restart(who, batch_id)
        elif action == "DROP":
            await self.drop(who, batch_id)

    # --- details -------------------------------------------------------------------------

    async def details(self, who: Principal, batch_id: str) -> tuple[BatchRecord, list[dict[str, Any]],
                                                                   dict[str, Any], list[BatchRecord]]:
        batch = await self._batches.get(who, batch_id)
        now = int(time.time() * 1000)
        steps = lifecycle_steps(batch, now)
        steps.extend({**s, "kind": s.get("kind", "engine")} for s in batch.details.get("steps", []))
        counters: dict[str, Any] = dict(batch.details.get("counters", {}))
        local = batch.batch_info.get("local")
        if isinstance(local, dict):
            counters.update({
                "exitCode": local.get("exit_code"), "cpuSeconds": local.get("cpu_seconds"),
                "userSeconds": local.get("user_seconds"), "systemSeconds": local.get("system_seconds"),
                "peakRssKb": local.get("max_rss_kb"),
            })
        root = str(batch.batch_info.get("restartRoot") or batch.id)
        attempts = [a for a in await self._controls.attempts(root)
                    if self._policy.may_read(who, a, await self._batches.roles(who, a))]
        return batch, steps, counters, attempts


def lifecycle_steps(batch: BatchRecord, now: int) -> list[dict[str, Any]]:
    """queued, launching, running: each with start, end (None while it lasts) and duration."""
    out: list[dict[str, Any]] = []

    def step(name: str, start: int, end: int) -> None:
        if start <= 0:
            return
        finished = end if end > 0 else None
        out.append({"name": name, "kind": "lifecycle", "start": start, "end": finished,
                    "duration": (finished or now) - start})

    claimed = batch.claim_time
    started = batch.app_start_time
    ended = batch.end_time
    step("queued", batch.create_time, claimed or (ended if ended else 0))
    if claimed:
        step("launching", claimed, started or ended)
    if started:
        step("running", started, ended)
    return out


def _spec(batch: BatchRecord) -> LaunchSpec:
    return LaunchSpec(
        batch_id=str(batch.id), batch_type=batch.batch_type, user=batch.batch_user, real_user=batch.real_user,
        name=batch.name, resource=batch.resource, class_name=batch.class_name, conf=batch.conf, args=batch.args,
        workdir=Path("."),
    )
