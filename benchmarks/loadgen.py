"""The load generator: `python -m benchmarks.loadgen SPEC.json`, result as JSON on stdout.

It runs in its own process so that its CPU is accounted apart from the harness and the server, and it
speaks HTTP/1.1 over plain asyncio streams with every request pre-encoded: on a 2-core machine the
client competes with the server for CPU, so the client must cost as little as possible, and its CPU is
reported with every figure.

Each of `concurrency` clients keeps one keep-alive connection and sends its next request when the
previous answer is complete (closed loop).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import resource
import sys
import time
from typing import Any

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


def encode(req: dict[str, Any], host: str, port: int, authorization: str) -> bytes:
    body = (req.get("body") or "").encode()
    head = (f"{req['method']} {req['path']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {authorization}\r\nAccept: application/json\r\n")
    if req.get("body") is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = _CONTENT_LENGTH.search(head)
    if match is not None:
        body = await reader.readexactly(int(match.group(1)))
    elif _CHUNKED.search(head):
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        body = b"".join(parts)
    else:
        body = b""
    return status, body, _CLOSE.search(head) is not None


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    raw = [encode(r, host, port, spec["authorization"]) for r in spec["requests"]]
    tags = [r.get("tag") or "" for r in spec["requests"]]
    concurrency: int = spec["concurrency"]
    duration: float = spec["duration"]
    warmup: float = spec["warmup"]
    count: int = spec["count"]
    collect = spec.get("collect")
    collect_re = re.compile(rb'"' + collect.encode() + rb'":\s*"([^"]*)"') if collect else None

    latencies: dict[str, list[float]] = {t: [] for t in set(tags)}
    status_counts: dict[str, int] = {}
    collected: list[str] = []
    errors = 0
    sample_error = ""
    measured = 0
    total = 0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    sequence = itertools.count()
    loop = asyncio.get_running_loop()
    start = loop.time()
    warm_end = start + warmup
    deadline = warm_end + duration
    first_send = 0.0
    last_done = 0.0

    async def client() -> None:
        nonlocal errors, sample_error, measured, total, first_send, last_done
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                i = next(sequence)
                if count:
                    if i >= count:
                        return
                elif loop.time() >= deadline:
                    return
                k = i % len(raw)
                t0 = loop.time()
                if not first_send:
                    first_send = time.time()
                try:
                    writer.write(raw[k])
                    status, body, close = await read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    # Counted as an error, and the client reconnects: a reset must not end the run.
                    errors += 1
                    if not sample_error:
                        sample_error = f"{exc!r} after {loop.time() - start:.2f} s"
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                t1 = loop.time()
                last_done = time.time()
                total += 1
                key = str(status)
                status_counts[key] = status_counts.get(key, 0) + 1
                if status >= 400:
                    errors += 1
                    if not sample_error:
                        sample_error = f"{status} {body[:300].decode(errors='replace')}"
                elif collect_re is not None:
                    found = collect_re.search(body)
                    if found:
                        collected.append(found.group(1).decode())
                if count or (t0 >= warm_end and t1 <= deadline):
                    latencies[tags[k]].append(round((t1 - t0) * 1000, 4))
                    measured += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    end = loop.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = (end - start) if count else duration
    return {
        "count": measured, "errors": errors, "elapsed": elapsed, "latencies_ms": latencies,
        "total": total, "status": status_counts,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
        "first_send": first_send, "last_done": last_done, "collected": collected, "sample_error": sample_error,
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    result = asyncio.run(main(spec))
    sys.stdout.write(json.dumps(result))
