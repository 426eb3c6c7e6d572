"""FLINK and PYFLINK on a real YARN cluster (tests/yarn_cluster.py), through the live gateway: the
yarn-application target (one Flink application cluster per batch) and a Flink session on YARN
(yarn-session), with the apache-flink package's distribution and Hadoop's shaded client.

The launcher finds Hadoop as an operator's would: HADOOP_CONF_DIR and HADOOP_CLASSPATH in the gateway's
environment. Several batches run at once where a test only waits, so that the matrix fits its time."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.base import AppInfo, Exited, Handle, LaunchSpec
from engines.flink import FlinkEngine
from engines.flink_state import FlinkHandle
from engines.process import ProcessSupervisor
from tests.flink_cluster import FLINK_APP_CLASS, HOME, build_flink_jar
from tests.helpers import Api, info
from tests.spark_cluster import reap_batch_processes
from tests.yarn_cluster import YarnCluster

pytestmark = pytest.mark.slow

FLINK_TIMEOUT = 240.0
# Small Flink processes: a JobManager of 768 MB and TaskManagers of 1 GB (containers of 896 and 1024 MB).
SMALL = {"jobmanager.memory.process.size": "768m", "taskmanager.memory.process.size": "1024m",
         "taskmanager.numberOfTaskSlots": "1"}
APPLICATION = {"execution.target": "yarn-application", **SMALL}


def hadoop_env(cluster: YarnCluster) -> dict[str, str]:
    return {"HADOOP_CONF_DIR": str(cluster.conf_dir), "HADOOP_CLASSPATH": ":".join(cluster.hadoop_client_jars)}


@pytest.fixture(scope="module")
def flink_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flink_jar(tmp_path_factory.mktemp("flink-yarn-jar"))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, yarn_cluster: YarnCluster) -> None:
    """The gateway's environment, where `flink run` and the gateway find Hadoop and the ResourceManager."""
    for key, value in hadoop_env(yarn_cluster).items():
        monkeypatch.setenv(key, value)


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, yarn_cluster: YarnCluster) -> Iterator[None]:
    yield
    reap_batch_processes(tmp_path / "data")


@pytest.fixture(scope="module")
def flink_session(yarn_cluster: YarnCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Flink session cluster on YARN (`yarn-session.sh -d`), stopped through the RM at the end."""
    assert HOME is not None
    root = tmp_path_factory.mktemp("flink-yarn-session")
    env = {**os.environ, **hadoop_env(yarn_cluster), "FLINK_LOG_DIR": str(root / "log"), "TMPDIR": str(root)}
    options = [f"-D{k}={v}" for k, v in {**SMALL, "taskmanager.numberOfTaskSlots": "2",
                                         "yarn.application.name": "batchgate-test-session"}.items()]
    out = subprocess.run([str(HOME / "bin" / "yarn-session.sh"), "-d", *options], env=env, cwd=root,
                         capture_output=True, text=True, timeout=FLINK_TIMEOUT)
    found = re.findall(r"application_\d+_\d+", out.stdout + out.stderr)
    assert out.returncode == 0 and found, f"yarn-session.sh failed ({out.returncode}):\n{out.stdout[-3000:]}\n" \
                                          f"{out.stderr[-3000:]}"
    app_id = found[-1]
    try:
        assert yarn_cluster.app(app_id)["state"] == "RUNNING"
        yield app_id
    finally:
        yarn_cluster.kill_app(app_id)


@pytest.fixture
async def api(start_gateway: Callable[..., Awaitable[Api]]) -> Api:
    return await start_gateway(admin=["admin"], kill_grace_seconds=5.0)


async def test_yarn_application_batches_finish_fail_and_are_killed_through_the_resource_manager(
    api: Api, yarn_cluster: YarnCluster, flink_jar: Path, tmp_path: Path
) -> None:
    """Three application clusters at once: a job that finishes, one that fails, and one killed through
    the RM (after another FlinkEngine has found it again by its tag, as a restarted gateway would)."""
    batches = {mode: await api.submit("FLINK", str(flink_jar), class_name=FLINK_APP_CLASS, args=[mode],
                                      name=f"flink-{mode}", conf=APPLICATION)
               for mode in ("count", "fail", "sleep")}
    sleep = batches["sleep"]["id"]
    running = await _wait(api, sleep, lambda b: b["appState"] == "RUNNING")
    [app] = yarn_cluster.apps_tagged(f"batchgate-{sleep}")
    assert running["appId"] == app["id"] and running["appUrl"] == app["trackingUrl"], (running, app)
    assert app["applicationType"] == "Apache Flink" and app["name"] == "flink-sleep"

    # A gateway that lost everything but the batch: the RM finds the application by its tag, and the
    # JobManager by the address its AM registered.
    found = await _recovered_on_yarn(yarn_cluster, sleep, tmp_path)
    assert found == (app["id"], f"http://{app['amRPCAddress']}")

    assert (await api.kill(sleep))["success"] is True
    finals = {mode: await api.wait_for(b["id"], timeout=FLINK_TIMEOUT) for mode, b in batches.items()}

    killed = finals["sleep"]
    assert killed["state"] == "CANCELED" and killed["appState"] == "KILLED", killed
    assert yarn_cluster.app(app["id"])["state"] == "KILLED"
    assert any(f"kill of {app['id']} sent to the ResourceManager" in line for line in await api.full_log(sleep))

    done = finals["count"]
    assert done["state"] == "FINISHED" and done["appState"] == "FINISHED", done
    [app] = yarn_cluster.apps_tagged(f"batchgate-{done['id']}")
    assert done["appId"] == app["id"] and done["appUrl"] == app["trackingUrl"], (done, app)
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED"), app
    assert info(done, "flink")["jobIds"] == [uuid.UUID(done["id"]).hex]
    log = await api.full_log(done["id"])
    # main() runs in the JobManager: its output is in the AM container's log, copied at the end.
    assert any(re.search(r"application master log container_\w+/jobmanager\.out", line) for line in log), log
    assert any("batchgate flink main done" in line for line in log), log

    failed = finals["fail"]
    assert failed["state"] == "ERROR" and failed["appState"] == "FAILED", failed
    assert "batchgate flink failure requested" in failed["appDiagnostic"], failed
    assert yarn_cluster.app(failed["appId"])["state"] in ("FINISHED", "FAILED")


async def test_batches_on_a_flink_session_on_yarn(
    api: Api, yarn_cluster: YarnCluster, flink_jar: Path, flink_session: str
) -> None:
    """yarn-session: the gateway asks the RM where the session's JobManager is; a batch is one job in
    it (appId the JobID) and a kill cancels that job, never the session."""
    assert HOME is not None
    session = {"execution.target": "yarn-session", "yarn.application.id": flink_session}
    word_count = await api.submit("PYFLINK", str(HOME / "examples" / "datastream" / "word_count.py"),
                                  name="session-words", conf=session)
    sleeper = await api.submit("FLINK", str(flink_jar), class_name=FLINK_APP_CLASS, args=["sleep"], conf=session)
    rest = f"http://{yarn_cluster.app(flink_session)['amRPCAddress']}"
    running = await _wait(api, sleeper["id"], lambda b: b["appState"] == "RUNNING")
    assert re.fullmatch(r"[0-9a-f]{32}", running["appId"]) and running["appUrl"].startswith(rest), running
    assert (await api.kill(sleeper["id"]))["success"] is True
    final = await api.wait_for(sleeper["id"], timeout=FLINK_TIMEOUT)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    final = await api.wait_for(word_count["id"], timeout=FLINK_TIMEOUT)
    assert final["state"] == "FINISHED", (final, (await api.full_log(word_count["id"]))[-40:])
    assert info(final, "flink")["restUrl"] == rest
    assert yarn_cluster.app(flink_session)["state"] == "RUNNING", "the session outlives its batches"


async def test_a_session_that_is_not_running_is_an_error(api: Api, flink_jar: Path) -> None:
    batch = await api.submit("FLINK", str(flink_jar), class_name=FLINK_APP_CLASS, conf={
        "execution.target": "yarn-session", "yarn.application.id": "application_1_0001"})
    final = await api.wait_for(batch["id"], timeout=60)
    assert final["state"] == "ERROR" and "application_1_0001" in final["appDiagnostic"], final
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "FLINK", "resource": str(flink_jar), "conf": {"execution.target": "yarn-session"}})
    assert status == 400 and "yarn.application.id" in body["message"], body


# --- helpers ------------------------------------------------------------------------------------


async def _wait(api: Api, batch_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + FLINK_TIMEOUT
    while True:
        batch: dict[str, Any] = await api.get(batch_id)
        if check(batch):
            return batch
        assert batch["state"] not in ("FINISHED", "ERROR", "CANCELED"), batch
        assert time.monotonic() < deadline, f"timed out: {batch}"
        await asyncio.sleep(0.25)


async def _recovered_on_yarn(cluster: YarnCluster, batch_id: str, tmp_path: Path) -> tuple[str, str]:
    """What a FlinkEngine that knows only the batch id and target finds on YARN: (appId, REST address)."""
    engine = FlinkEngine(ProcessSupervisor(), yarn_rm_urls=(cluster.rm_url,))
    spec = LaunchSpec(batch_id=batch_id, batch_type="FLINK", user="admin", real_user="admin", name=None,
                      resource="x.jar", class_name=None, conf=APPLICATION, args=[], workdir=tmp_path / "elsewhere")
    job = uuid.UUID(batch_id).hex
    stored = {"flink": {"target": "yarn-application", "cli_done": True, "job_ids": [job], "app_ids": [job],
                        "submitted": time.time()}}
    run = await engine.recover(spec, Handle.parse(stored), 0)
    assert run is not None
    events: AsyncIterator[Any] = run.events()
    app_id: str | None = None
    try:
        async with asyncio.timeout(60):
            async for event in events:
                assert not isinstance(event, Exited), event
                if isinstance(event, AppInfo) and event.app_id:
                    app_id = event.app_id
                handle = event.handle if isinstance(event, AppInfo) else None
                if isinstance(handle, FlinkHandle) and handle.flink is not None and handle.flink.rest_url:
                    return str(app_id), handle.flink.rest_url
    finally:
        await run.detach()
        await events.aclose()  # type: ignore[attr-defined]
    raise AssertionError("the application was not found on YARN")
