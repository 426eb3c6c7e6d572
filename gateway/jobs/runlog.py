"""A run's own log: what the run did (it and its nodes changing state), one line per recorded run event.

Runs keep no text of their own; their events (run_events, written in the run's transaction under its
lock, so in id order) are the record. The text is made from the stored events only, the same way every
time, so a character window of it never changes once the log has reached past it: a run's log grows at
its end, like a batch's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.store.jobs import RunRecord


def _stamp(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_line(run: RunRecord, event: dict[str, Any]) -> str:
    """`2026-12-06T19:13:21.123Z [batchgate] run <id> of job <job> RUNNING`, or for a node of it,
    `... [batchgate] job <node id> SUCCEEDED` (a node is what Azkaban calls a job of the flow)."""
    node = event["node_id"]
    what = f"run {run.id} of job {run.job}" if node is None else f"job {node}"
    return f"{_stamp(event['at'])} [batchgate] {what} {event['state']}"


def run_log_lines(run: RunRecord, events: list[dict[str, Any]]) -> list[str]:
    return [event_line(run, e) for e in events]
