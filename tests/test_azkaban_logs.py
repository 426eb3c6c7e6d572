"""Logs by characters (Azkaban's fetchExecJobLogs and fetchExecFlowLogs, docs/azkaban.md "Logs"): exact
character windows over the line-indexed log store, found by an index seek on per-chunk counts, for a job
of a run (its batch's log) and for the run itself (its events as text)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from engines.process import LINE_LIMIT
from gateway.batches.logs import MAX_CHAR_WINDOW, LogStore, char_window
from gateway.instance.listener import Hub
from gateway.keys import AUTH, JOBS, STORE
from gateway.store import Store
from gateway.store.migrate import Migrator, load_migrations
from tests.conftest import MakeDatabase
from tests.helpers import Api
from tests.test_migrations import first_release_database

TERMINAL_RUN = ("SUCCEEDED", "FAILED", "KILLED")

# What the program writes, and the same as the log store keeps it (docs/architecture.md, "Logs"): a CR
# before the newline is dropped, other CRs stay; a line over 64 KiB keeps its first 64 KiB (cut at a
# character boundary) and gets the marker; a last line without a newline is a line.
PROGRAM = r"""
import sys, time
def w(s):
    sys.stdout.write(s)
    sys.stdout.flush()
w("plain ascii\n")
w("\u00e9\u20ac\u4e2d two and three bytes\n")
w("\U0001F600\U0001D11E four bytes \U0001F389\n")
w("crlf ends here\r\n")
w("bar\rprogress\r100%\n")
w("x" * 70000 + "\n")
w("\U0001F600" * 20000 + "\n")
for i in range(4500):
    sys.stdout.write(f"line {i} \u00fc\U0001F600\n")
sys.stdout.flush()
time.sleep(0.3)
w("after a pause\n")
w("last line without newline")
"""
PROGRAM_LINES = [
    "plain ascii",
    "\u00e9\u20ac\u4e2d two and three bytes",
    "\U0001F600\U0001D11E four bytes \U0001F389",
    "crlf ends here",
    "bar\rprogress\r100%",
    "x" * LINE_LIMIT + " [truncated: 70000 bytes]",
    "\U0001F600" * (LINE_LIMIT // 4) + " [truncated: 80000 bytes]",
    *(f"line {i} \u00fc\U0001F600" for i in range(4500)),
    "after a pause",
    "last line without newline",
]


def text_of(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


async def start_run(api: Api, name: str, program: str) -> dict[str, Any]:
    node = {"id": "emit", "dependsOn": [],
            "request": {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", program]}}
    await api.call("POST", "/api/v1/jobs", json={"name": name, "nodes": [node]})
    run: dict[str, Any] = await api.call("POST", f"/api/v1/jobs/{name}/runs", json={})
    return run


async def wait_run(api: Api, run_id: str, states: tuple[str, ...] = TERMINAL_RUN) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        run: dict[str, Any] = await api.call("GET", f"/api/v1/runs/{run_id}")
        if run["state"] in states and all(n["batchId"] for n in run["nodes"]):
            return run
        assert asyncio.get_running_loop().time() < deadline, run
        await asyncio.sleep(0.1)


async def node_text(api: Api, run_id: str) -> str:
    """The node's log by lines, through the native API, as text."""
    lines: list[str] = []
    while True:
        page = await api.call("GET", f"/api/v1/runs/{run_id}/nodes/emit/log?from={len(lines)}&size=10000")
        if not page["logRowSet"]:
            return text_of(lines)
        lines += page["logRowSet"]


async def read_all(api: Api, run_id: str, size: int, offset: int = 0) -> tuple[str, int]:
    """As Azkaban's client reads: offset += length until a window comes back empty."""
    jobs, who = api.app[JOBS], api.app[AUTH].principal("admin")
    run = await jobs.run(who, run_id)
    got: list[str] = []
    while True:
        window = await jobs.node_log_chars(who, run, "emit", offset, size)
        if not window:
            return "".join(got), offset
        assert len(window) <= size
        got.append(window)
        offset += len(window)


async def stored_counts(api: Api, batch_id: str) -> list[tuple[int | None, int | None, list[str]]]:
    async with api.app[STORE].pool.acquire() as conn:
        rows = await conn.fetch("select first_char, chars, lines from batch_log_chunks where batch_id = $1 "
                                "order by first_line", uuid.UUID(batch_id))
    return [(r["first_char"], r["chars"], r["lines"]) for r in rows]


def check_counts(chunks: list[tuple[int | None, int | None, list[str]]]) -> list[int]:
    """Every chunk's stored counts are Python's code points of its lines, each with its newline; returns
    where each chunk starts."""
    position = 0
    starts = []
    for first_char, chars, lines in chunks:
        assert (first_char, chars) == (position, len(text_of(lines))), (first_char, chars, lines[:1])
        starts.append(position)
        position += len(text_of(lines))
    return starts


async def test_job_log_windows_are_exact_characters(api: Api) -> None:
    run = await start_run(api, "chars", PROGRAM)
    final = await wait_run(api, run["id"])
    assert final["state"] == "SUCCEEDED", final
    batch_id = final["nodes"][0]["batchId"]
    full = await node_text(api, run["id"])
    assert text_of(PROGRAM_LINES) in full, "the program's output, exactly, between the gateway's lines"

    chunks = await stored_counts(api, batch_id)
    assert len(chunks) >= 5, "gateway notes and engine output make several chunks"
    assert max(len(lines) for _, _, lines in chunks) == 2000, "a big append is cut at CHUNK_LINES"
    starts = check_counts(chunks)

    # The client's loop, at several window sizes, gives the whole text back.
    for size in (4096, 50_000, MAX_CHAR_WINDOW + 5):
        assert await read_all(api, run["id"], size) == (full, len(full))
    # One character at a time over the last lines (the whole log would take 300,000 calls).
    assert await read_all(api, run["id"], 1, len(full) - 300) == (full[-300:], len(full))
    assert await read_all(api, run["id"], 7, len(full) - 3000) == (full[-3000:], len(full))

    jobs, who = api.app[JOBS], api.app[AUTH].principal("admin")
    record = await jobs.run(who, run["id"])
    # Windows across every chunk boundary, and inside multi-byte and 4-byte characters' neighbourhoods.
    for start in starts[1:]:
        for offset in (start - 2, start - 1, start, start + 1):
            assert await jobs.node_log_chars(who, record, "emit", offset, 3) == full[offset:offset + 3]
    emoji = full.index("\U0001F600\U0001D11E")
    assert await jobs.node_log_chars(who, record, "emit", emoji, 1) == "\U0001F600"
    assert await jobs.node_log_chars(who, record, "emit", emoji + 1, 2) == "\U0001D11E "
    long_line = full.index("x" * 100)
    window = await jobs.node_log_chars(who, record, "emit", long_line + LINE_LIMIT - 2, 30)
    assert window == "xx [truncated: 70000 bytes]\n\U0001F600\U0001F600"
    cr = full.index("bar\rprogress")
    assert await jobs.node_log_chars(who, record, "emit", cr + 3, 2) == "\rp", "a CR inside a line is a character"
    # The end, and past it.
    assert await jobs.node_log_chars(who, record, "emit", len(full) - 5, 100) == full[-5:]
    assert await jobs.node_log_chars(who, record, "emit", len(full), 100) == ""
    assert await jobs.node_log_chars(who, record, "emit", len(full) + 10_000, 100) == ""
    assert await jobs.node_log_chars(who, record, "emit", 0, 0) == ""


async def test_a_growing_log_is_read_on_from_where_the_reader_stopped(api: Api, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    program = (
        "import os, sys, time\n"
        "for i in range(300): print(f'early {i} \u00e9\U0001F600', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\n"
        "for i in range(3000): print(f'late {i} \u20ac')\n"
    )
    run = await start_run(api, "growing", program)
    deadline = asyncio.get_running_loop().time() + 60
    text, offset = "", 0
    while "early 299" not in text:
        assert asyncio.get_running_loop().time() < deadline, text[-200:]
        more, offset = await read_all(api, run["id"], 1000, offset)
        text += more
        await asyncio.sleep(0.05)
    assert (await api.call("GET", f"/api/v1/runs/{run['id']}"))["state"] == "RUNNING"
    gate.touch()
    final = await wait_run(api, run["id"])
    assert final["state"] == "SUCCEEDED"
    more, offset = await read_all(api, run["id"], 1000, offset)
    text += more
    full = await node_text(api, run["id"])
    assert text == full and offset == len(full)
    check_counts(await stored_counts(api, final["nodes"][0]["batchId"]))


async def test_flow_log_is_the_runs_events_as_stable_text(api: Api) -> None:
    run = await start_run(api, "flowlog", "print('hi')")
    await wait_run(api, run["id"])
    jobs, who = api.app[JOBS], api.app[AUTH].principal("admin")
    record = await jobs.run(who, run["id"])
    full = await jobs.run_log_chars(record, 0, MAX_CHAR_WINDOW)
    lines = full.splitlines()
    assert any(line.endswith(f"[batchgate] run {run['id']} of job flowlog SUCCEEDED") for line in lines), lines
    assert any(line.endswith("[batchgate] job emit RUNNING") for line in lines), lines
    assert lines[-1].endswith(" SUCCEEDED") and full.endswith("\n")
    pieces, offset = [], 0
    while piece := await jobs.run_log_chars(record, offset, 13):
        pieces.append(piece)
        offset += len(piece)
    assert "".join(pieces) == full == await jobs.run_log_chars(record, 0, len(full) + 100)
    assert await jobs.run_log_chars(record, len(full), 10) == ""


def test_char_window_over_chunks() -> None:
    chunks = [(0, ["ab", "\U0001F600"]), (5, ["", "c\rd"])]
    text = "ab\n\U0001F600\n\nc\rd\n"
    for start in range(len(text) + 2):
        for size in range(len(text) + 2):
            assert char_window(chunks, start, size) == text[start:start + size], (start, size)


async def test_an_upgrade_counts_logs_written_before_the_counts(empty_database: MakeDatabase) -> None:
    """A log written by the previous schema version has no counts; its first character read counts it
    (once), and appends after the upgrade, by this release or by the previous one, are counted."""
    url = await first_release_database(empty_database)
    migrations = load_migrations()
    previous = next(m for m in migrations if m.name == "log_chunk_chars").version - 1
    await Migrator(url, migrations[:previous]).upgrade()
    batch_id = uuid.uuid4()
    old_lines = [["started \u00e9", "\U0001F600\U0001F600 two emoji"], ["", "bar\rprogress"], ["x" * 100]]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("insert into batches (id, batch_type, batch_user, real_user, resource) "
                           "values ($1, 'LOCAL', 'ann', 'ann', 'python3')", batch_id)
        line = 0
        for lines in old_lines:  # as the previous release appends
            await conn.execute("insert into batch_log_chunks (batch_id, first_line, lines) values ($1, $2, $3)",
                               batch_id, line, lines)
            line += len(lines)
        await conn.execute("update batches set log_lines = $2 where id = $1", batch_id, line)
    finally:
        await conn.close()

    await Migrator(url).upgrade()
    store = await Store.connect(url)
    try:
        logs = LogStore(store, Hub())
        assert await store.append_log(batch_id, ["after the upgrade \u20ac"]) == 5
        conn = await asyncpg.connect(url)
        try:
            counts = await conn.fetch("select first_char, chars from batch_log_chunks order by first_line")
            assert [r["first_char"] for r in counts] == [None] * 4, "nothing counted before it is read"
            expected = text_of([ln for lines in old_lines for ln in lines] + ["after the upgrade \u20ac"])
            assert await logs.read_chars(batch_id, 0, 10_000) == expected
            assert await logs.read_chars(batch_id, 9, 5) == expected[9:14]
            # The previous release's append, on a counted log: the trigger counts it.
            await conn.execute("insert into batch_log_chunks (batch_id, first_line, lines) values ($1, 6, $2)",
                               batch_id, ["old code \U0001F389"])
            expected += "old code \U0001F389\n"
            rows = await conn.fetch("select first_char, chars, lines from batch_log_chunks order by first_line")
            check_counts([(r["first_char"], r["chars"], r["lines"]) for r in rows])
            assert await logs.read_chars(batch_id, len(expected) - 12, 100) == expected[-12:]
        finally:
            await conn.close()
    finally:
        await store.close()
