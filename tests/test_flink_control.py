"""Pause, resume and details of FLINK and PYFLINK batches.

Real Flink (marked slow): a session cluster started from the apache-flink package on loopback, one per
module, where a streaming PyFlink job is stopped with a savepoint and resumed from it as a new job, also
across a gateway restart; the local target's refusal; vertex details of a finished word count. A fake
launcher and a fake REST API (fast) cover what a real cluster will not do on demand: a failing
savepoint, a resume whose launcher submits nothing, and the exact command of a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.fake_flink_rest import FakeFlinkRest, fake_flink_home, recorded_argv, set_behaviour
from tests.flink_cluster import ENDLESS_PRELUDE, JOB_ID, SLOW, FlinkCluster, workdir_of
from tests.flink_cluster import cluster_fixture as cluster_fixture
from tests.flink_cluster import flink_home_fixture as flink_home_fixture
from tests.flink_cluster import reap_launchers_fixture as reap_launchers_fixture
from tests.helpers import Api, info

# The fixtures cluster, flink_home and (autouse) reap_launchers come from tests.flink_cluster: imported
# above, pytest finds them in this module as if it had defined them (module scope: one cluster here).
StartGateway = Callable[..., Awaitable[Api]]
SUBMITTED = "Job has been submitted with JobID {job_id}"

# A streaming job that never ends. Its operators have uids, so that a savepoint maps back onto them.
ENDLESS = ENDLESS_PRELUDE + """\
numbers = env.from_source(NumberSequenceSource(0, 10**12), WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
numbers.map(slow, output_type=Types.LONG()).uid("slow").filter(lambda x: x % 25 == 0).uid("every-25th") \\
    .map(lambda x: f"tick {x}", output_type=Types.STRING()).uid("format").print().uid("print")
env.execute("pausable-job")
"""


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, flink_home: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flink-control-jobs")
    (root / "endless.py").write_text(ENDLESS)
    word_count = flink_home / "examples" / "datastream" / "word_count.py"
    assert word_count.is_file(), f"PyFlink's word_count example moved: {word_count}"
    return {"endless": root / "endless.py", "word_count": word_count}


def local_path(uri: str) -> Path:
    """file:/x, file:///x or /x as a path."""
    return Path(urlsplit(uri).path if uri.startswith("file:") else uri)


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s (last: {last})")
        await asyncio.sleep(0.3)


async def wait_app_running(api: Api, batch_id: str, timeout: float = SLOW) -> Any:
    """Until the gateway has seen the Flink job RUNNING on the cluster."""
    async def running() -> Any:
        batch = await api.get(batch_id)
        assert batch["state"] in ("INITIALIZED", "PENDING", "RUNNING"), batch
        return batch if batch["state"] == "RUNNING" and batch["appState"] == "RUNNING" else None

    return await wait_until(running, f"batch {batch_id} running", timeout)


async def cluster_job_state(cluster: FlinkCluster, job_id: str) -> str:
    job = await asyncio.to_thread(cluster.get, f"/jobs/{job_id}")
    return str(job["state"])


async def wait_cluster_state(cluster: FlinkCluster, job_id: str, state: str, timeout: float = 60.0) -> None:
    async def reached() -> bool:
        return await cluster_job_state(cluster, job_id) == state

    await wait_until(reached, f"Flink job {job_id} {state}", timeout)


async def pause(api: Api, batch_id: str) -> Any:
    return await api.call("POST", f"/api/v1/batches/{batch_id}/pause")


async def resume(api: Api, batch_id: str) -> Any:
    return await api.call("POST", f"/api/v1/batches/{batch_id}/resume")


# --- real Flink: a session cluster ------------------------------------------------------------------


@pytest.mark.slow
async def test_pause_and_resume_pyflink_job_on_session_cluster(
    api: Api, jobs: dict[str, Path], cluster: FlinkCluster, tmp_path: Path,
) -> None:
    batch = await api.submit("PYFLINK", str(jobs["endless"]), name="pausable",
                             conf={"batchgate.flink.jobmanager": cluster.address})
    running = await wait_app_running(api, batch["id"])
    old = running["appId"]
    assert JOB_ID.match(old)

    paused = await pause(api, batch["id"])
    assert paused["state"] == "PAUSED", paused
    savepoint = paused["batchInfo"]["savepoint"]
    folder = local_path(savepoint)
    assert folder.is_dir() and (folder / "_metadata").is_file(), savepoint
    assert workdir_of(tmp_path, batch["id"]) in folder.parents, "the savepoint is in the batch's own folder"
    assert await cluster_job_state(cluster, old) == "FINISHED", "stopped with a savepoint, not canceled"
    await asyncio.sleep(1.5)
    still = await api.get(batch["id"])
    assert still["state"] == "PAUSED" and still["appId"] == old, "the stopped job's FINISHED is not the end"

    resumed = await resume(api, batch["id"])
    assert resumed["state"] == "RUNNING", resumed
    new = resumed["appId"]
    assert JOB_ID.match(new) and new != old
    assert info(resumed, "appIds") == [old, new]
    assert new in resumed["appUrl"]
    await wait_cluster_state(cluster, new, "RUNNING")

    async def restored_from() -> str | None:
        checkpoints = await asyncio.to_thread(cluster.get, f"/jobs/{new}/checkpoints")
        restored = (checkpoints.get("latest") or {}).get("restored") or {}
        return restored.get("external_path")

    restored = await wait_until(restored_from, "the new job restored from the savepoint", 60)
    assert local_path(restored) == folder
    await wait_app_running(api, batch["id"], 30)  # the gateway follows the new job

    await api.kill(batch["id"])
    final = await api.wait_for(batch["id"], timeout=60)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert final["appId"] == new and info(final, "appIds") == [old, new]
    assert await cluster_job_state(cluster, new) == "CANCELED"
    log = await api.full_log(batch["id"])
    assert any(f"Flink job {old} stopped with a savepoint at {savepoint}" in line for line in log)
    assert any(f"resumed as Flink job {new}" in line for line in log)
    resume_command = next(line for line in log if "resuming from savepoint" in line)
    assert f" run -s {savepoint} -t remote -d " in resume_command


@pytest.mark.slow
async def test_paused_batch_survives_gateway_restart(
    start_gateway: StartGateway, jobs: dict[str, Path], cluster: FlinkCluster,
) -> None:
    settings = {"admin": ["admin"], "instance_id": "gw-flink-pause"}
    first = await start_gateway(**settings)
    batch = await first.submit("PYFLINK", str(jobs["endless"]), conf={
        "rest.address": "127.0.0.1", "rest.port": str(cluster.rest_port)})
    old = (await wait_app_running(first, batch["id"]))["appId"]
    paused = await pause(first, batch["id"])
    assert paused["state"] == "PAUSED"
    await first.client.close()

    second = await start_gateway(**settings)
    await wait_until(lambda: _logged(second, batch["id"], "re-attached by gw-flink-pause"), "re-attached", 30)
    await asyncio.sleep(1.0)
    current = await second.get(batch["id"])
    assert current["state"] == "PAUSED" and current["batchInfo"]["savepoint"] == paused["batchInfo"]["savepoint"]

    resumed = await resume(second, batch["id"])
    assert resumed["state"] == "RUNNING", resumed
    new = resumed["appId"]
    assert new != old and info(resumed, "appIds") == [old, new]
    await wait_cluster_state(cluster, new, "RUNNING")
    await wait_app_running(second, batch["id"], 30)

    # Paused again, and killed while paused: nothing runs, the savepoint stays.
    again = await pause(second, batch["id"])
    assert again["state"] == "PAUSED" and again["batchInfo"]["savepoint"] != paused["batchInfo"]["savepoint"]
    assert await cluster_job_state(cluster, new) == "FINISHED"
    await second.kill(batch["id"])
    final = await second.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and "while paused" in final["appDiagnostic"], final
    assert local_path(again["batchInfo"]["savepoint"]).is_dir()


async def _logged(api: Api, batch_id: str, text: str) -> bool:
    return any(text in line for line in await api.full_log(batch_id))


# --- real Flink: the local target ---------------------------------------------------------------------


@pytest.mark.slow
async def test_pausing_a_local_target_batch_is_refused(api: Api, jobs: dict[str, Path]) -> None:
    batch = await api.submit("PYFLINK", str(jobs["endless"]))
    await api.wait_for(batch["id"], ("RUNNING",), timeout=SLOW)
    status, payload = await api.status_of("POST", f"/api/v1/batches/{batch['id']}/pause")
    assert status == 409, payload
    assert "local mini cluster cannot take a savepoint" in payload["message"]
    assert "session cluster" in payload["message"]
    assert (await api.get(batch["id"]))["state"] == "RUNNING"
    await api.kill(batch["id"])
    assert (await api.wait_for(batch["id"], timeout=30))["state"] == "CANCELED"


@pytest.mark.slow
async def test_details_of_finished_word_counts(api: Api, jobs: dict[str, Path], cluster: FlinkCluster) -> None:
    """Vertices with records in and out, readable after the job (and, locally, its mini cluster) ended."""
    local, remote = await asyncio.gather(
        api.submit("PYFLINK", str(jobs["word_count"]), name="wc local"),
        api.submit("PYFLINK", str(jobs["word_count"]), name="wc remote",
                   conf={"batchgate.flink.jobmanager": cluster.address}),
    )
    for batch in (local, remote):
        final = await api.wait_for(batch["id"], timeout=SLOW)
        assert final["state"] == "FINISHED", final
        details = await api.call("GET", f"/api/v1/batches/{batch['id']}/details")
        kinds = [s["kind"] for s in details["steps"]]
        assert kinds[:3] == ["lifecycle"] * 3 and "engine" in kinds, details["steps"]
        engine = [s for s in details["steps"] if s["kind"] == "engine"]
        for step in engine:
            assert {"name", "start", "end", "duration", "state", "parallelism", "recordsIn", "recordsOut",
                    "bytesIn", "bytesOut"} <= step.keys(), step
            assert step["jobId"] == final["appId"]
        counters = details["counters"]
        assert counters["recordsIn"] == sum(s["recordsIn"] for s in engine)
        assert counters["recordsOut"] == sum(s["recordsOut"] for s in engine)
        assert counters["vertices"] == len(engine)
        if batch is remote:  # read from the finished job: final figures
            assert all(s["state"] == "FINISHED" and s["end"] for s in engine), engine
            assert counters["recordsIn"] > 0 and counters["recordsOut"] > 0, counters
            assert any(s["recordsIn"] > 0 or s["recordsOut"] > 0 for s in engine), engine
        # Locally the figures are the last the mini cluster's metric fetcher published before it went
        # away; on a loaded machine that can be before any record was counted, so only the vertices
        # themselves are certain there (docs/engines/flink.md says so).


# --- a fake launcher and a fake REST API: the failure modes -----------------------------------------------


class SavepointFlinkRest(FakeFlinkRest):
    """The fake REST API, with stop-with-savepoint and vertices."""

    def __init__(self) -> None:
        super().__init__()
        self.savepoint_failure: str | None = None
        self.savepoint_seconds = 0.3
        self.stops: list[tuple[str, dict[str, Any]]] = []
        self.vertices: dict[str, list[dict[str, Any]]] = {}
        self._requests: dict[str, tuple[str, str, float]] = {}

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/overview", self._overview)
        app.router.add_get("/jobs/{jid}", self._job_with_vertices)
        app.router.add_get("/jobs/{jid}/exceptions", self._exceptions)
        app.router.add_patch("/jobs/{jid}", self._cancel)
        app.router.add_post("/jobs/{jid}/stop", self._stop)
        app.router.add_get("/jobs/{jid}/savepoints/{rid}", self._savepoint)
        app.router.add_delete("/cluster", self._shutdown)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _job_with_vertices(self, request: web.Request) -> web.Response:
        job = self._get(request)
        self.job_polls.append((time.monotonic(), job.jid))
        return web.json_response({**job.body(), "vertices": self.vertices.get(job.jid, [])})

    async def _stop(self, request: web.Request) -> web.Response:
        job = self._get(request)
        body = await request.json()
        self.stops.append((job.jid, body))
        request_id = uuid.uuid4().hex
        self._requests[request_id] = (job.jid, body["targetDirectory"], time.monotonic() + self.savepoint_seconds)
        return web.json_response({"request-id": request_id}, status=202)

    async def _savepoint(self, request: web.Request) -> web.Response:
        job = self._get(request)
        known = self._requests.get(request.match_info["rid"])
        if known is None:
            return web.json_response({"errors": ["Operation not found"]}, status=404)
        _jid, directory, done_at = known
        if time.monotonic() < done_at:
            return web.json_response({"status": {"id": "IN_PROGRESS"}, "operation": None})
        if self.savepoint_failure:
            cause = {"class": "java.util.concurrent.CompletionException",
                     "stack-trace": "java.util.concurrent.CompletionException: wrapped\n\tat x.y(Z.java:1)\n"
                                    f"Caused by: {self.savepoint_failure}\n\tat a.b(C.java:2)\n"}
            return web.json_response({"status": {"id": "COMPLETED"}, "operation": {"failure-cause": cause}})
        if job.state == "RUNNING":
            asyncio.get_running_loop().call_later(0.3, job.set, "FINISHED")
        location = f"{directory.rstrip('/')}/savepoint-{job.jid[:6]}-{request.match_info['rid'][:12]}"
        return web.json_response({"status": {"id": "COMPLETED"}, "operation": {"location": location}})


@pytest.fixture
async def fake_rest() -> AsyncIterator[SavepointFlinkRest]:
    async with SavepointFlinkRest() as fake:
        yield fake


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    return fake_flink_home(tmp_path)


def vertex(name: str, records_in: int, records_out: int, status: str = "RUNNING") -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"id": uuid.uuid4().hex, "name": name, "parallelism": 2, "status": status, "start-time": now - 5000,
            "end-time": now if status == "FINISHED" else -1, "duration": 5000,
            "metrics": {"read-records": records_in, "write-records": records_out, "read-bytes": records_in * 10,
                        "write-bytes": records_out * 10, "read-records-complete": True}}


async def test_pause_resume_and_their_failures_against_a_fake_cluster(
    start_gateway: StartGateway, fake_rest: SavepointFlinkRest, fake_home: Path, tmp_path: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    first = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    fake_rest.vertices[first.jid] = [vertex("Source: numbers", 0, 120), vertex("Map -> Sink", 120, 0)]
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=first.jid)
    jar = tmp_path / "app.jar"
    jar.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    batch = await api.submit("FLINK", str(jar), class_name="bg.Job", args=["x"],
                             conf={"batchgate.flink.jobmanager": fake_rest.address})
    await wait_app_running(api, batch["id"], 30)

    # A savepoint that fails: 409 with Flink's reason, and the job keeps running.
    fake_rest.savepoint_failure = ("org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint "
                                   "triggering task Source: numbers is not being executed at the moment.")
    status, payload = await api.status_of("POST", f"/api/v1/batches/{batch['id']}/pause")
    assert status == 409 and "CheckpointException" in payload["message"], payload
    current = await api.get(batch["id"])
    assert current["state"] == "RUNNING" and first.state == "RUNNING"
    await asyncio.sleep(0.5)
    assert (await api.get(batch["id"]))["appState"] == "RUNNING", "the gateway follows the job again"

    fake_rest.savepoint_failure = None
    paused = await pause(api, batch["id"])
    assert paused["state"] == "PAUSED", paused
    workdir = workdir_of(tmp_path, batch["id"])
    target = fake_rest.stops[-1][1]
    assert target == {"targetDirectory": (workdir / "savepoints").as_uri(), "drain": False}
    savepoint = paused["batchInfo"]["savepoint"]
    assert savepoint.startswith(target["targetDirectory"] + "/savepoint-")
    assert first.state == "FINISHED"
    await asyncio.sleep(1.0)
    assert (await api.get(batch["id"]))["state"] == "PAUSED"
    again = await pause(api, batch["id"])
    assert again["state"] == "PAUSED" and again["batchInfo"]["savepoint"] == savepoint, "pausing twice is a no-op"
    assert len(fake_rest.stops) == 2

    # A resume whose launcher submits nothing: 409, and the batch stays paused at its savepoint.
    set_behaviour(fake_home, lines=["org.apache.flink.client.program.ProgramInvocationException: no savepoint"],
                  exit_code=1)
    status, payload = await api.status_of("POST", f"/api/v1/batches/{batch['id']}/resume")
    assert status == 409 and "submitted no job" in payload["message"], payload
    assert "ProgramInvocationException" in payload["message"]
    assert (await api.get(batch["id"]))["state"] == "PAUSED"

    second = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    fake_rest.vertices[second.jid] = [vertex("Source: numbers", 0, 30), vertex("Map -> Sink", 30, 0)]
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=second.jid)
    resumed = await resume(api, batch["id"])
    assert resumed["state"] == "RUNNING" and resumed["appId"] == second.jid, resumed
    assert info(resumed, "appIds") == [first.jid, second.jid]
    argv = recorded_argv(workdir)
    assert argv[:6] == ["run", "-s", savepoint, "-t", "remote", "-d"], argv
    assert argv[-4:] == ["-c", "bg.Job", str(jar), "x"]
    await wait_app_running(api, batch["id"], 30)

    second.set("FINISHED")
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "FINISHED" and final["appId"] == second.jid, final
    assert info(final, "flink")["appIds"] == [first.jid, second.jid]
    details = await api.call("GET", f"/api/v1/batches/{batch['id']}/details")
    engine = [s for s in details["steps"] if s["kind"] == "engine"]
    assert [(s["jobId"], s["name"]) for s in engine] == [
        (first.jid, "Source: numbers"), (first.jid, "Map -> Sink"),
        (second.jid, "Source: numbers"), (second.jid, "Map -> Sink")]
    assert details["counters"]["recordsOut"] == 150 and details["counters"]["recordsIn"] == 150
    assert details["counters"]["bytesIn"] == 1500 and details["counters"]["jobs"] == 2


async def test_a_pause_interrupted_by_a_gateway_restart_is_completed_after_it(
    start_gateway: StartGateway, fake_rest: SavepointFlinkRest, fake_home: Path, tmp_path: Path,
) -> None:
    settings = {"admin": ["admin"], "instance_id": "gw-flink-fake-pause", "flink_home": fake_home}
    first = await start_gateway(**settings)
    job = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=job.jid)
    script = tmp_path / "job.py"
    script.write_text("print('never run by the fake')\n")
    batch = await first.submit("PYFLINK", str(script), conf={"batchgate.flink.jobmanager": fake_rest.address})
    await wait_app_running(first, batch["id"], 30)
    fake_rest.savepoint_seconds = 4.0
    request = asyncio.create_task(first.status_of("POST", f"/api/v1/batches/{batch['id']}/pause"))
    await wait_until(lambda: _logged(first, batch["id"], "with a savepoint in"), "the savepoint asked for", 15)
    await first.client.close()  # the savepoint is under way; the pause request stays on the batch
    with contextlib.suppress(Exception):
        await request

    second = await start_gateway(**settings)
    paused = await second.wait_for(batch["id"], ("PAUSED",), timeout=20)
    assert len(fake_rest.stops) == 1, "the savepoint asked for before the restart is the one followed"
    assert job.state == "FINISHED" and paused["appId"] == job.jid
    assert "/savepoints/savepoint-" in paused["batchInfo"]["savepoint"]
    await second.kill(batch["id"])
    final = await second.wait_for(batch["id"], timeout=15)
    assert final["state"] == "CANCELED" and "while paused" in final["appDiagnostic"], final
