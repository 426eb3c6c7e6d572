"""Durable logs: exact line windows, tail, and live follow over server-sent events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engines.process import LINE_LIMIT
from tests.helpers import Api


async def _sse(api: Api, batch_id: str, start: int = 0, headers: dict[str, str] | None = None,
               limit: int | None = None) -> tuple[list[tuple[int, str]], dict[str, Any] | None]:
    """Read a follow stream: (line number, text) pairs, and the final batch from the `end` event."""
    import json

    lines: list[tuple[int, str]] = []
    end = None
    async with api.client.get(f"/api/v1/batches/{batch_id}/log/follow?from={start}",
                              headers={**api.headers, **(headers or {})}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line == "":
                if event.get("event") == "log":
                    lines.append((int(event["id"]), event["data"]))
                    if limit is not None and len(lines) >= limit:
                        return lines, None
                elif event.get("event") == "end":
                    end = json.loads(event["data"])
                event = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                event[key] = value
    return lines, end


async def test_windows_are_exact_at_any_offset(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "for i in range(25000): print(f'line-{i}')"])
    await api.wait_for(batch["id"])
    log = await api.full_log(batch["id"])
    first = log.index("line-0")
    assert log[first:first + 25000] == [f"line-{i}" for i in range(25000)]
    for start, size in ((0, 1), (first + 12345, 7), (first + 24999, 5), (first + 2000, 2001)):
        window = await api.log(batch["id"], start, size)
        assert window == log[start:start + size]
    assert await api.log(batch["id"], len(log), 10) == []
    assert await api.log(batch["id"], len(log) + 100, 10) == []
    assert await api.log(batch["id"], 0, 0) == []
    tail = await api.call("GET", f"/api/v1/batches/{batch['id']}/localLog?from=-1&size=3")
    assert tail["logRowSet"] == log[-3:]


async def test_log_keeps_gateway_lines_and_program_output(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    await api.wait_for(batch["id"])
    log = await api.full_log(batch["id"])
    assert "out" in log and "err" in log
    gateway_lines = [line for line in log if "[batchgate]" in line]
    assert any("claimed by" in line for line in gateway_lines)
    assert any("launched pid" in line for line in gateway_lines)
    assert gateway_lines[-1].endswith("state FINISHED")


async def test_partial_last_line_and_long_lines(api: Api, python: str) -> None:
    program = "import sys; sys.stdout.write('x' * 100000 + '\\nno newline at end')"
    batch = await api.submit(resource=python, args=["-c", program])
    await api.wait_for(batch["id"])
    log = await api.full_log(batch["id"])
    assert "no newline at end" in log
    long_line = next(line for line in log if line.startswith("xxx"))
    assert long_line == "x" * LINE_LIMIT + " [truncated: 100000 bytes]"


# A program that writes, on stdout and stderr in turn, short lines and one very long line on each, all of
# printable UTF-8 (one, two and three bytes a character), the last line without a newline.
LONG_LINES = """
import sys
size = int(sys.argv[1])
unit = "aé€" * 7 + " "  # 64 bytes
long = (unit * (size // len(unit.encode()) + 1))[:size]
lines = [("out", "before"), ("out", long), ("out", "after"), ("err", "err-before"), ("err", long[::-1]),
         ("err", "err-after"), ("out", "tail é€")]
for stream, text in lines:
    target = sys.stdout if stream == "out" else sys.stderr
    target.write(text + "\\n")
    target.flush()
sys.stdout.write("no newline at the end")
"""


async def _long_lines(api: Api, python: str, size: int) -> None:
    batch = await api.submit(resource=python, args=["-c", LONG_LINES, str(size)])
    done = await api.wait_for(batch["id"], timeout=120)
    assert done["state"] == "FINISHED", done
    unit = "aé€" * 7 + " "
    long = (unit * (size // len(unit.encode()) + 1))[:size]
    expected = ["before", long, "after", "err-before", long[::-1], "err-after", "tail é€", "no newline at the end"]
    stored = [line for line in await api.full_log(batch["id"]) if "[batchgate]" not in line]
    assert len(stored) == len(expected), [line[:80] for line in stored]
    for got, want in zip(stored, expected, strict=True):
        if len(want.encode()) <= LINE_LIMIT:
            assert got == want
            continue
        # The documented marker: the line's first LINE_LIMIT bytes, cut at a character boundary.
        head, marker = got.rsplit(" [truncated: ", 1)
        assert marker == f"{len(want.encode())} bytes]"
        assert want.startswith(head) and LINE_LIMIT - 3 <= len(head.encode()) <= LINE_LIMIT


async def test_a_4_mib_line_loses_nothing_after_it(api: Api, python: str) -> None:
    await _long_lines(api, python, 4 << 20)


@pytest.mark.slow
async def test_a_64_mib_line_loses_nothing_after_it(api: Api, python: str) -> None:
    await _long_lines(api, python, 64 << 20)


async def test_nul_invalid_utf8_and_cr_are_stored_as_documented(api: Api, python: str) -> None:
    program = (r"import os; os.write(1, b'nul\x00byte\nbad\xff\xfeutf8\ncrlf\r\nbar\rprogress\r100%\n"
               r"\xe2\x82\n')")
    batch = await api.submit(resource=python, args=["-c", program])
    await api.wait_for(batch["id"])
    stored = [line for line in await api.full_log(batch["id"]) if "[batchgate]" not in line]
    assert stored == ["nul\ufffdbyte", "bad\ufffd\ufffdutf8", "crlf", "bar\rprogress\r100%", "\ufffd"]


async def test_bad_log_parameters(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "pass"])
    for query in ("from=abc", "size=-3", "from=-7", "size=1000000"):
        status, payload = await api.status_of("GET", f"/api/v1/batches/{batch['id']}/localLog?{query}")
        assert status == 400 and payload["message"], (query, payload)


async def test_follow_streams_live_lines_and_ends_with_batch(api: Api, python: str) -> None:
    program = "import time\nfor i in range(20):\n    print(f'tick-{i}', flush=True)\n    time.sleep(0.05)\n"
    batch = await api.submit(resource=python, args=["-c", program])
    lines, end = await _sse(api, batch["id"])
    texts = [text for _, text in lines]
    assert [t for t in texts if t.startswith("tick-")] == [f"tick-{i}" for i in range(20)]
    assert [n for n, _ in lines] == list(range(len(lines))), "ids are consecutive absolute line numbers"
    assert end is not None and end["state"] == "FINISHED"
    assert texts == await api.full_log(batch["id"])


async def test_follow_delivers_lines_before_the_batch_ends(api: Api, python: str) -> None:
    program = "import time\nprint('first', flush=True)\ntime.sleep(30)\n"
    batch = await api.submit(resource=python, args=["-c", program])

    async def until_first() -> list[tuple[int, str]]:
        got: list[tuple[int, str]] = []
        while not any(text == "first" for _, text in got):
            got, _ = await _sse(api, batch["id"], limit=len(got) + 1)
        return got

    got = await asyncio.wait_for(until_first(), timeout=15)
    assert got[-1][1] == "first"
    assert (await api.get(batch["id"]))["state"] == "RUNNING", "lines arrive while the batch still runs"
    await api.kill(batch["id"])


async def test_follow_resumes_from_last_event_id(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "for i in range(50): print(i)"])
    await api.wait_for(batch["id"])
    full = await api.full_log(batch["id"])
    lines, end = await _sse(api, batch["id"], headers={"Last-Event-ID": "9"})
    assert lines[0][0] == 10 and [t for _, t in lines] == full[10:]
    assert end is not None and end["state"] == "FINISHED"


async def test_follow_of_finished_batch_replays_and_ends(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "print('done')"])
    await api.wait_for(batch["id"])
    lines, end = await _sse(api, batch["id"], start=2)
    assert [t for _, t in lines] == (await api.full_log(batch["id"]))[2:]
    assert end is not None
