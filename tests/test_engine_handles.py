"""Engine handles and batchInfo facts keep the JSON shape earlier releases stored (docs/engines/plugins.md,
"Handles and facts"): instances of two releases share the database during a rolling upgrade, and a batch
launched by the older one is recovered by the newer one from the handle the older one wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engines.base import Exited, Handle, LaunchSpec, LogLines, Step
from engines.flink_state import FlinkHandle, FlinkPaused, FlinkResumed, Phase
from engines.local import LocalEngine, LocalPaused
from engines.process import ProcessSupervisor
from engines.process_handle import ProcessHandle
from engines.spark_state import SparkHandle

# Handles as the release before typed handles stored them (copied from rows it wrote), with a key no
# release knows (a newer one's), which must pass through.
SPARK_STORED: dict[str, Any] = {
    "runner_pid": 4242, "child_pid": 4243, "runner_start": 987654, "workdir": "/data/batches/b1",
    "spark": {"batchId": "b1", "master": "yarn", "deployMode": "cluster", "launcherWaits": False,
              "restSubmission": False, "appId": "application_1700000000000_0007", "appState": "RUNNING",
              "uiUrl": "http://rm:8088/proxy/application_1700000000000_0007/", "futureFact": {"x": 1}},
}
SPARK_JVM_STORED: dict[str, Any] = {  # submitted by the long-lived launcher: no process
    "workdir": "/data/batches/b2",
    "spark": {"batchId": "b2", "master": "yarn", "deployMode": "cluster", "launcherWaits": False,
              "appId": "application_1700000000000_0008", "launcher": "jvm"},
}
FLINK_PAUSED_STORED: dict[str, Any] = {
    "runner_pid": 5151, "child_pid": 5152, "runner_start": None, "workdir": "/data/batches/f1",
    "flink": {"target": "remote", "rest_url": "http://jm:8081", "cli_done": True, "submitted": 1700000000.25,
              "job_ids": ["a" * 32], "app_ids": ["a" * 32], "paused": True, "resuming": False,
              "argv": ["flink", "run", "-t", "remote", "app.jar"], "savepoint": "file:/savepoints/sp-1",
              "paused_job": "a" * 32},
    "future": "kept",
}
FLINK_LAUNCHING_STORED: dict[str, Any] = {
    "runner_pid": 6161, "child_pid": 6162, "runner_start": 123, "workdir": "/data/batches/f2",
    "flink": {"target": "local", "rest_url": None, "cli_done": False, "submitted": 1700000001.0,
              "job_ids": [], "app_ids": [], "paused": False, "resuming": False},
}


@pytest.mark.parametrize(("model", "stored"), [
    (SparkHandle, SPARK_STORED), (SparkHandle, SPARK_JVM_STORED), (FlinkHandle, FLINK_PAUSED_STORED),
    (FlinkHandle, FLINK_LAUNCHING_STORED), (ProcessHandle, {"workdir": "/w", "runner_pid": 1, "child_pid": 2}),
    (Handle, {"workdir": "/w"}),
])
def test_a_stored_handle_parses_and_is_stored_again_unchanged(model: type[Handle], stored: dict[str, Any]) -> None:
    from_db = json.loads(json.dumps(stored))  # jsonb: what the gateway reads back
    handle = model.parse(Handle.parse(from_db))  # as recover() gets it, parsed by the engine that owns it
    assert handle.stored() == stored
    assert json.loads(json.dumps(handle.stored())) == stored


def test_stored_handles_are_read_as_the_previous_release_meant_them() -> None:
    spark = SparkHandle.parse(Handle.parse(SPARK_STORED))
    assert spark.runner_pid == 4242 and spark.spark is not None and spark.spark.cluster
    assert spark.spark.app_id == "application_1700000000000_0007" and not spark.spark.launcher_waits
    assert spark.process().stored() == {k: v for k, v in SPARK_STORED.items() if k != "spark"}
    paused = FlinkHandle.parse(Handle.parse(FLINK_PAUSED_STORED))
    assert paused.flink is not None and paused.flink.phase is Phase.PAUSED
    assert paused.flink.savepoint == "file:/savepoints/sp-1" and paused.runner_start is None
    assert paused.process().stored() == {"runner_pid": 5151, "child_pid": 5152, "runner_start": None,
                                         "workdir": "/data/batches/f1", "future": "kept"}
    launching = FlinkHandle.parse(Handle.parse(FLINK_LAUNCHING_STORED))
    assert launching.flink is not None and launching.flink.phase is Phase.LAUNCHING
    # Claimed and launching, but the launch was not noted yet: the intent only.
    intent = FlinkHandle.parse(Handle.parse({"workdir": "/data/batches/f3"}))
    assert intent.flink is None and not intent.launched and launching.launched


def test_batch_info_facts_keep_their_keys() -> None:
    assert LocalPaused(paused_by="SIGSTOP").stored() == {"pausedBy": "SIGSTOP"}
    assert FlinkPaused(savepoint="file:/sp").stored() == {"savepoint": "file:/sp"}
    assert FlinkResumed(app_ids=["a", "b"]).stored() == {"appIds": ["a", "b"]}
    step = {"name": "job 0: count", "kind": "engine", "type": "job", "jobId": 0, "start": 1, "end": None,
            "duration": 5, "state": "RUNNING", "stageIds": [0, 1]}
    assert Step.parse(step).stored() == step


async def test_a_local_batch_launched_by_the_previous_release_is_recovered(tmp_path: Path, python: str) -> None:
    supervisor = ProcessSupervisor()
    await supervisor.start()
    try:
        workdir = tmp_path / "batch"
        started = await supervisor.launch(
            [python, "-c", "import time; time.sleep(1.5); print('done', flush=True)"], workdir, {})
        ticks = int(Path(f"/proc/{started.runner_pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        # The row as the previous release wrote it (a dict of its own making, not today's model).
        stored = {"runner_pid": started.runner_pid, "child_pid": started.child_pid, "runner_start": ticks,
                  "workdir": str(workdir)}
        started.detach()
        engine = LocalEngine(supervisor, kill_grace=1.0)
        spec = LaunchSpec(batch_id="b", batch_type="LOCAL", user="u", real_user="u", name=None, resource=python,
                          class_name=None, conf={}, args=[], workdir=workdir)
        run = await engine.recover(spec, Handle.parse(json.loads(json.dumps(stored))), 0)
        assert run is not None and run.handle.stored() == stored
        events = [event async for event in run.events()]
        assert any(isinstance(e, LogLines) and "done" in e.lines for e in events)
        end = events[-1]
        assert isinstance(end, Exited) and end.app_state == "FINISHED", end
        facts = end.info.stored()
        assert facts["local"]["exit_code"] == 0 and facts["local"]["max_rss_kb"] > 0
    finally:
        await supervisor.close()
