"""The workflow advance, `gateway.jobs.plan.plan()`, from tables: no Postgres, no gateway.

Each row gives a run (its state, failure action, paused), its nodes as "id:STATE[:BATCH_STATE][<dep,dep]",
the cause, and what the plan must say: the nodes' states after it, which nodes' batches stop, which
nodes launch, and the run's state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from gateway.contract.batches import BatchState
from gateway.contract.jobs import FailureAction, NodeState, RunState
from gateway.jobs.plan import A_NODE_FAILED, ANOTHER_NODE_FAILED, CANCELED_ON_REQUEST, SEQUENCE_BROKEN, Cause, plan
from gateway.store.jobs import NodeRow, RunRecord

NOW = 1_000_000
RUN_ID = uuid.UUID(int=1)
FINISH_RUNNING = FailureAction.FINISH_CURRENTLY_RUNNING
CANCEL_ALL = FailureAction.CANCEL_ALL
ALL_POSSIBLE = FailureAction.FINISH_ALL_POSSIBLE


def batch_id(node: str) -> uuid.UUID:
    return uuid.uuid5(RUN_ID, node)


def make_run(state: RunState = RunState.RUNNING, action: FailureAction = FINISH_RUNNING,
             paused: bool = False) -> RunRecord:
    return RunRecord(id=RUN_ID, job="j", version=1, state=state, trigger="manual", submit_user="alice",
                     real_user="alice", variables={}, failure_action=action, paused=paused, attempt=1, project=None,
                     schedule_id=None, fire_time=None, create_time=1, start_time=1, end_time=0, update_time=1)


def make_nodes(spec: str) -> list[NodeRow]:
    """"a:RUNNING:FINISHED b:READY<a" -> node a (RUNNING, its batch FINISHED), node b (READY, after a)."""
    nodes = []
    for item in spec.split():
        head, _, deps = item.partition("<")
        node_id, state, *batch = head.split(":")
        has_batch = state not in ("READY", "SKIPPED") or bool(batch)
        nodes.append(NodeRow(
            node_id=node_id, state=NodeState(state), depends_on=deps.split(",") if deps else [],
            batch_id=batch_id(node_id) if has_batch else None, attempt=1, start_time=0, end_time=0,
            batch_state=BatchState(batch[0]) if batch else None, app_start_time=500 if batch else None,
            batch_end_time=700 if batch and BatchState(batch[0]) in (BatchState.FINISHED, BatchState.ERROR,
                                                                    BatchState.CANCELED) else None,
        ))
    return nodes


@dataclass
class Row:
    name: str
    nodes: str
    after: str  # "id:STATE ..." for every node
    run: RunState
    stop: str = ""  # node ids whose batches stop
    launch: str = ""  # node ids that launch
    action: FailureAction = FINISH_RUNNING
    cause: Cause = Cause.CHANGE
    state: RunState = RunState.RUNNING  # the run's state before
    paused: bool = False
    reason: str = A_NODE_FAILED
    waiting: bool = False  # a sequence: the run before it has not ended


ROWS = [
    Row("a fresh run launches its roots", "a:READY b:READY<a c:READY", "a:QUEUED b:READY c:QUEUED",
        RunState.RUNNING, launch="a c"),
    Row("a prepared run starts running", "a:READY", "a:QUEUED", RunState.RUNNING, launch="a",
        state=RunState.PREPARING),
    Row("a queued node follows its batch", "a:QUEUED:INITIALIZED b:QUEUED:PENDING c:QUEUED:RUNNING",
        "a:QUEUED b:QUEUED c:RUNNING", RunState.RUNNING),
    Row("a finished batch lets the next node launch", "a:RUNNING:FINISHED b:READY<a", "a:SUCCEEDED b:QUEUED",
        RunState.RUNNING, launch="b"),
    Row("a node waits for all of its dependencies", "a:RUNNING:FINISHED c:RUNNING:RUNNING b:READY<a,c",
        "a:SUCCEEDED c:RUNNING b:READY", RunState.RUNNING),
    Row("a skipped dependency counts as done", "a:SKIPPED b:READY<a", "a:SKIPPED b:QUEUED", RunState.RUNNING,
        launch="b"),
    Row("all done: SUCCEEDED", "a:RUNNING:FINISHED b:SKIPPED", "a:SUCCEEDED b:SKIPPED", RunState.SUCCEEDED),
    Row("FINISH_CURRENTLY_RUNNING: running nodes finish, queued ones stop, ready ones never start",
        "a:RUNNING:ERROR b:RUNNING:RUNNING c:QUEUED:INITIALIZED d:READY e:READY<a",
        "a:FAILED b:RUNNING c:QUEUED d:CANCELLED e:CANCELLED", RunState.RUNNING, stop="c"),
    Row("FINISH_CURRENTLY_RUNNING: the run fails once the rest has ended",
        "a:FAILED b:RUNNING:FINISHED c:QUEUED:CANCELED", "a:FAILED b:SUCCEEDED c:CANCELLED", RunState.FAILED),
    Row("CANCEL_ALL: every active batch stops", "a:RUNNING:ERROR b:RUNNING:RUNNING c:QUEUED:INITIALIZED d:READY",
        "a:FAILED b:RUNNING c:QUEUED d:CANCELLED", RunState.RUNNING, stop="b c", action=CANCEL_ALL,
        reason=ANOTHER_NODE_FAILED),
    Row("CANCEL_ALL ends FAILED, not KILLED", "a:FAILED b:RUNNING:CANCELED", "a:FAILED b:CANCELLED",
        RunState.FAILED, action=CANCEL_ALL, reason=ANOTHER_NODE_FAILED),
    Row("FINISH_ALL_POSSIBLE: only what depends on the failure is cancelled",
        "a:RUNNING:ERROR b:READY<a c:READY<b d:READY e:QUEUED:RUNNING",
        "a:FAILED b:CANCELLED c:CANCELLED d:QUEUED e:RUNNING", RunState.RUNNING, launch="d", action=ALL_POSSIBLE),
    Row("FINISH_ALL_POSSIBLE: the run fails at the end", "a:FAILED b:RUNNING:FINISHED", "a:FAILED b:SUCCEEDED",
        RunState.FAILED, action=ALL_POSSIBLE),
    Row("a cancel stops everything and ends KILLED at once",
        "a:RUNNING:RUNNING b:QUEUED:INITIALIZED c:READY<a d:PAUSED:PAUSED e:SUCCEEDED",
        "a:RUNNING b:QUEUED c:CANCELLED d:PAUSED e:SUCCEEDED", RunState.KILLED, stop="a b d", cause=Cause.CANCEL,
        reason=CANCELED_ON_REQUEST),
    Row("a cancel of a run whose nodes all succeeded is still KILLED", "a:RUNNING:FINISHED", "a:SUCCEEDED",
        RunState.KILLED, cause=Cause.CANCEL, reason=CANCELED_ON_REQUEST),
    Row("a paused run launches nothing", "a:RUNNING:FINISHED b:READY<a", "a:SUCCEEDED b:READY", RunState.PAUSED,
        state=RunState.PAUSED, paused=True),
    Row("a paused batch pauses its running node", "a:RUNNING:PAUSED", "a:PAUSED", RunState.RUNNING),
    Row("a paused batch leaves a queued node queued", "a:QUEUED:PAUSED", "a:QUEUED", RunState.RUNNING),
    Row("a resumed batch resumes its node", "a:PAUSED:RUNNING", "a:RUNNING", RunState.RUNNING),
    Row("an ended run only records what its batches did", "a:RUNNING:FINISHED b:READY<a",
        "a:SUCCEEDED b:READY", RunState.KILLED, state=RunState.KILLED),
    Row("a run waiting in its sequence launches nothing and stays PREPARING", "a:READY b:READY<a",
        "a:READY b:READY", RunState.PREPARING, state=RunState.PREPARING, waiting=True),
    Row("once the run before it succeeded, it starts", "a:READY b:READY<a", "a:QUEUED b:READY",
        RunState.RUNNING, launch="a", state=RunState.PREPARING),
    Row("the run before it failed: it never starts and ends KILLED", "a:READY b:READY<a",
        "a:CANCELLED b:CANCELLED", RunState.KILLED, state=RunState.PREPARING, cause=Cause.SEQUENCE_BROKEN,
        reason=SEQUENCE_BROKEN),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_plan(row: Row) -> None:
    run = make_run(row.state, row.action, row.paused)
    nodes = make_nodes(row.nodes)
    before = [(n.node_id, n.state) for n in nodes]
    step = plan(run, nodes, row.cause, NOW, waiting=row.waiting)

    assert " ".join(f"{n.node_id}:{n.state}" for n in step.nodes) == row.after
    assert step.stop == [batch_id(n) for n in row.stop.split()]
    assert [n.node_id for n in step.launch] == row.launch.split()
    assert all(n.state is NodeState.QUEUED and n.changed for n in step.launch)
    assert step.state is row.run
    assert step.stop_reason == row.reason
    assert [(n.node_id, n.state) for n in nodes] == before, "plan() changes no input"
    changed = {n.node_id for n in step.nodes if (n.node_id, n.state) not in before}
    assert {n.node_id for n in step.changed} == changed
    run_events = [state for node, state in step.events if node is None]
    assert run_events == ([] if row.run is row.state else [row.run])
    assert {node for node, _ in step.events if node is not None} == changed


def test_times() -> None:
    """A node that starts takes its application's start time; one that ends takes its batch's end time;
    the run's end time is set when it ends, and kept while it runs."""
    nodes = make_nodes("a:QUEUED:RUNNING b:RUNNING:FINISHED c:READY<b")
    step = plan(make_run(), nodes, Cause.CHANGE, NOW)
    a, b, c = step.nodes
    assert (a.start_time, a.end_time) == (500, 0)
    assert (b.start_time, b.end_time) == (700, 700), "a node seen only at its end starts when it ends"
    assert (c.start_time, c.end_time) == (0, 0)
    assert step.end_time == 0

    cancelled = plan(make_run(), make_nodes("a:READY"), Cause.CANCEL, NOW)
    assert cancelled.nodes[0].end_time == NOW and cancelled.end_time == NOW


def test_events_come_in_the_order_of_the_changes() -> None:
    nodes = make_nodes("a:RUNNING:ERROR b:READY<a c:READY")
    step = plan(make_run(action=ALL_POSSIBLE), nodes, Cause.CHANGE, NOW)
    assert step.events == [("a", NodeState.FAILED), ("b", NodeState.CANCELLED), ("c", NodeState.QUEUED)]
