"""RunLogs: what there is to read of a run once the caller may read it: a node's batch log, the logs of a chain
of nodes as one text, the run's own log (gateway/jobs/runlog.py), and its events as they come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.batches.logs import MAX_CHAR_WINDOW, LogStore, char_window
from gateway.contract.jobs import NODE_TERMINAL, RUN_TERMINAL
from gateway.errors import NotFound
from gateway.instance.listener import Hub
from gateway.jobs.runlog import run_log_lines
from gateway.store.jobs import JobRepository, NodeRecord, RunRecord

RUN_CHANNEL = "batchgate_run"
MAX_RUN_EVENTS = 100_000  # a run's log is made of at most this many events


class RunLogs:
    """Reads only: every run handed in was read through JobService.run(), which checked the caller."""

    def __init__(self, jobs: JobRepository, logs: LogStore, hub: Hub) -> None:
        self._jobs = jobs
        self._logs = logs
        self._hub = hub

    async def node_log(self, run: RunRecord, node_id: str, start: int, size: int) -> list[str]:
        node = await self._node(run, node_id)
        if node.batch_id is None:
            return []
        return await self._logs.read(node.batch_id, start, size)

    async def node_log_chars(self, run: RunRecord, node_ids: list[str], start: int, size: int) -> str:
        """Characters [start, start + size) of the logs of a run's nodes one after the other (their batches';
        an Azkaban job of several commands is a chain of nodes). A node's log is followed by the next one's
        once it has ended and the next has a batch, so the text only ever grows at its end. `run` was read
        through run()."""
        size = min(size, MAX_CHAR_WINDOW)
        if size <= 0 or start < 0:
            return ""
        nodes = {n.node_id: n for n in await self._jobs.run_nodes(run.id)}
        missing = [n for n in node_ids if n not in nodes]
        if missing:
            raise NotFound(f"run {run.id} has no node {missing[0]}")
        parts = [nodes[n] for n in node_ids]
        pieces: list[str] = []
        base, end = 0, start + size  # base: where the current node's log starts in the whole text
        for i, node in enumerate(parts):
            if node.batch_id is None or base >= end:
                break
            last = (i + 1 == len(parts) or node.state not in NODE_TERMINAL or parts[i + 1].batch_id is None)
            length = None if last else await self._logs.char_length(node.batch_id)
            lo = max(start - base, 0)
            if length is None or lo < length:
                hi = end - base if length is None else min(end - base, length)
                pieces.append(await self._logs.read_chars(node.batch_id, lo, hi - lo))
            if length is None:
                break
            base += length
        return "".join(pieces)

    async def run_log_chars(self, run: RunRecord, start: int, size: int) -> str:
        """Characters [start, start + size) of the run's own log (gateway/jobs/runlog.py), read whole from
        its events: a run records a few events per node. `run` was read through run()."""
        size = min(size, MAX_CHAR_WINDOW)
        if size <= 0 or start < 0:
            return ""
        events: list[dict[str, Any]] = []
        while len(events) < MAX_RUN_EVENTS:
            page = await self._jobs.events_after(run.id, events[-1]["id"] if events else 0)
            if not page:
                break
            events += page
        return char_window([(0, run_log_lines(run, events[:MAX_RUN_EVENTS]))], start, size)

    async def _node(self, run: RunRecord, node_id: str) -> NodeRecord:
        node = next((n for n in await self._jobs.run_nodes(run.id) if n.node_id == node_id), None)
        if node is None:
            raise NotFound(f"run {run.id} has no node {node_id}")
        return node

    async def events(self, run: RunRecord, after: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of run events after an id, until the run has ended and everything was sent."""
        key = str(run.id)
        position = after
        with self._hub.subscribe(RUN_CHANNEL, key) as changed:
            while True:
                changed.clear()
                events = await self._jobs.events_after(run.id, position)
                if events:
                    position = events[-1]["id"]
                    yield events
                    continue
                current = await self._jobs.get_run(run.id)
                if current is None or current.state in RUN_TERMINAL:
                    return
                waiter = asyncio.ensure_future(changed.wait())
                done, _ = await asyncio.wait({waiter}, timeout=15)
                waiter.cancel()
                if not done:
                    yield []  # keepalive

