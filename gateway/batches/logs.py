"""LogStore: durable batch logs. Append numbered lines, read exact windows (by lines or by characters),
follow live."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from gateway.contract.batches import TERMINAL_STATES
from gateway.instance.listener import LOG, STATE, Hub
from gateway.instance.metrics import Metrics
from gateway.store import BatchRepository
from gateway.store.logs import LogRepository
from gateway.store.records import mask_text

CHUNK_LINES = 2000
FOLLOW_PAGE = 5000
KEEPALIVE_SECONDS = 15.0
# The most characters one character window holds; a client asking for more gets this many and moves on
# by the length it got (as Azkaban's clients do).
MAX_CHAR_WINDOW = 1 << 20
# No log reaches this character: a window from here on is empty (and the SQL's sums stay within bigint).
MAX_CHAR_OFFSET = 1 << 62


def char_window(chunks: list[tuple[int, list[str]]], start: int, size: int) -> str:
    """Characters [start, start + size) of a log given as (offset of first character, lines) chunks in
    order. A log's text is each line followed by a newline; characters are Unicode code points."""
    end = start + size
    out: list[str] = []
    for position, lines in chunks:
        for line in lines:
            after = position + len(line) + 1
            if after > start and position < end:
                text = line + "\n"
                out.append(text[max(start - position, 0):end - position])
            position = after
            if position >= end:
                return "".join(out)
    return "".join(out)


def gateway_line(text: str) -> str:
    """A line the gateway writes about a batch, told apart from program output by its prefix."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} [batchgate] {text}"


class LogStore:
    def __init__(self, repository: LogRepository, batches: BatchRepository, hub: Hub,
                 metrics: Metrics | None = None) -> None:
        self._repository = repository
        self._batches = batches
        self._hub = hub
        self._metrics = metrics or Metrics()

    async def append(
        self, batch_id: uuid.UUID, lines: list[str], offset: int | None = None, owner: str | None = None
    ) -> bool:
        """Store engine output. False if `owner` no longer owns the batch (nothing was written)."""
        for start in range(0, len(lines), CHUNK_LINES):
            part = lines[start:start + CHUNK_LINES]
            last = start + CHUNK_LINES >= len(lines)
            if await self._repository.append(batch_id, part, offset if last else None, owner) < 0:
                return False
            self._metrics.logged(len(part))
        return True

    async def note(self, batch_id: uuid.UUID, text: str) -> None:
        await self._repository.append(batch_id, [self.note_line(text)])

    def note_line(self, text: str) -> str:
        """The log line of a note, for a store write that appends it along with a state change."""
        # One note is one line, whatever it quotes: a line number must mean the same thing everywhere.
        flat = mask_text(text.replace("\r", "\\r").replace("\n", "\\n"))
        self._metrics.logged(1)
        return gateway_line(flat)

    async def read(self, batch_id: uuid.UUID, start: int, size: int) -> list[str]:
        return await self._repository.read(batch_id, start, size)

    async def tails(self, batch_ids: list[uuid.UUID], lines: int) -> dict[uuid.UUID, list[str]]:
        """The last `lines` lines of each batch's log, in one query."""
        return await self._repository.tails(batch_ids, lines)

    async def read_chars(self, batch_id: uuid.UUID, start: int, size: int) -> str:
        """Characters [start, start + size) of the log's text (at most MAX_CHAR_WINDOW of them), fewer at its
        end, none past it. The chunk holding `start` is found by an index seek on the stored counts."""
        size = min(size, MAX_CHAR_WINDOW)
        if size <= 0 or not 0 <= start < MAX_CHAR_OFFSET:
            return ""
        return char_window(await self._repository.read_chars(batch_id, start, size), start, size)

    async def char_length(self, batch_id: uuid.UUID) -> int:
        """The log's length in characters, from its last chunk's counts (one index seek)."""
        return await self._repository.chars(batch_id)

    async def follow(self, batch_id: uuid.UUID, start: int) -> AsyncIterator[tuple[int, list[str]]]:
        """Yield (first line number, lines) from `start` on, until the batch is terminal and read out.

        An empty list is a keepalive: nothing new for a while, and the stream should say so.
        """
        position = start
        key = str(batch_id)
        with self._metrics.following(), self._hub.subscribe(LOG, key) as grew, \
                self._hub.subscribe(STATE, key) as changed:
            while True:
                # Clear before reading, so that a notification during the read is not lost.
                grew.clear()
                changed.clear()
                lines = await self._repository.read(batch_id, position, FOLLOW_PAGE)
                if lines:
                    yield position, lines
                    position += len(lines)
                    continue
                batch = await self._batches.get_batch(batch_id)
                if batch is None or (batch.state in TERMINAL_STATES and position >= batch.log_lines):
                    return
                waited = time.monotonic()
                await _first(grew, changed, timeout=KEEPALIVE_SECONDS)
                if time.monotonic() - waited >= KEEPALIVE_SECONDS:
                    yield position, []


async def _first(*events: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
