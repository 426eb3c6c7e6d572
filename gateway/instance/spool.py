"""Files streamed between the network, the disk and Postgres: an upload spooled to a file as its chunks
arrive, bounded, and a file read back in chunks. Every open, write and read runs in a thread (aiofiles),
never on the event loop, so that a slow disk stalls no other request."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import aiofiles

from gateway.errors import TooLarge

READ_CHUNK = 1 << 20


async def bounded(chunks: AsyncIterable[bytes], limit: int, too_large: str) -> AsyncIterator[bytes]:
    """The chunks, until more than `limit` bytes have come: then TooLarge(`too_large`)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(too_large)
        yield chunk


async def write_chunks(chunks: AsyncIterable[bytes], target: Path) -> int:
    """Writes `chunks` to `target` as they arrive and returns the size. A chunk source that raises (a bound
    passed, a broken body) leaves a partial file: the caller's to remove, with its spool directory."""
    size = 0
    async with aiofiles.open(target, "wb") as f:
        async for chunk in chunks:
            size += len(chunk)
            await f.write(chunk)
    return size


async def read_chunks(path: Path, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """The file's bytes, `size` at a time."""
    async with aiofiles.open(path, "rb") as f:
        while chunk := await f.read(size):
            yield chunk
