"""Logs by characters (Azkaban's fetchExecJobLogs and fetchExecFlowLogs, docs/azkaban.md "Logs"): exact
character windows over the line-indexed log store, found by an index seek on per-chunk counts, for a job
of a run (its batch's log) and for the run itself (its events as text)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engines.process import LINE_LIMIT
from gateway.batches.logs import MAX_CHAR_WINDOW, LogStore, char_window
from gateway.instance.listener import Hub
from gateway.keys import DATABASE
from gateway.store import BatchRepository
from gateway.store.database import Database
from gateway.store.logs import LogRepository
from gateway.store.migrate import Migrator, load_migrations
from tests.conftest import MakeDatabase
from tests.helpers import Api
from tests.live_gateway import in_thread, live_gateway
from tests.test_azkaban import Azkaban, project_zip
from tests.test_migrations import first_release_database

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
# One write, so that the tailer finds all 4,500 lines at once (line by line, a reader that keeps up on a
# loaded machine sees them in small pieces, and no append reaches CHUNK_LINES).
w("".join(f"line {i} \u00fc\U0001F600\n" for i in range(4500)))
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


class Client:
    """Azkaban's log calls as the `azkaban` client makes them: GET with the parameters in the query and the
    session in the `azkaban.browser.session.id` cookie."""

    def __init__(self, api: Api, az: Azkaban) -> None:
        self.api, self.az = api, az

    async def get(self, **params: Any) -> dict[str, Any]:
        async with self.api.client.get("/executor", params={k: str(v) for k, v in params.items()},
                                       cookies={"azkaban.browser.session.id": self.az.session_id}) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = json.loads(await resp.text())
            return body

    async def window(self, execid: int, offset: int, length: int, job: str | None = None) -> str:
        params: dict[str, Any] = {"execid": execid, "offset": offset, "length": length}
        if job is None:
            params["ajax"] = "fetchExecFlowLogs"
        else:
            params.update(ajax="fetchExecJobLogs", jobId=job)
        body = await self.get(**params)
        assert set(body) == {"data", "offset", "length"}, body
        assert body["offset"] == offset and body["length"] == len(body["data"]) <= length, body
        data: str = body["data"]
        return data

    async def read_all(self, execid: int, length: int, job: str | None = None, offset: int = 0) -> tuple[str, int]:
        """The client's loop: offset += length until the length is 0."""
        got: list[str] = []
        while data := await self.window(execid, offset, length, job):
            got.append(data)
            offset += len(data)
        return "".join(got), offset


async def start(api: Api, project: str, flow: str, files: dict[str, str]) -> tuple[Client, int]:
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name=project, description="logs")
    uploaded = await az.upload(project, project_zip({"p/system.properties": f"py={sys.executable}\n", **files}))
    assert "error" not in uploaded, uploaded
    started = await az.call("/executor", ajax="executeFlow", project=project, flow=flow)
    return Client(api, az), started["execid"]


async def node_text(api: Api, project: str, flow: str, node: str) -> str:
    """A node's log by lines, through the native API, as text."""
    runs = await api.call("GET", f"/api/v1/jobs/{project}.{flow}/runs")
    run_id = runs["runs"][0]["id"]
    lines: list[str] = []
    while True:
        page = await api.call("GET", f"/api/v1/runs/{run_id}/nodes/{node}/log?from={len(lines)}&size=10000")
        if not page["logRowSet"]:
            return text_of(lines)
        lines += page["logRowSet"]


async def stored_counts(api: Api, batch_id: str) -> list[tuple[int | None, int | None, list[str]]]:
    async with api.app[DATABASE].pool.acquire() as conn:
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
    client, execid = await start(api, "chars", "emit", {"p/emit.job": "type=command\ncommand=${py} emit.py\n",
                                                "p/emit.py": PROGRAM})
    done = await client.az.until(execid, ("SUCCEEDED", "FAILED", "KILLED"))
    assert done["status"] == "SUCCEEDED", done
    full = await node_text(api, "chars", "emit", "emit")
    assert text_of(PROGRAM_LINES) in full, "the program's output, exactly, between the gateway's lines"

    # The client's loop, at several window sizes, gives the whole log back.
    for size in (4096, 50_000, MAX_CHAR_WINDOW + 5):
        assert await client.read_all(execid, size, "emit") == (full, len(full))
    # A character at a time, and 7 at a time, over the last lines (all of it would be 300,000 calls).
    assert await client.read_all(execid, 1, "emit", len(full) - 300) == (full[-300:], len(full))
    assert await client.read_all(execid, 7, "emit", len(full) - 3000) == (full[-3000:], len(full))

    runs = await api.call("GET", "/api/v1/jobs/chars.emit/runs")
    batch_id = (await api.call("GET", f"/api/v1/runs/{runs['runs'][0]['id']}"))["nodes"][0]["batchId"]
    chunks = await stored_counts(api, batch_id)
    assert len(chunks) >= 5, "gateway notes and engine output make several chunks"
    assert max(len(lines) for _, _, lines in chunks) == 2000, "a big append is cut at CHUNK_LINES"
    # Windows across every chunk boundary.
    for boundary in check_counts(chunks)[1:]:
        for offset in (boundary - 2, boundary - 1, boundary, boundary + 1):
            assert await client.window(execid, offset, 3, "emit") == full[offset:offset + 3]
    # Characters are code points: of 2, 3 and 4 bytes in UTF-8, a CR inside a line, the truncation marker.
    emoji = full.index("\U0001F600\U0001D11E")
    assert await client.window(execid, emoji, 1, "emit") == "\U0001F600"
    assert await client.window(execid, emoji + 1, 2, "emit") == "\U0001D11E "
    accents = full.index("\u00e9\u20ac\u4e2d")
    assert await client.window(execid, accents + 1, 2, "emit") == "\u20ac\u4e2d"
    cr = full.index("bar\rprogress")
    assert await client.window(execid, cr + 3, 2, "emit") == "\rp"
    long_line = full.index("x" * 100)
    window = await client.window(execid, long_line + LINE_LIMIT - 2, 30, "emit")
    assert window == "xx [truncated: 70000 bytes]\n\U0001F600\U0001F600"
    # The end, and past it: nothing, at the offset asked.
    assert await client.window(execid, len(full) - 5, 100, "emit") == full[-5:]
    assert await client.window(execid, len(full), 100, "emit") == ""
    assert await client.window(execid, len(full) + 10_000, 100, "emit") == ""
    assert await client.window(execid, 0, 0, "emit") == ""
    assert await client.window(execid, 2**63 - 1, 2**63 - 1, "emit") == "", "the largest numbers are past the end"


async def test_a_growing_log_is_read_on_from_where_the_reader_stopped(api: Api, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    program = (
        "import os, sys, time\n"
        "for i in range(300): print(f'early {i} \u00e9\U0001F600', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\n"
        "for i in range(3000): print(f'late {i} \u20ac')\n"
    )
    client, execid = await start(api, "growing", "emit", {"p/emit.job": "type=command\ncommand=${py} emit.py\n",
                                                  "p/emit.py": program})
    deadline = asyncio.get_running_loop().time() + 60
    text, offset = "", 0
    while "early 299" not in text:
        assert asyncio.get_running_loop().time() < deadline, text[-200:]
        more, offset = await client.read_all(execid, 1000, "emit", offset)
        text += more
        await asyncio.sleep(0.05)
    assert (await client.az.call("/executor", ajax="fetchexecflow", execid=execid))["status"] == "RUNNING"
    gate.touch()
    assert (await client.az.until(execid, ("SUCCEEDED", "FAILED", "KILLED")))["status"] == "SUCCEEDED"
    more, offset = await client.read_all(execid, 1000, "emit", offset)
    text += more
    full = await node_text(api, "growing", "emit", "emit")
    assert text == full and offset == len(full) and "late 2999 \u20ac\n" in full


async def test_a_job_of_several_commands_and_the_flow_log(api: Api) -> None:
    client, execid = await start(api, "multi", "second", {
        "p/first.job": "type=command\ncommand=${py} -c \"print('first \u00e9')\"\n",
        "p/second.job": "type=command\ndependencies=first\ncommand=${py} -c \"print('one')\"\n"
                        "command.1=${py} -c \"print('two \U0001F600')\"\n",
    })
    assert (await client.az.until(execid, ("SUCCEEDED", "FAILED", "KILLED")))["status"] == "SUCCEEDED"
    second = await node_text(api, "multi", "second", "second")
    again = await node_text(api, "multi", "second", "second.command.1")
    assert "one\n" in second and "two \U0001F600\n" in again
    for size in (1, 10, 1000):
        assert await client.read_all(execid, size, "second") == (second + again, len(second + again))
    first, _ = await client.read_all(execid, 100, "first")
    assert first == await node_text(api, "multi", "second", "first") and "first \u00e9\n" in first

    flow, end = await client.read_all(execid, 50_000)
    lines = flow.splitlines()
    assert flow.endswith("\n") and end == len(flow)
    assert any(line.endswith(" of job multi.second SUCCEEDED") for line in lines), lines
    for job in ("first", "second", "second.command.1"):
        assert any(line.endswith(f"[batchgate] job {job} SUCCEEDED") for line in lines), (job, lines)
    assert await client.read_all(execid, 13) == (flow, end), "the same text however it is cut"
    assert await client.window(execid, end, 10) == ""
    assert await client.window(execid, 2**63 - 1, 2**63 - 1) == ""


async def test_errors_are_azkabans(api: Api) -> None:
    client, execid = await start(api, "errs", "emit", {"p/emit.job": "type=command\ncommand=${py} -c pass\n"})
    assert await client.get(ajax="fetchExecJobLogs", execid=execid, jobId="nope", offset=0, length=10) == {
        "error": f"Job nope doesn't exist in {execid}"}
    assert await client.get(ajax="fetchExecFlowLogs", execid=999_999, offset=0, length=10) == {
        "error": "Cannot find execution '999999'"}
    for params, message in (({"length": 10}, "Missing parameter offset"),
                            ({"offset": 0}, "Missing parameter length"),
                            ({"offset": -1, "length": 10}, "Parameter offset: -1 is negative"),
                            ({"offset": 0, "length": "ten"}, "Parameter length: 'ten' is not a number")):
        assert await client.get(ajax="fetchExecFlowLogs", execid=execid, **params) == {"error": message}
    assert await client.get(ajax="fetchExecJobLogs", execid=execid, offset=0, length=5) == {
        "error": "Missing parameter jobId"}
    other = await Azkaban.login(api, "mallory")
    for job in (None, "emit"):
        refused = await Client(api, other).get(ajax="fetchExecJobLogs" if job else "fetchExecFlowLogs",
                                               execid=execid, offset=0, length=5, **({"jobId": job} if job else {}))
        assert list(refused) == ["error"] and "user mallory lacks READ" in refused["error"], refused
    async with api.client.get("/executor", params={"ajax": "fetchExecFlowLogs", "execid": str(execid),
                                                   "offset": "0", "length": "5", "session.id": "gone"}) as resp:
        assert resp.status == 200 and '"error" : "session"' in await resp.text()


def client_reads(url: str, zip_path: Path) -> dict[str, Any]:
    """The `azkaban` library (PyPI) runs the flow and reads both logs as its Execution.logs does: offset +=
    length until length is 0 (blocking: run it in a thread)."""
    from azkaban.remote import Session

    session = Session(url=url)
    session.create_project("clientlogs", "logs read by the azkaban client")
    session.upload_project("clientlogs", str(zip_path))
    execid = session.run_workflow("clientlogs", "emit")["execid"]
    deadline = time.monotonic() + 60
    while session.get_execution_status(execid)["status"] not in ("SUCCEEDED", "FAILED", "KILLED"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    seen: dict[str, Any] = {"status": session.get_execution_status(execid)["status"]}
    for name, limit in (("job", 50_000), ("job_small", 997), ("flow", 50_000)):
        offset, pieces = 0, []
        while True:
            logs = (session.get_execution_logs(execid, offset, limit) if name == "flow"
                    else session.get_job_logs(execid, "emit", offset, limit))
            if not logs["length"]:
                break
            pieces.append(logs["data"])
            offset += logs["length"]
        seen[name] = "".join(pieces)
    return seen


@pytest.mark.slow
async def test_the_azkaban_client_reads_the_programs_output_exactly(tmp_path: Path, database_url: str) -> None:
    zip_path = tmp_path / "clientlogs.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("emit.job", f"type=command\ncommand={sys.executable} emit.py\n")
        archive.writestr("emit.py", PROGRAM)
    async with live_gateway(tmp_path, database_url, users={"alice": "a-pass"}, admins=()) as gw:
        seen: dict[str, Any] = {}

        def scenario() -> None:
            seen.update(client_reads(f"http://alice:a-pass@127.0.0.1:{gw.port}", zip_path))

        await in_thread(scenario)
    assert seen["status"] == "SUCCEEDED"
    program = text_of(PROGRAM_LINES)
    assert program in seen["job"], "the program's output, exactly, between batchgate's lines"
    before, _, after = seen["job"].partition(program)
    assert all("[batchgate]" in line for line in (before + after).splitlines())
    assert seen["job_small"] == seen["job"]
    assert "[batchgate] job emit SUCCEEDED\n" in seen["flow"] and seen["flow"].endswith(" SUCCEEDED\n")


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
    db = await Database.connect(url)
    try:
        repository = LogRepository(db)
        logs = LogStore(repository, BatchRepository(db), Hub())
        assert await repository.append(batch_id, ["after the upgrade \u20ac"]) == 5
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
        await db.close()
