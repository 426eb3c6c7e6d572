"""RunCoordinator: advances runs. Every change is made under the run's row lock, so any instance can
advance any run at any time and no node is launched twice or forgotten.

A run advances on events (a node batch changed state: NOTIFY batchgate_run_batch) and on control
actions; a slow sweep catches what a crash may have left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from gateway.batches.admission import Admission
from gateway.contract.batches import BatchRequest
from gateway.contract.jobs import RUN_TERMINAL, NodeState, RunState
from gateway.errors import BadRequest, Conflict, GatewayError, Unavailable
from gateway.jobs.graph import downstream, node_request
from gateway.jobs.plan import DONE_BAD, Cause, plan
from gateway.security.auth import Principal
from gateway.store.jobs import JobRepository, RunRecord, RunTransaction
from gateway.store.records import NewBatch

log = structlog.get_logger("gateway.runs")

SWEEP_SECONDS = 15.0


def _now() -> int:
    return int(time.time() * 1000)


class RunCoordinator:
    def __init__(self, jobs: JobRepository, admission: Admission, principal: Callable[[str], Principal],
                 on_queued: Callable[[], None] | None = None) -> None:
        self._jobs = jobs
        self._admission = admission
        self._principal = principal
        self._on_queued = on_queued
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._dirty: set[uuid.UUID] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[int]] = set()

    # --- events --------------------------------------------------------------------------

    def on_batch_change(self, payload: str | None) -> None:
        """NOTIFY batchgate_run_batch: "<run id> <batch id>". None after a reconnect: sweep."""
        if payload is None:
            self.poke_sweep()
            return
        self.schedule(uuid.UUID(payload.split(" ", 1)[0]))

    def schedule(self, run_id: uuid.UUID) -> None:
        """Advance soon; a burst of events for one run becomes one or two advances."""
        if run_id in self._inflight:
            self._dirty.add(run_id)
            return
        task = asyncio.create_task(self._advance_loop(run_id), name=f"advance-{run_id}")
        self._inflight[run_id] = task

    async def _advance_loop(self, run_id: uuid.UUID) -> None:
        try:
            while True:
                self._dirty.discard(run_id)
                try:
                    await self.advance(run_id)
                except Unavailable:
                    log.warning("run.advance_db_unavailable", run_id=str(run_id))
                    return  # the sweep picks it up when the database is back
                except Exception:
                    log.exception("run.advance_failed", run_id=str(run_id))
                    return
                if run_id not in self._dirty:
                    return
        finally:
            self._inflight.pop(run_id, None)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="run-sweep")

    def poke_sweep(self) -> None:
        task = asyncio.create_task(self.sweep())
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def stop(self) -> None:
        tasks = [t for t in [self._sweeper, *self._inflight.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Unavailable:
                log.warning("run.sweep_db_unavailable")
            except Exception:
                log.exception("run.sweep_failed")
            await asyncio.sleep(SWEEP_SECONDS)  # the safety net; events do the real work

    async def sweep(self) -> int:
        stale = await self._jobs.stale_runs()
        for run_id in stale:
            self.schedule(run_id)
        return len(stale)

    # --- advancing -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, run_id: uuid.UUID) -> AsyncIterator[RunTransaction | None]:
        """The run under its row lock; once committed, claimers hear about the batches it queued, and the
        runs of a sequence that wait for it about its end."""
        async with self._jobs.locked_run(run_id) as tx:
            was_terminal = tx is not None and tx.run.state in RUN_TERMINAL
            yield tx
        if tx is not None and tx.inserted and self._on_queued is not None:
            self._on_queued()
        if tx is not None and not was_terminal and tx.run.state in RUN_TERMINAL:
            for waiting in await self._jobs.waiting_runs(run_id):
                self.schedule(waiting)

    async def advance(self, run_id: uuid.UUID) -> RunRecord | None:
        async with self._locked(run_id) as tx:
            if tx is None:
                return None
            return await self._advance(tx)

    async def _advance(self, tx: RunTransaction, cause: Cause = Cause.CHANGE) -> RunRecord:
        """Carry out what `plan()` decides for the locked run, in the run's transaction."""
        run = tx.run
        now = _now()
        waiting = False
        if run.after_run is not None and cause is Cause.CHANGE and run.state not in RUN_TERMINAL:
            before = await tx.run_state(run.after_run)  # a sequence: the run this one waits for
            if before is None or before in (RunState.FAILED, RunState.KILLED):
                cause = Cause.SEQUENCE_BROKEN
            else:
                waiting = before != RunState.SUCCEEDED
        step = plan(run, await tx.nodes(), cause, now, waiting=waiting)
        await tx.stop_batches(step.stop, f"run {run.id}: {step.stop_reason}")
        batches: list[NewBatch] = []
        if step.launch:
            who = self._principal(run.real_user)
            definition = await tx.definition()
            specs = {n["id"]: n for n in definition.get("nodes", [])}
            for node in step.launch:
                raw = specs[node.node_id]["request"]
                request: BatchRequest | GatewayError
                try:
                    request = node_request(node.node_id, raw, run.variables)
                except GatewayError as exc:
                    request = exc
                new = await self._admission.node(
                    who, node.node_id, raw, request, user=run.submit_user, project=run.project,
                    info={"runId": str(run.id), "nodeId": node.node_id, "job": run.job, "attempt": node.attempt},
                    name=f"{run.job}.{node.node_id}", artifacts=tx.artifact,
                )
                batches.append(new)
                node.batch_id = new.id
            await tx.insert_batches(batches)
            self._admission.admitted_nodes(batches)
        await tx.save_nodes(step.nodes)
        await tx.events(step.events)
        started = run.start_time or (0 if waiting else now)  # a run waiting in a sequence has not started
        if step.state != run.state or step.end_time != run.end_time or started != run.start_time:
            run = await tx.save_run(state=step.state, start_time=started, end_time=step.end_time,
                                    paused=run.paused, attempt=run.attempt, variables=run.variables)
        if any(b.refusal is not None for b in batches):
            # Refused nodes are ERROR batches already: advance again, so that they fail (and the failure
            # action applies) in this same transaction.
            return await self._advance(tx)
        return run

    # --- control -------------------------------------------------------------------------

    async def cancel(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            if tx.run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is already {tx.run.state}")
            return await self._advance(tx, Cause.CANCEL)

    async def pause(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is {run.state}; only an active run can be paused")
            if run.paused:
                return run
            await tx.save_run(state=RunState.PAUSED, start_time=run.start_time, end_time=run.end_time, paused=True,
                              attempt=run.attempt, variables=run.variables)
            await tx.events([(None, RunState.PAUSED)])
            return await self._advance(tx)

    async def resume(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if not run.paused or run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is {run.state}, not PAUSED")
            await tx.save_run(state=RunState.RUNNING, start_time=run.start_time, end_time=run.end_time, paused=False,
                              attempt=run.attempt, variables=run.variables)
            await tx.events([(None, RunState.RUNNING)])
            return await self._advance(tx)

    async def retry(self, run_id: uuid.UUID, variables: dict[str, str], declared: dict[str, str]) -> RunRecord:
        unknown = sorted(set(variables) - set(declared))
        if unknown:
            raise BadRequest(f"variables: unknown variable {unknown[0]!r}; the job declares {sorted(declared)}")
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if run.state not in (RunState.FAILED, RunState.KILLED):
                raise Conflict(f"run {run_id} is {run.state}; only a failed or killed run can be retried")
            nodes = await tx.nodes()
            deps = {n.node_id: list(n.depends_on) for n in nodes}
            again = downstream(deps, {n.node_id for n in nodes if n.state in DONE_BAD})
            for node in nodes:
                if node.node_id in again:
                    node.state, node.batch_id, node.start_time, node.end_time = NodeState.READY, None, 0, 0
                    node.attempt += 1
                    node.changed = True
            await tx.save_nodes(nodes)
            merged = {**run.variables, **variables}
            await tx.save_run(state=RunState.RUNNING, start_time=run.start_time, end_time=0, paused=False,
                              attempt=run.attempt + 1, variables=merged)
            await tx.events([*((n, NodeState.READY) for n in sorted(again)), (None, RunState.RUNNING)])
            return await self._advance(tx)


def describe(run: RunRecord) -> dict[str, Any]:
    return {"run": str(run.id), "job": run.job, "state": run.state}
