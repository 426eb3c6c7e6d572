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

from gateway.contract.jobs import NODE_TERMINAL, RUN_TERMINAL
from gateway.errors import BadRequest, Conflict, Unavailable
from gateway.jobs.graph import downstream, node_request
from gateway.store.jobs import JobStore, NewBatch, NodeState, RunRecord, RunTransaction

log = structlog.get_logger("gateway.runs")

SWEEP_SECONDS = 15.0
NODE_OF_BATCH = {"INITIALIZED": "QUEUED", "PENDING": "QUEUED", "RUNNING": "RUNNING", "FINISHED": "SUCCEEDED",
                 "ERROR": "FAILED", "CANCELED": "CANCELLED"}
DONE_OK = frozenset({"SUCCEEDED", "SKIPPED"})
DONE_BAD = frozenset({"FAILED", "CANCELLED"})
ACTIVE = frozenset({"QUEUED", "RUNNING", "PAUSED"})


def _now() -> int:
    return int(time.time() * 1000)


class RunCoordinator:
    def __init__(self, jobs: JobStore, on_queued: Callable[[], None] | None = None) -> None:
        self._jobs = jobs
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
        """The run under its row lock; once committed, claimers hear about the batches it queued."""
        async with self._jobs.locked_run(run_id) as tx:
            yield tx
        if tx is not None and tx.inserted and self._on_queued is not None:
            self._on_queued()

    async def advance(self, run_id: uuid.UUID) -> RunRecord | None:
        async with self._locked(run_id) as tx:
            if tx is None:
                return None
            return await self._advance(tx)

    async def _advance(self, tx: RunTransaction, *, stop_reason: str | None = None) -> RunRecord:
        run = tx.run
        nodes = await tx.nodes()
        by_id = {n.node_id: n for n in nodes}
        events: list[tuple[str | None, str]] = []
        now = _now()

        def move(node: NodeState, state: str) -> None:
            if node.state == state:
                return
            node.state = state
            node.changed = True
            if state == "RUNNING" and not node.start_time:
                node.start_time = node.app_start_time or now
            if state in NODE_TERMINAL and not node.end_time:
                node.end_time = node.batch_end_time or now
                node.start_time = node.start_time or node.end_time
            events.append((node.node_id, state))

        # 1. What the node batches did.
        for node in nodes:
            if node.batch_id is not None and node.state in ACTIVE and node.batch_state:
                if node.batch_state == "PAUSED":
                    move(node, "PAUSED" if node.state in ("RUNNING", "PAUSED") else "QUEUED")
                else:
                    move(node, NODE_OF_BATCH[node.batch_state])

        terminal_run = run.state in RUN_TERMINAL
        stopping = stop_reason is not None or terminal_run
        failed = any(n.state == "FAILED" for n in nodes)
        to_stop: list[uuid.UUID] = []
        if not stopping and failed:
            if run.failure_action == "CANCEL_ALL":
                stop_reason = "another node failed (CANCEL_ALL)"
                stopping = True
            elif run.failure_action == "FINISH_CURRENTLY_RUNNING":
                # Running nodes finish; nothing new starts, and queued nodes never start.
                for node in nodes:
                    if node.state == "READY":
                        move(node, "CANCELLED")
                    elif node.state == "QUEUED" and node.batch_id is not None:
                        to_stop.append(node.batch_id)
        if stopping and not terminal_run:
            for node in nodes:
                if node.state == "READY":
                    move(node, "CANCELLED")
                elif node.state in ACTIVE and node.batch_id is not None:
                    to_stop.append(node.batch_id)
        await tx.stop_batches(to_stop, f"run {run.id}: {stop_reason or 'a node failed'}")

        # 2. Launch what is ready, unless the run is paused or stopping.
        launch: list[NodeState] = []
        for node in nodes:
            if node.state != "READY":
                continue
            dep_states = [by_id[d].state for d in node.depends_on]
            if any(s in DONE_BAD for s in dep_states):
                move(node, "CANCELLED")  # FINISH_ALL_POSSIBLE: what depends on a failure cannot run
            elif all(s in DONE_OK for s in dep_states) and not run.paused and not stopping:
                launch.append(node)
        if launch:
            definition = await tx.definition()
            specs = {n["id"]: n for n in definition.get("nodes", [])}
            batches: list[NewBatch] = []
            for node in launch:
                request = node_request(node.node_id, specs[node.node_id]["request"], run.variables)
                batch_id = uuid.uuid4()
                batches.append(NewBatch(
                    id=batch_id, batch_type=request.batch_type, name=request.name or f"{run.job}.{node.node_id}",
                    resource=request.resource or "", class_name=request.class_name, conf=request.conf,
                    args=request.args, priority=request.priority,
                    info={"runId": str(run.id), "nodeId": node.node_id, "job": run.job, "attempt": node.attempt},
                ))
                node.batch_id = batch_id
                move(node, "QUEUED")
            await tx.insert_batches(batches, run.submit_user, run.real_user, run.project)

        # 3. The run's own state.
        await tx.save_nodes(nodes)
        state = run.state
        end_time = run.end_time
        if all(n.state in NODE_TERMINAL for n in nodes):
            if not terminal_run:
                state = "SUCCEEDED" if all(n.state in DONE_OK for n in nodes) else (
                    "KILLED" if stop_reason and "cancel" in stop_reason else "FAILED")
                end_time = now
        elif not terminal_run:
            state = "PAUSED" if run.paused else "RUNNING"
        if stop_reason and "cancel" in stop_reason and not terminal_run:
            state = "KILLED"
            end_time = now
        if state != run.state:
            events.append((None, state))
        await tx.events(events)
        if state != run.state or end_time != run.end_time or not run.start_time:
            run = await tx.save_run(state=state, start_time=run.start_time or now, end_time=end_time,
                                    paused=run.paused, attempt=run.attempt, variables=run.variables)
        return run

    # --- control -------------------------------------------------------------------------

    async def cancel(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            if tx.run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is already {tx.run.state}")
            return await self._advance(tx, stop_reason="canceled on request")

    async def pause(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is {run.state}; only an active run can be paused")
            if run.paused:
                return run
            await tx.save_run(state="PAUSED", start_time=run.start_time, end_time=run.end_time, paused=True,
                              attempt=run.attempt, variables=run.variables)
            await tx.events([(None, "PAUSED")])
            return await self._advance(tx)

    async def resume(self, run_id: uuid.UUID) -> RunRecord:
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if not run.paused or run.state in RUN_TERMINAL:
                raise Conflict(f"run {run_id} is {run.state}, not PAUSED")
            await tx.save_run(state="RUNNING", start_time=run.start_time, end_time=run.end_time, paused=False,
                              attempt=run.attempt, variables=run.variables)
            await tx.events([(None, "RUNNING")])
            return await self._advance(tx)

    async def retry(self, run_id: uuid.UUID, variables: dict[str, str], declared: dict[str, str]) -> RunRecord:
        unknown = sorted(set(variables) - set(declared))
        if unknown:
            raise BadRequest(f"variables: unknown variable {unknown[0]!r}; the job declares {sorted(declared)}")
        async with self._locked(run_id) as tx:
            if tx is None:
                raise Conflict(f"run {run_id} disappeared")
            run = tx.run
            if run.state not in ("FAILED", "KILLED"):
                raise Conflict(f"run {run_id} is {run.state}; only a failed or killed run can be retried")
            nodes = await tx.nodes()
            deps = {n.node_id: list(n.depends_on) for n in nodes}
            again = downstream(deps, {n.node_id for n in nodes if n.state in DONE_BAD})
            for node in nodes:
                if node.node_id in again:
                    node.state, node.batch_id, node.start_time, node.end_time = "READY", None, 0, 0
                    node.attempt += 1
                    node.changed = True
            await tx.save_nodes(nodes)
            merged = {**run.variables, **variables}
            await tx.save_run(state="RUNNING", start_time=run.start_time, end_time=0, paused=False,
                              attempt=run.attempt + 1, variables=merged)
            await tx.events([*((n, "READY") for n in sorted(again)), (None, "RUNNING")])
            return await self._advance(tx)


def describe(run: RunRecord) -> dict[str, Any]:
    return {"run": str(run.id), "job": run.job, "state": run.state}
