"""How a run advances, as a pure function: `plan(run, nodes, cause, now) -> Plan`.

The coordinator (runs.py) reads the run and its nodes under the run's row lock, asks `plan()` what to
do, and carries the plan out in the same transaction. Everything that decides lives here, and nothing
here touches the database, so the rules are tested from tables (tests/test_run_plan.py).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.contract.batches import BatchState
from gateway.contract.jobs import NODE_TERMINAL, RUN_TERMINAL, FailureAction, NodeState, RunState
from gateway.store.jobs import NodeRow, RunRecord

# A node follows its batch: the node state for each batch state (PAUSED is decided apart).
NODE_OF_BATCH = {
    BatchState.INITIALIZED: NodeState.QUEUED, BatchState.PENDING: NodeState.QUEUED,
    BatchState.RUNNING: NodeState.RUNNING, BatchState.FINISHED: NodeState.SUCCEEDED,
    BatchState.ERROR: NodeState.FAILED, BatchState.CANCELED: NodeState.CANCELLED,
}
DONE_OK = frozenset({NodeState.SUCCEEDED, NodeState.SKIPPED})
DONE_BAD = frozenset({NodeState.FAILED, NodeState.CANCELLED})
ACTIVE = frozenset({NodeState.QUEUED, NodeState.RUNNING, NodeState.PAUSED})

CANCELED_ON_REQUEST = "canceled on request"
SEQUENCE_BROKEN = "canceled: the run before it in its sequence did not succeed"
ANOTHER_NODE_FAILED = "another node failed (CANCEL_ALL)"
A_NODE_FAILED = "a node failed"


class Cause(StrEnum):
    """Why the run is advanced now."""

    CHANGE = "CHANGE"  # a node batch changed, a sweep, or a pause, resume or retry was recorded
    CANCEL = "CANCEL"  # a user asked to cancel the run: it ends KILLED
    SEQUENCE_BROKEN = "SEQUENCE_BROKEN"  # the run it waits for (a sequence) failed, was killed or is gone: KILLED


Event = tuple[str | None, str]  # (node id, or None for the run itself; the new state)


@dataclass
class Plan:
    """What to do to the run, in this order: stop `stop` (saying `stop_reason`), launch `launch`, save
    the `changed` nodes, record `events`, and save the run's `state` and `end_time`."""

    nodes: list[NodeRow]  # every node as it will be (copies; `changed` marks the ones to save)
    stop: list[uuid.UUID] = field(default_factory=list)
    stop_reason: str = A_NODE_FAILED
    launch: list[NodeRow] = field(default_factory=list)  # READY nodes now QUEUED, whose batches to insert
    state: RunState = RunState.RUNNING
    end_time: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def changed(self) -> list[NodeRow]:
        return [n for n in self.nodes if n.changed]


def plan(run: RunRecord, nodes: Sequence[NodeRow], cause: Cause, now: int, *, waiting: bool = False) -> Plan:
    """Decide the next step of `run` from its nodes (each with its batch's state). `waiting`: the run is
    part of a sequence and the run before it has not ended yet; nothing starts, and it stays PREPARING."""
    planner = _Planner(run, nodes, now, waiting)
    planner.follow_batches()
    stopping = planner.stop(cause)
    planner.launch(stopping)
    planner.settle(cause)
    return planner.plan


class _Planner:
    def __init__(self, run: RunRecord, nodes: Sequence[NodeRow], now: int, waiting: bool = False) -> None:
        self.run = run
        self.now = now
        self.waiting = waiting
        self.plan = Plan(nodes=[dataclasses.replace(n) for n in nodes], end_time=run.end_time)
        self.terminal_run = run.state in RUN_TERMINAL

    def move(self, node: NodeRow, state: NodeState) -> None:
        if node.state == state:
            return
        node.state = state
        node.changed = True
        if state is NodeState.RUNNING and not node.start_time:
            node.start_time = node.app_start_time or self.now
        if state in NODE_TERMINAL and not node.end_time:
            node.end_time = node.batch_end_time or self.now
            node.start_time = node.start_time or node.end_time
        self.plan.events.append((node.node_id, state))

    def follow_batches(self) -> None:
        """1. Each active node takes the state of its batch."""
        for node in self.plan.nodes:
            if node.batch_id is None or node.state not in ACTIVE or not node.batch_state:
                continue
            if node.batch_state == BatchState.PAUSED:
                held = node.state in (NodeState.RUNNING, NodeState.PAUSED)
                self.move(node, NodeState.PAUSED if held else NodeState.QUEUED)
            else:
                self.move(node, NODE_OF_BATCH[node.batch_state])

    def stop(self, cause: Cause) -> bool:
        """2. After a cancel or a failure: what must stop, and what will never start. True: the run stops."""
        reason = {Cause.CANCEL: CANCELED_ON_REQUEST, Cause.SEQUENCE_BROKEN: SEQUENCE_BROKEN}.get(cause)
        stopping = reason is not None or self.terminal_run
        if not stopping and any(n.state is NodeState.FAILED for n in self.plan.nodes):
            if self.run.failure_action == FailureAction.CANCEL_ALL:
                reason, stopping = ANOTHER_NODE_FAILED, True
            elif self.run.failure_action == FailureAction.FINISH_CURRENTLY_RUNNING:
                # Running nodes finish; nothing new starts, and queued nodes never start.
                self._stop_nodes({NodeState.QUEUED})
        if stopping and not self.terminal_run:
            self._stop_nodes(ACTIVE)
        self.plan.stop_reason = reason or A_NODE_FAILED
        return stopping

    def _stop_nodes(self, states: frozenset[NodeState] | set[NodeState]) -> None:
        """READY nodes are cancelled; the batches of nodes in `states` are stopped."""
        for node in self.plan.nodes:
            if node.state is NodeState.READY:
                self.move(node, NodeState.CANCELLED)
            elif node.state in states and node.batch_id is not None:
                self.plan.stop.append(node.batch_id)

    def launch(self, stopping: bool) -> None:
        """3. READY nodes whose dependencies succeeded start, unless the run is paused or stopping; those
        that depend on a failure never will (FINISH_ALL_POSSIBLE)."""
        by_id = {n.node_id: n for n in self.plan.nodes}
        for node in self.plan.nodes:
            if node.state is not NodeState.READY:
                continue
            dep_states = [by_id[d].state for d in node.depends_on]
            if any(s in DONE_BAD for s in dep_states):
                self.move(node, NodeState.CANCELLED)
            elif all(s in DONE_OK for s in dep_states) and not self.run.paused and not stopping \
                    and not self.waiting:
                self.plan.launch.append(node)
        for node in self.plan.launch:
            self.move(node, NodeState.QUEUED)

    def settle(self, cause: Cause) -> None:
        """4. The run's own state: a cancel ends it KILLED; once every node has ended, SUCCEEDED or FAILED."""
        plan, run = self.plan, self.run
        plan.state = run.state
        if self.terminal_run:
            pass
        elif cause in (Cause.CANCEL, Cause.SEQUENCE_BROKEN):
            plan.state, plan.end_time = RunState.KILLED, self.now
        elif all(n.state in NODE_TERMINAL for n in plan.nodes):
            ok = all(n.state in DONE_OK for n in plan.nodes)
            plan.state, plan.end_time = (RunState.SUCCEEDED if ok else RunState.FAILED), self.now
        elif run.paused:
            plan.state = RunState.PAUSED
        else:
            plan.state = RunState.PREPARING if self.waiting else RunState.RUNNING
        if plan.state != run.state:
            plan.events.append((None, plan.state))
