"""Spark details (jobs and stages with task counts, records and bytes) and pause refusal.

Fast: the driver's REST answers and event logs become the same steps and counters, and the UI reader
follows a proxy path (as YARN's ResourceManager serves it). Slow: real spark-submit on local[2] through
the live gateway: pi.py's details read after its driver is gone, a live snapshot of a running driver,
and pausing a running (409) and a queued (PAUSED) PYSPARK batch."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engines.process_handle import ProcessHandle
from engines.spark import PAUSE_REFUSAL
from engines.spark_context import RunContext, SparkTimings
from engines.spark_details import MAX_JOB_STEPS, MAX_STAGE_STEPS, SparkUi, snapshot_from_rest
from engines.spark_eventlog import EventLogParser, read_event_log
from engines.spark_state import LauncherState, SparkFacts
from tests.helpers import Api
from tests.spark_cluster import pi_py, reap_batch_processes

SPARK_TIMEOUT = 120.0
LOCAL = {"spark.master": "local[2]", "spark.driver.memory": "512m"}

SLEEPING_SCRIPT = """\
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("details-sleeper").getOrCreate()
rdd = spark.sparkContext.parallelize(range(1000), 3).map(lambda x: (x % 5, 1))
print("groups", rdd.reduceByKey(lambda a, b: a + b).count(), flush=True)
print("sleeping now", flush=True)
time.sleep(600)
"""

# What a Spark 4 driver's REST API answers (trimmed): a finished job with two stages, a running one.
REST_JOBS = [
    {"jobId": 1, "name": "collect at job.py:9", "submissionTime": "2026-01-01T10:00:10.000GMT",
     "stageIds": [2], "status": "RUNNING", "numTasks": 4, "numActiveTasks": 1, "numCompletedTasks": 3,
     "numSkippedTasks": 0, "numFailedTasks": 1},
    {"jobId": 0, "name": "count at job.py:5", "submissionTime": "2026-01-01T10:00:00.000GMT",
     "completionTime": "2026-01-01T10:00:06.500GMT", "stageIds": [0, 1], "status": "SUCCEEDED", "numTasks": 8,
     "numCompletedTasks": 8, "numSkippedTasks": 0, "numFailedTasks": 0},
]
REST_STAGES = [
    {"status": "ACTIVE", "stageId": 2, "attemptId": 0, "numTasks": 4, "numCompleteTasks": 3, "numFailedTasks": 1,
     "submissionTime": "2026-01-01T10:00:10.100GMT", "name": "collect at job.py:9", "inputRecords": 30,
     "inputBytes": 3000, "details": "a long call site\n" * 50},
    {"status": "COMPLETE", "stageId": 1, "attemptId": 0, "numTasks": 4, "numCompleteTasks": 4, "numFailedTasks": 0,
     "submissionTime": "2026-01-01T10:00:05.000GMT", "completionTime": "2026-01-01T10:00:06.400GMT",
     "name": "count at job.py:5", "shuffleReadRecords": 16, "shuffleReadBytes": 1236, "outputRecords": 5,
     "outputBytes": 500},
    {"status": "COMPLETE", "stageId": 0, "attemptId": 0, "numTasks": 4, "numCompleteTasks": 4, "numFailedTasks": 0,
     "submissionTime": "2026-01-01T10:00:00.100GMT", "completionTime": "2026-01-01T10:00:04.900GMT",
     "name": "reduceByKey at job.py:5", "inputRecords": 1000, "inputBytes": 8000, "shuffleWriteRecords": 16,
     "shuffleWriteBytes": 1236},
]


def _steps(snapshot_steps: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [s for s in snapshot_steps if s.get("type") == kind]


def test_rest_answers_become_job_and_stage_steps() -> None:
    now = 1_767_261_615_000  # 2026-01-01T10:00:15Z
    snap = snapshot_from_rest(REST_JOBS, REST_STAGES, now)
    # Jobs by id, each followed by its stages.
    assert [s["name"] for s in snap.steps] == [
        "job 0: count at job.py:5", "stage 0.0: reduceByKey at job.py:5", "stage 1.0: count at job.py:5",
        "job 1: collect at job.py:9", "stage 2.0: collect at job.py:9",
    ]
    job0, job1 = _steps(snap.steps, "job")
    assert job0 == {
        "name": "job 0: count at job.py:5", "kind": "engine", "type": "job", "jobId": 0,
        "start": 1_767_261_600_000, "end": 1_767_261_606_500, "duration": 6500, "state": "SUCCEEDED",
        "numTasks": 8, "numCompletedTasks": 8, "numFailedTasks": 0, "numSkippedTasks": 0, "stageIds": [0, 1],
    }
    assert job1["end"] is None and job1["duration"] == 5000 and job1["state"] == "RUNNING"
    stage0 = _steps(snap.steps, "stage")[0]
    assert stage0["numTasks"] == 4 and stage0["numCompleteTasks"] == 4 and stage0["state"] == "COMPLETE"
    assert stage0["inputRecords"] == 1000 and stage0["shuffleWriteRecords"] == 16 and stage0["duration"] == 4800
    assert "details" not in stage0, "the call site stack is not copied into the database"
    assert snap.counters == {
        "jobs": 2, "stages": 3, "tasks": 12, "completedTasks": 11, "failedTasks": 1,
        "inputRecords": 1030, "outputRecords": 5, "inputBytes": 11000, "outputBytes": 500,
        "shuffleReadRecords": 16, "shuffleReadBytes": 1236, "shuffleWriteRecords": 16, "shuffleWriteBytes": 1236,
    }
    assert snap.active


def _event(name: str, **fields: Any) -> str:
    return json.dumps({"Event": name, **fields}, separators=(",", ":"))


def _stage_info(stage_id: int, name: str, tasks: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Stage ID": stage_id, "Stage Attempt ID": 0, "Stage Name": name, "Number of Tasks": tasks, **(extra or {})}


def _task_end(stage_id: int, reason: str = "Success", attempt: int = 0) -> str:
    return _event("SparkListenerTaskEnd", **{"Stage ID": stage_id, "Stage Attempt ID": attempt,
                                             "Task Type": "ResultTask", "Task End Reason": {"Reason": reason},
                                             "Task Info": {"Accumulables": [{"Name": "x", "Value": 1}] * 50}})


EVENT_LOG = [
    _event("SparkListenerLogStart", **{"Spark Version": "4.3.0"}),
    _event("SparkListenerJobStart", **{"Job ID": 0, "Submission Time": 1000, "Stage Infos": [
        _stage_info(0, "map at job.py:3", 2), _stage_info(1, "count at job.py:3", 2)], "Stage IDs": [0, 1]}),
    _event("SparkListenerStageSubmitted", **{"Stage Info": _stage_info(0, "map at job.py:3", 2, {
        "Submission Time": 1010})}),
    _task_end(0), _task_end(0, "ExceptionFailure"), _task_end(0),
    _event("SparkListenerStageCompleted", **{"Stage Info": _stage_info(0, "map at job.py:3", 2, {
        "Submission Time": 1010, "Completion Time": 2000, "Accumulables": [
            {"ID": 1, "Name": "internal.metrics.input.recordsRead", "Update": 5, "Value": 100},
            {"ID": 2, "Name": "internal.metrics.input.bytesRead", "Value": 4096},
            {"ID": 3, "Name": "internal.metrics.shuffle.write.recordsWritten", "Value": 10},
            {"ID": 4, "Name": "internal.metrics.shuffle.write.bytesWritten", "Value": 640},
            {"ID": 5, "Name": "internal.metrics.executorRunTime", "Value": 999}]})}),
    _event("SparkListenerStageSubmitted", **{"Stage Info": _stage_info(1, "count at job.py:3", 2, {
        "Submission Time": 2010})}),
    _task_end(1), _task_end(1),
    _event("SparkListenerStageCompleted", **{"Stage Info": _stage_info(1, "count at job.py:3", 2, {
        "Submission Time": 2010, "Completion Time": 2500, "Accumulables": [
            {"Name": "internal.metrics.shuffle.read.recordsRead", "Value": 10},
            {"Name": "internal.metrics.shuffle.read.remoteBytesRead", "Value": 40},
            {"Name": "internal.metrics.shuffle.read.localBytesRead", "Value": 600},
            {"Name": "internal.metrics.output.recordsWritten", "Value": 3},
            {"Name": "internal.metrics.output.bytesWritten", "Value": 77}]})}),
    _event("SparkListenerJobEnd", **{"Job ID": 0, "Completion Time": 2600, "Job Result": {"Result": "JobSucceeded"}}),
    # A second job reuses stage 0's output: stage 2 is skipped, stage 3 runs and fails.
    _event("SparkListenerJobStart", **{"Job ID": 1, "Submission Time": 3000, "Stage Infos": [
        _stage_info(2, "map at job.py:3", 2), _stage_info(3, "collect at job.py:7", 1)]}),
    _event("SparkListenerStageSubmitted", **{"Stage Info": _stage_info(3, "collect at job.py:7", 1, {
        "Submission Time": 3010})}),
    _task_end(3, "ExceptionFailure"),
    _event("SparkListenerStageCompleted", **{"Stage Info": _stage_info(3, "collect at job.py:7", 1, {
        "Submission Time": 3010, "Completion Time": 3300, "Failure Reason": "Job aborted"})}),
    _event("SparkListenerJobEnd", **{"Job ID": 1, "Completion Time": 3400,
                                     "Job Result": {"Result": "JobFailed", "Exception": {"Message": "boom"}}}),
    '{"Event":"SparkListenerApplicationEnd","Timest',  # torn by a driver that died mid-write
]


def test_event_log_is_read_into_the_same_steps(tmp_path: Path) -> None:
    app = "local-1767261600000"
    rolling = tmp_path / "eventlog" / f"eventlog_v2_{app}"
    rolling.mkdir(parents=True)
    (rolling / f"appstatus_{app}").write_text("")
    (rolling / f"events_2_{app}").write_text("\n".join(EVENT_LOG[9:]) + "\n")  # the second file of a rolled log
    (rolling / f"events_1_{app}").write_text("\n".join(EVENT_LOG[:9]) + "\n")
    snap = read_event_log(tmp_path / "eventlog", app)
    assert snap is not None
    assert [s["name"] for s in snap.steps] == [
        "job 0: count at job.py:3", "stage 0.0: map at job.py:3", "stage 1.0: count at job.py:3",
        "job 1: collect at job.py:7", "stage 2.0: map at job.py:3", "stage 3.0: collect at job.py:7",
    ]
    jobs, stages = _steps(snap.steps, "job"), {s["stageId"]: s for s in _steps(snap.steps, "stage")}
    assert jobs[0] == {
        "name": "job 0: count at job.py:3", "kind": "engine", "type": "job", "jobId": 0, "start": 1000,
        "end": 2600, "duration": 1600, "state": "SUCCEEDED", "numTasks": 4, "numCompletedTasks": 4,
        "numFailedTasks": 1, "numSkippedTasks": 0, "stageIds": [0, 1],
    }
    assert jobs[1]["state"] == "FAILED" and jobs[1]["numSkippedTasks"] == 2 and jobs[1]["numFailedTasks"] == 1
    assert stages[0]["state"] == "COMPLETE" and stages[0]["numCompleteTasks"] == 2 and stages[0]["numFailedTasks"] == 1
    assert stages[0]["inputRecords"] == 100 and stages[0]["inputBytes"] == 4096
    assert stages[1]["shuffleReadBytes"] == 640 and stages[1]["outputRecords"] == 3
    assert stages[2]["state"] == "SKIPPED" and stages[3]["state"] == "FAILED"
    assert snap.counters == {
        "jobs": 2, "stages": 4, "tasks": 5, "completedTasks": 4, "failedTasks": 2,
        "inputRecords": 100, "outputRecords": 3, "inputBytes": 4096, "outputBytes": 77,
        "shuffleReadRecords": 10, "shuffleReadBytes": 640, "shuffleWriteRecords": 10, "shuffleWriteBytes": 640,
    }
    assert not snap.active
    # A single-file log still being written, found without knowing the application id.
    single = tmp_path / "single"
    single.mkdir()
    (single / f"{app}.inprogress").write_text("\n".join(EVENT_LOG[:5]) + "\n")
    live = read_event_log(single, None)
    assert live is not None and live.active and _steps(live.steps, "job")[0]["state"] == "RUNNING"
    assert read_event_log(tmp_path / "nowhere", app) is None


def test_zstd_event_log_is_read_when_zstandard_is_installed(tmp_path: Path) -> None:
    try:
        zstandard: Any = importlib.import_module("zstandard")
    except ImportError:
        zstandard = None
    app = "local-1767261600001"
    data = ("\n".join(EVENT_LOG) + "\n").encode()
    target = tmp_path / f"eventlog_v2_{app}"
    target.mkdir()
    (target / f"events_1_{app}.zstd").write_bytes(zstandard.ZstdCompressor().compress(data) if zstandard else b"x")
    snap = read_event_log(tmp_path, app)
    if zstandard is None:
        assert snap is None, "an event log that cannot be read gives no details rather than wrong ones"
    else:
        assert snap is not None and snap.counters["jobs"] == 2 and snap.counters["tasks"] == 5


def test_parser_ignores_other_events_and_garbage() -> None:
    parser = EventLogParser()
    parser.feed(["", "not json", '{"Event":"SparkListenerJobStart",', _event("SparkListenerExecutorAdded")])
    assert parser.jobs == {} and parser.stages == {}


@pytest.fixture
async def fake_ui() -> AsyncIterator[tuple[str, list[str]]]:
    """A Spark UI behind a proxy prefix (/proxy/<app id>/), as the YARN ResourceManager serves a running
    driver's UI; it answers under any prefix, for the application named by the prefix."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        prefix, _, rest = request.path.partition("/api/v1/")
        app = prefix.rstrip("/").rsplit("/", 1)[-1]
        if rest == "applications":
            return web.json_response([{"id": app, "name": "etl"}])
        if rest == f"applications/{app}/jobs":
            return web.json_response(REST_JOBS)
        if rest == f"applications/{app}/stages":
            return web.json_response(REST_STAGES)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_ui_reader_learns_the_application_and_reads_through_a_proxy(
    fake_ui: tuple[str, list[str]],
) -> None:
    base, seen = fake_ui
    ui = SparkUi(f"{base}/proxy/application_1_0001/")
    async with aiohttp.ClientSession() as session:
        snap = await ui.snapshot(session)
        again = await ui.snapshot(session)
    assert ui.app_id == "application_1_0001"
    assert snap.counters["jobs"] == 2 and again.counters == snap.counters
    assert seen.count("/proxy/application_1_0001/api/v1/applications") == 1, "the id is asked once"
    assert "/proxy/application_1_0001/api/v1/applications/application_1_0001/stages" in seen


def test_very_many_jobs_keep_the_latest_steps_and_count_them_all() -> None:
    jobs = [{"jobId": i, "name": f"j{i}", "status": "SUCCEEDED", "numTasks": 1, "stageIds": [i]} for i in range(250)]
    stages = [{"stageId": i, "attemptId": 0, "status": "COMPLETE", "numTasks": 1, "numCompleteTasks": 1,
               "name": f"s{i}", "inputRecords": 2} for i in range(600)]
    snap = snapshot_from_rest(jobs, stages, 0)
    assert len(_steps(snap.steps, "job")) == MAX_JOB_STEPS and _steps(snap.steps, "job")[0]["jobId"] == 50
    assert len(_steps(snap.steps, "stage")) == MAX_STAGE_STEPS
    assert snap.counters["jobs"] == 250 and snap.counters["tasks"] == 600 and snap.counters["inputRecords"] == 1200
    assert snap.counters["stepsOmitted"] == 50 + 200


def test_running_is_reported_with_the_application_id() -> None:
    """The UI shows up a moment before the driver names its application: RUNNING waits for the id, and
    a change of state alone still carries the id (the supervisor logs batch.running with it)."""
    run = RunContext(SparkTimings(), process=None, base=ProcessHandle(), facts=SparkFacts(deploy_mode="client"), api=None)
    run.launcher = LauncherState.RUNNING  # as if its launcher were running
    run.parser.feed(["26/01/01 10:00:00 INFO JettyUtils: Start Jetty 0.0.0.0:4040 for SparkUI",
                      "26/01/01 10:00:00 INFO Utils: Successfully started service 'SparkUI' on port 4040.",
                      "26/01/01 10:00:00 INFO BlockManagerMaster: Registering BlockManager "
                      "BlockManagerId(driver, 10.1.2.3, 4, None)"])
    first = run.from_launcher()
    assert first is not None and first.app_url == "http://10.1.2.3:4040" and not first.running
    run.parser.feed(["26/01/01 10:00:01 INFO RollingEventLogFilesWriter: Logging events to "
                      "file:/w/eventlog/eventlog_v2_local-1767261600000/events_1_local-1767261600000"])
    second = run.from_launcher()
    assert second is not None and second.running and second.app_id == "local-1767261600000"
    cluster = RunContext(SparkTimings(), process=None, base=ProcessHandle(), api=None,
                         facts=SparkFacts.from_dict({"deployMode": "cluster", "appId": "application_1_0001"}))
    moved = cluster.report(app_id=None, state="RUNNING")
    assert moved is not None and moved.running and moved.app_id == "application_1_0001"


# --- real spark-submit on local[2] ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reap(tmp_path: Path) -> Iterator[None]:
    """Runs after the gateways are gone: nothing a batch started outlives its test."""
    yield
    reap_batch_processes(tmp_path / "data")


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = SPARK_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_details_of_a_pyspark_pi_run_outlive_its_driver(api: Api, tmp_path: Path) -> None:
    batch = await api.submit("PYSPARK", str(pi_py()), args=["3"], name="pi-details", conf=LOCAL)
    final = await api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    assert final["state"] == "FINISHED", (final, (await api.full_log(batch["id"]))[-30:])
    workdir = tmp_path / "data" / "batches" / batch["id"]
    driver = json.loads((workdir / "pids.json").read_text())["child"]
    # The driver (spark-submit's process group, with pyspark's Python workers) is gone before details are read.
    await wait_until(lambda: asyncio.to_thread(lambda: not _group_alive(driver)), "the driver to be gone", 20)

    details = await api.call("GET", f"/api/v1/batches/{batch['id']}/details")
    steps = details["steps"]
    assert [s["name"] for s in steps[:3]] == ["queued", "launching", "running"], steps
    jobs, stages = _steps(steps, "job"), _steps(steps, "stage")
    assert jobs and all(s["kind"] == "engine" for s in jobs + stages), steps
    job = jobs[0]
    assert job["name"].startswith("job 0: reduce at ") and job["state"] == "SUCCEEDED", job
    assert job["numTasks"] == 3 and job["numCompletedTasks"] == 3 and job["numFailedTasks"] == 0, job
    assert job["end"] >= job["start"] > 0 and job["duration"] == job["end"] - job["start"], job
    assert job["stageIds"] == [0]
    assert stages[0]["name"].startswith("stage 0.0: ") and stages[0]["state"] == "COMPLETE", stages
    assert stages[0]["numTasks"] == 3 and stages[0]["numCompleteTasks"] == 3, stages
    counters = details["counters"]
    assert counters["tasks"] == 3 and counters["completedTasks"] == 3 and counters["failedTasks"] == 0, counters
    assert counters["jobs"] == 1 and counters["stages"] == 1, counters
    for key in ("inputRecords", "outputRecords", "inputBytes", "outputBytes", "shuffleReadBytes", "shuffleWriteBytes"):
        assert isinstance(counters[key], int), (key, counters)
    # The snapshot is the one the event log in the batch's dir tells (plain JSON lines, read at the end).
    logs = [p for p in (workdir / "eventlog").rglob("events_*") if p.is_file()]
    assert logs and not any(p.suffix in (".zstd", ".lz4") for p in logs), logs
    assert read_event_log(workdir / "eventlog", final["appId"]) is not None


@pytest.mark.slow
async def test_a_running_pyspark_batch_has_live_details_and_refuses_to_pause(api: Api, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPING_SCRIPT)
    batch = await api.submit("PYSPARK", str(script), name="details-sleeper", conf=LOCAL)
    bid = batch["id"]

    async def job_done() -> dict[str, Any] | None:
        current = await api.get(bid)
        assert current["state"] in ("INITIALIZED", "PENDING", "RUNNING"), current
        details = await api.call("GET", f"/api/v1/batches/{bid}/details")
        jobs = [s for s in _steps(details["steps"], "job") if s["state"] == "SUCCEEDED"]
        return details if jobs else None

    # From the driver's UI while it runs: the event log is only read once the driver has ended.
    details = await wait_until(job_done, "a finished Spark job in the details of the running batch")
    running = await api.get(bid)
    assert running["state"] == "RUNNING" and running["appId"].startswith("local-"), running
    job = _steps(details["steps"], "job")[0]
    assert job["numTasks"] == 6 and job["numCompletedTasks"] == 6 and len(job["stageIds"]) == 2, job
    stages = _steps(details["steps"], "stage")
    assert [s["numTasks"] for s in stages] == [3, 3] and all(s["numCompleteTasks"] == 3 for s in stages), stages
    assert stages[0]["shuffleWriteRecords"] > 0 and stages[1]["shuffleReadRecords"] > 0, stages
    assert details["counters"]["tasks"] == 6 and details["counters"]["jobs"] == 1, details["counters"]

    status, body = await api.status_of("POST", f"/api/v1/batches/{bid}/pause")
    assert status == 409, body
    assert body["message"] == f"batch {bid} cannot be paused: {PAUSE_REFUSAL}", body
    assert (await api.get(bid))["state"] == "RUNNING"

    assert (await api.kill(bid))["success"] is True
    final = await api.wait_for(bid, timeout=30)
    assert final["state"] == "CANCELED", final
    after = await api.call("GET", f"/api/v1/batches/{bid}/details")
    assert after["counters"]["tasks"] == 6 and _steps(after["steps"], "job"), after


@pytest.mark.slow
async def test_a_queued_pyspark_batch_is_held_by_pause(
    start_gateway: Callable[..., Awaitable[Api]], python: str
) -> None:
    api = await start_gateway(max_running=1, admin=["admin"])
    blocker = await api.submit(resource=python, args=["-c", "import time; time.sleep(60)"])
    await api.wait_for(blocker["id"], ("RUNNING",))
    held = await api.submit("PYSPARK", str(pi_py()), args=["2"], conf=LOCAL)
    assert (await api.get(held["id"]))["state"] == "INITIALIZED"
    paused = await api.call("POST", f"/api/v1/batches/{held['id']}/pause")
    assert paused["state"] == "PAUSED", paused
    await asyncio.sleep(0.5)
    assert (await api.get(held["id"]))["state"] == "PAUSED"
    assert (await api.kill(held["id"]))["success"] is True
    assert (await api.get(held["id"]))["state"] == "CANCELED"
    await api.kill(blocker["id"])
    assert (await api.wait_for(blocker["id"], timeout=15))["state"] == "CANCELED"
