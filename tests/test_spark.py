"""SPARK and PYSPARK through the live gateway: real spark-submit on local[2] and on a real standalone
cluster (master + worker started by the fixture), plus validation and command-line building."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.base import InvalidRequest, LaunchSpec
from engines.spark_output import LauncherOutput
from engines.spark_state import AppIds, SparkFacts
from engines.spark_submit import SparkSubmit, SubmitConfig, parse_master
from gateway.settings import Settings
from tests.helpers import Api, info
from tests.spark_cluster import (
    TEST_APP_CLASS,
    StandaloneCluster,
    build_test_jar,
    free_port,
    pi_py,
    reap_batch_processes,
    spark_home,
    standalone_cluster,
)

SPARK_TIMEOUT = 150.0
SMALL = {"spark.driver.memory": "512m", "spark.executor.memory": "512m"}

FAILING_SCRIPT = """\
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("failing").getOrCreate()
print("counted", spark.sparkContext.parallelize(range(10), 2).count())
raise ValueError("batchgate test failure in the driver")
"""

SLEEPING_SCRIPT = """\
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("sleeper").getOrCreate()
print("counted", spark.sparkContext.parallelize(range(10), 2).count(), flush=True)
print("sleeping now", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spark-scripts")
    (root / "fail.py").write_text(FAILING_SCRIPT)
    (root / "sleep.py").write_text(SLEEPING_SCRIPT)
    return {"fail": root / "fail.py", "sleep": root / "sleep.py", "pi": pi_py()}


@pytest.fixture(scope="module")
def test_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_jar(tmp_path_factory.mktemp("spark-jar"))


@pytest.fixture(autouse=True)
def _reap(tmp_path: Path) -> Iterator[None]:
    """Runs after the gateways are gone: nothing a batch started outlives its test."""
    yield
    reap_batch_processes(tmp_path / "data")


def gateway_lines(log: list[str]) -> list[str]:
    return [line for line in log if "[batchgate]" in line]


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def running_with_line(api: Api, batch_id: str, text: str) -> dict[str, Any]:
    """Wait until the batch is RUNNING and `text` is in its log; returns the batch."""
    async def ready() -> bool:
        batch = await api.get(batch_id)
        assert batch["state"] in ("INITIALIZED", "PENDING", "RUNNING"), batch
        return batch["state"] == "RUNNING" and any(text in line for line in await api.full_log(batch_id))

    await wait_until(ready, f"{text!r} in the log of a RUNNING batch", SPARK_TIMEOUT)
    batch: dict[str, Any] = await api.get(batch_id)
    return batch


# --- validation (fast) --------------------------------------------------------------------------


def spec(batch_type: str = "PYSPARK", resource: str | None = None, *, class_name: str | None = None,
         conf: dict[str, str] | None = None, user: str = "alice", real_user: str = "alice",
         workdir: Path = Path("/tmp/bg-spark-test-workdir")) -> LaunchSpec:
    return LaunchSpec(
        batch_id="0b6f6c8e-5d7e-4a4e-9d1e-3a3c2f6b1a00", batch_type=batch_type, user=user, real_user=real_user,
        name="n", resource=resource or str(pi_py()), class_name=class_name, conf=conf or {}, args=["7"],
        workdir=workdir,
    )


def builder(**overrides: Any) -> SparkSubmit:
    values: dict[str, Any] = {"spark_home": spark_home(), "default_master": "local[*]", "python": sys.executable}
    values.update(overrides)
    return SparkSubmit(SubmitConfig(**values))


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"batch_type": "SPARK", "resource": "hdfs://nn/app.jar"}, "className", "required"),
        ({"batch_type": "SPARK", "resource": "hdfs://nn/app.jar", "class_name": "not a class"}, "className", ""),
        ({"batch_type": "SPARK", "resource": "hdfs://nn/app.py", "class_name": "a.B"}, "resource", ".jar"),
        ({"resource": "s3a://bucket/job.jar"}, "resource", ".py"),
        ({"resource": "/nonexistent/job.py"}, "resource", "does not exist"),
        ({"resource": "--proxy-user=root.py"}, "resource", "option"),
        ({"conf": {"spark.master": "mesos://x:5050"}}, "conf", "spark.master"),
        ({"conf": {"spark.submit.deployMode": "cluster"}}, "conf", "cluster master"),
        ({"conf": {"spark.submit.deployMode": "both"}}, "conf", "client or cluster"),
        ({"conf": {"spark.master": "spark://h:7077", "spark.submit.deployMode": "cluster"}}, "conf", "PYSPARK"),
        ({"conf": {"spark.batchgate.batch.id": "x"}}, "conf", "set by the gateway"),
        ({"conf": {"spark.pyspark.driver.python": "/bin/sh"}}, "conf", "gateway's Python"),
        ({"user": "-x", "real_user": "admin"}, "conf", "proxy user"),
    ],
)
def test_validation_errors(kwargs: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        builder().validate(spec(**kwargs))
    assert info.value.field == field
    assert text in str(info.value)


def test_validation_accepts_remote_resources_without_checking_them() -> None:
    b = builder()
    b.validate(spec(resource="hdfs://nn:8020/jobs/job.py"))
    b.validate(spec(resource="https://example.invalid/job.py"))
    b.validate(spec(resource="local:/opt/jobs/job.py"))
    b.validate(spec("SPARK", "s3a://bucket/app.jar", class_name="com.example.Main"))


def test_allowed_masters_are_prefixes_and_the_default_is_always_allowed() -> None:
    b = builder(default_master="local[2]", allowed_masters=("local", "spark://good:"))
    b.validate(spec())
    b.validate(spec(conf={"spark.master": "spark://good:7077"}))
    with pytest.raises(InvalidRequest, match="not allowed"):
        b.validate(spec(conf={"spark.master": "spark://evil:7077"}))
    with pytest.raises(InvalidRequest, match="not allowed"):
        b.validate(spec(conf={"spark.master": "yarn"}))


def test_spark_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHGATE_SPARK_ALLOWED_MASTERS", "local, spark://m:")
    monkeypatch.setenv("BATCHGATE_SPARK_MASTER_WEB_URLS", "spark://a:7077,b:7077=http://a:8081;spark://c:7077=http://c:80")
    monkeypatch.setenv("BATCHGATE_SPARK_YARN_RM_URLS", "http://rm1:8088,http://rm2:8088")
    spark = Settings().engine_settings["spark"]
    assert spark.allowed_masters == ["local", "spark://m:"]
    assert spark.master_web_urls == {"spark://a:7077,b:7077": "http://a:8081", "spark://c:7077": "http://c:80"}
    assert spark.yarn_rm_urls == ["http://rm1:8088", "http://rm2:8088"]
    monkeypatch.setenv("BATCHGATE_SPARK_MASTER_WEB_URLS", '{"spark://a:7077": "http://a:8080"}')
    assert Settings().engine_settings["spark"].master_web_urls == {"spark://a:7077": "http://a:8080"}


def test_masters_parse() -> None:
    assert parse_master("local[*]").kind == "local"
    assert parse_master("local[4,2]").kind == "local"
    m = parse_master("spark://a:7077,b:7078")
    assert m.kind == "standalone" and m.hosts == (("a", 7077), ("b", 7078))
    assert parse_master("k8s://https://api.example:6443").api_url == "https://api.example:6443"
    assert parse_master("k8s://api.example:6443").api_url == "https://api.example:6443"
    for bad in ("spark://nohost", "local[x]", "k8s://", "mesos://m:5050", ""):
        with pytest.raises(ValueError):
            parse_master(bad)


def test_command_line_for_local_pyspark(tmp_path: Path) -> None:
    s = spec(conf={"spark.executor.memory": "1g", "kyuubi.batch.priority": "3", "foo.bar": "x",
                   "spark.hadoop.fs.s3a.secret.key": "hunter2"}, workdir=tmp_path)
    plan = builder().plan(s)
    argv = plan.argv
    assert argv[0] == str(spark_home().resolve() / "bin" / "spark-submit")
    assert argv[argv.index("--master") + 1] == "local[*]"
    assert argv[argv.index("--deploy-mode") + 1] == "client"
    assert argv[argv.index("--name") + 1] == "n"
    assert "--proxy-user" not in argv and "--class" not in argv
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.executor.memory=1g" in confs
    assert f"spark.batchgate.batch.id={s.batch_id}" in confs
    assert f"spark.local.dir={tmp_path / 'local'}" in confs
    assert f"spark.eventLog.dir={(tmp_path / 'eventlog').as_uri()}" in confs
    assert not any(c.startswith(("kyuubi.", "foo.")) for c in confs)
    assert plan.ignored_conf == ["foo.bar"]
    assert argv[-2:] == [str(pi_py().resolve()), "7"]
    assert plan.env["PYSPARK_PYTHON"] == sys.executable == plan.env["PYSPARK_DRIVER_PYTHON"]
    assert plan.env["SPARK_HOME"] == str(spark_home().resolve())
    assert f"-Djava.io.tmpdir={tmp_path / 'tmp'}" in plan.env["SPARK_SUBMIT_OPTS"]
    assert not any(k.startswith("BATCHGATE_") and k not in ("BATCHGATE_BATCH_ID", "BATCHGATE_USER")
                   for k in plan.env)
    assert "spark.hadoop.fs.s3a.secret.key=hunter2" in confs
    assert "hunter2" not in plan.display and "********" in plan.display


def test_command_line_for_a_jar_with_proxy_user_on_standalone_cluster(tmp_path: Path) -> None:
    jar = tmp_path / "app.jar"
    jar.write_bytes(b"PK")
    s = spec("SPARK", str(jar), class_name="com.example.Main", user="bob", real_user="admin", workdir=tmp_path,
             conf={"spark.master": "spark://m:7077", "spark.submit.deployMode": "cluster"})
    argv = builder().plan(s).argv
    assert argv[argv.index("--class") + 1] == "com.example.Main"
    assert argv[argv.index("--proxy-user") + 1] == "bob"
    assert argv[argv.index("--deploy-mode") + 1] == "cluster"
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert not any(c.startswith(("spark.master=", "spark.submit.deployMode=", "spark.eventLog", "spark.local.dir"))
                   for c in confs), "a driver on the cluster must not get the gateway's paths"
    assert argv[-2:] == [str(jar), "7"]


# Handles as earlier versions stored them (the "spark" part), read as typed facts and written back the same.
STORED_SPARK = [
    {"batchId": "b1", "master": "local[2]", "deployMode": "client", "launcherWaits": True, "restSubmission": False,
     "appId": "local-1", "appUrl": "http://h:4040", "appState": "RUNNING"},
    {"batchId": "b2", "master": "yarn", "deployMode": "cluster", "launcherWaits": False, "restSubmission": False,
     "appId": "application_1_0001", "launcher": "jvm", "uiUrl": "http://rm/proxy/application_1_0001/",
     "amContainerLogs": "http://nm/logs"},
    {"batchId": "b3", "master": "k8s://https://api:6443", "deployMode": "cluster", "launcherWaits": True,
     "restSubmission": False, "namespace": "jobs", "pod": "drv-1", "appId": "spark-0123456789abcdef"},
    {"batchId": "b4", "master": "spark://m:7077", "deployMode": "cluster", "launcherWaits": True,
     "restSubmission": True, "driverId": "driver-1-0001", "worker": "w1", "someLaterKey": {"kept": True}},
]


@pytest.mark.parametrize("stored", STORED_SPARK)
def test_stored_spark_facts_are_written_back_the_same(stored: dict[str, Any]) -> None:
    facts = SparkFacts.from_dict(stored)
    assert facts.to_dict() == stored
    assert facts.cluster is (stored["deployMode"] == "cluster")
    assert facts.ids == AppIds(app_id=stored.get("appId"), driver_id=stored.get("driverId"), pod=stored.get("pod"),
                               namespace=stored.get("namespace"))


def test_launcher_output_facts_and_diagnostics() -> None:
    out = LauncherOutput()
    out.feed([
        "26/01/01 10:00:00 INFO JettyUtils: Start Jetty 0.0.0.0:4040 for SparkUI",
        "26/01/01 10:00:00 WARN Utils: Service 'SparkUI' could not bind on port 4040. Attempting port 4041.",
        "26/01/01 10:00:00 INFO Utils: Successfully started service 'SparkUI' on port 4041.",
        "26/01/01 10:00:00 INFO BlockManagerMaster: Registering BlockManager BlockManagerId(driver, 10.1.2.3, 4, None)",
        "26/01/01 10:00:01 INFO RollingEventLogFilesWriter: Logging events to "
        "file:/w/eventlog/eventlog_v2_local-1700000000000/events_1_local-1700000000000.zstd",
        "Traceback (most recent call last):",
        '  File "/x.py", line 4, in <module>',
        "ValueError: boom",
    ])
    assert out.facts.app_id == "local-1700000000000"
    assert out.facts.ui_url == "http://10.1.2.3:4041"
    assert out.diagnostic == "ValueError: boom"
    spark3 = LauncherOutput()
    spark3.feed(["INFO SparkUI: Bound SparkUI to 0.0.0.0, and started at http://h:4040",
                 "INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID app-20240101000000-0007",
                 'Exception in thread "main" java.lang.IllegalStateException: nope'])
    assert spark3.facts.app_id == "app-20240101000000-0007"
    assert spark3.facts.ui_url == "http://h:4040"
    assert spark3.diagnostic == "java.lang.IllegalStateException: nope"
    rest = LauncherOutput()
    rest.feed(["INFO RestSubmissionClient: Submission successfully created as driver-20240101000000-0001. "
               "Polling submission state...", "Error: Failed to load class no.Such."])
    assert rest.facts.driver_id == "driver-20240101000000-0001"
    assert rest.diagnostic == "Failed to load class no.Such."


async def test_invalid_requests_are_400_with_the_message(api: Api, tmp_path: Path) -> None:
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "SPARK", "resource": str(tmp_path / "missing.jar"), "conf": {}})
    assert status == 400 and body["message"].startswith("className:"), body
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "PYSPARK", "resource": str(tmp_path / "job.txt")})
    assert status == 400 and body["message"].startswith("resource:") and ".py" in body["message"], body
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "PYSPARK", "resource": str(tmp_path / "missing.py")})
    assert status == 400 and "does not exist" in body["message"], body


async def test_disallowed_master_is_400(start_gateway: Callable[..., Awaitable[Api]]) -> None:
    api = await start_gateway(admin=["admin"], spark_allowed_masters=["local"])
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "PYSPARK", "resource": str(pi_py()), "conf": {"spark.master": "spark://10.0.0.1:7077"}})
    assert status == 400 and body["message"].startswith("conf:") and "not allowed" in body["message"], body


# --- real spark-submit on local[2] --------------------------------------------------------------


@pytest.mark.slow
async def test_pyspark_pi_on_local_master_finishes(api: Api, tmp_path: Path) -> None:
    batch = await api.submit("PYSPARK", str(pi_py()), args=["2"], name="pi-local",
                             conf={"spark.master": "local[2]", "foo.ignored": "1"})
    final = await api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    log = await api.full_log(batch["id"])
    assert final["state"] == "FINISHED", (final, log[-30:])
    assert final["appState"] == "FINISHED"
    assert final["appId"].startswith("local-"), final
    assert final["appUrl"].startswith("http://"), final
    assert final["appStartTime"] > 0
    assert any(line.startswith("Pi is roughly 3.1") for line in log)
    notes = gateway_lines(log)
    assert any("launching: " in n and "/bin/spark-submit --master 'local[2]'" in n for n in notes), notes
    assert any("foo.ignored" in n and "not passed" in n for n in notes), notes
    # Spark's scratch space went into the batch's working dir.
    workdir = tmp_path / "data" / "batches" / batch["id"]
    assert any(f"Created local directory at {workdir}/local/" in line for line in log), log[:40]
    assert list((workdir / "eventlog").iterdir()), "the event log is in the batch's dir"
    assert info(final, "spark")["appId"] == final["appId"]


@pytest.mark.slow
async def test_spark_jar_on_local_master_finishes(api: Api, test_jar: Path) -> None:
    batch = await api.submit("SPARK", str(test_jar), class_name=TEST_APP_CLASS, args=["pi"],
                             conf={"spark.master": "local[2]"})
    final = await api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    log = await api.full_log(batch["id"])
    assert final["state"] == "FINISHED", (final, log[-30:])
    assert final["appId"].startswith("local-")
    assert any(line.startswith("Pi is roughly") for line in log)


@pytest.mark.slow
async def test_app_url_names_the_port_spark_bound_when_4040_is_taken(api: Api, scripts: dict[str, Path]) -> None:
    """Another application holds the UI port Spark asks for (4040 by default): Spark binds its UI to the next
    free port, and appUrl (and Livy's sparkUiUrl) must name that one, not the one asked for, which is the
    other application's UI. The port held is one this test binds and names as spark.ui.port, so that no
    other program on the machine can take it or give it back while the test runs."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        asked = taken.getsockname()[1]
        batch = await api.submit("PYSPARK", str(scripts["sleep"]),
                                 conf={"spark.master": "local[1]", "spark.ui.port": str(asked)})
        running = await running_with_line(api, batch["id"], "sleeping now")
        log = await api.full_log(batch["id"])
        bound = [int(m.group(1)) for line in log
                 if (m := re.search(r"Successfully started service 'SparkUI' on port (\d+)", line))]
        assert bound and bound[-1] != asked, log[:60]
        await wait_until(lambda: _app_url_port(api, batch["id"], bound[-1], asked), "appUrl to name the bound port",
                         30)
        livy = await api.call("GET", f"/livy/batches/{running['batchInfo']['livyId']}")
        await api.kill(batch["id"])
        await api.wait_for(batch["id"], timeout=30)
    assert livy["appInfo"]["sparkUiUrl"].endswith(f":{bound[-1]}"), livy


async def _app_url_port(api: Api, batch_id: str, port: int, asked: int) -> bool:
    url = (await api.get(batch_id))["appUrl"] or ""
    assert not url.endswith(f":{asked}"), url
    return url.endswith(f":{port}")


@pytest.mark.slow
async def test_failing_pyspark_script_is_error_with_the_exception(api: Api, scripts: dict[str, Path]) -> None:
    batch = await api.submit("PYSPARK", str(scripts["fail"]), conf={"spark.master": "local[2]"})
    final = await api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    assert final["state"] == "ERROR", final
    assert final["appState"] == "FAILED"
    assert "ValueError: batchgate test failure in the driver" in final["appDiagnostic"], final
    assert "exit code" in final["appDiagnostic"]
    assert final["appId"].startswith("local-")


@pytest.mark.slow
async def test_missing_main_class_is_error_before_any_app(api: Api, test_jar: Path) -> None:
    batch = await api.submit("SPARK", str(test_jar), class_name="no.such.Main", conf={"spark.master": "local[2]"})
    final = await api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    assert final["state"] == "ERROR", final
    assert "Failed to load class no.such.Main" in final["appDiagnostic"], final
    assert final["appId"] is None and final["appStartTime"] == 0


@pytest.mark.slow
async def test_kill_running_pyspark_on_local_master(api: Api, scripts: dict[str, Path], tmp_path: Path) -> None:
    batch = await api.submit("PYSPARK", str(scripts["sleep"]), conf={"spark.master": "local[2]"})
    running = await running_with_line(api, batch["id"], "sleeping now")
    assert running["appId"].startswith("local-")
    started = time.monotonic()
    result = await api.kill(batch["id"])
    assert result["success"] is True, result
    final = await api.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert time.monotonic() - started < 15
    child = json.loads((tmp_path / "data" / "batches" / batch["id"] / "pids.json").read_text())["child"]
    await wait_until(lambda: _group_gone(child), "spark-submit's process group to be gone", 20)


async def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# --- a real standalone cluster ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-standalone")) as running:
        yield running


@pytest.fixture
async def cluster_api(start_gateway: Callable[..., Awaitable[Api]], cluster: StandaloneCluster) -> Api:
    return await start_gateway(admin=["admin"], spark_master_web_urls=cluster.web_urls_setting(),
                               spark_rest_port=cluster.rest_port, spark_allowed_masters=["local", "spark://127.0.0.1:"])


@pytest.mark.slow
async def test_pyspark_pi_on_standalone_cluster_finishes(cluster_api: Api, cluster: StandaloneCluster) -> None:
    batch = await cluster_api.submit("PYSPARK", str(pi_py()), args=["2"], name="pi-standalone",
                                     conf={"spark.master": cluster.master_url, **SMALL})
    final = await cluster_api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    log = await cluster_api.full_log(batch["id"])
    assert final["state"] == "FINISHED", (final, log[-30:])
    assert final["appId"].startswith("app-"), final
    assert any(line.startswith("Pi is roughly 3.1") for line in log)
    apps = cluster.master_json()["completedapps"]
    assert any(a["id"] == final["appId"] and a["state"] == "FINISHED" for a in apps), apps  # type: ignore[index, union-attr, attr-defined]


@pytest.mark.slow
async def test_failing_pyspark_on_standalone_cluster_is_error(
    cluster_api: Api, cluster: StandaloneCluster, scripts: dict[str, Path]
) -> None:
    batch = await cluster_api.submit("PYSPARK", str(scripts["fail"]),
                                     conf={"spark.master": cluster.master_url, **SMALL})
    final = await cluster_api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    assert final["state"] == "ERROR", final
    assert "ValueError: batchgate test failure in the driver" in final["appDiagnostic"], final
    assert final["appId"].startswith("app-")


@pytest.mark.slow
async def test_kill_pyspark_on_standalone_cluster(
    cluster_api: Api, cluster: StandaloneCluster, scripts: dict[str, Path]
) -> None:
    batch = await cluster_api.submit("PYSPARK", str(scripts["sleep"]),
                                     conf={"spark.master": cluster.master_url, **SMALL})
    running = await running_with_line(cluster_api, batch["id"], "sleeping now")
    app_id = running["appId"]
    assert app_id.startswith("app-")
    assert running["appState"] == "RUNNING"
    result = await cluster_api.kill(batch["id"])
    assert result["success"] is True
    final = await cluster_api.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final

    def app_ended() -> bool:
        return any(a["id"] == app_id for a in cluster.master_json()["completedapps"])  # type: ignore[index, union-attr, attr-defined]

    await wait_until(lambda: asyncio.to_thread(app_ended), "the master to see the application end", 30)


@pytest.mark.slow
async def test_spark_jar_in_cluster_mode_through_the_rest_server(
    cluster_api: Api, cluster: StandaloneCluster, test_jar: Path
) -> None:
    batch = await cluster_api.submit(
        "SPARK", str(test_jar), class_name=TEST_APP_CLASS, args=["pi"],
        conf={"spark.master": cluster.rest_url, "spark.submit.deployMode": "cluster",
              "spark.master.rest.enabled": "true", **SMALL})
    final = await cluster_api.wait_for(batch["id"], timeout=SPARK_TIMEOUT)
    log = await cluster_api.full_log(batch["id"])
    assert final["state"] == "FINISHED", (final, log[-30:])
    assert final["appId"].startswith("driver-"), final
    # appUrl is where the driver's log lives: the worker's log page for this driver.
    assert final["appUrl"] == f"{cluster.worker_web_url}/logPage/?driverId={final['appId']}&logType=stderr"
    assert any("Submission successfully created as" in line for line in log)


@pytest.mark.slow
async def test_kill_spark_jar_in_cluster_mode_without_the_rest_server(
    start_gateway: Callable[..., Awaitable[Api]], cluster: StandaloneCluster, test_jar: Path
) -> None:
    """Legacy submission (no spark.master.rest.enabled) to a gateway that finds no REST server: the state
    comes from the master's JSON, and the kill goes through the master web UI."""
    api = await start_gateway(admin=["admin"], spark_master_web_urls=cluster.web_urls_setting(),
                              spark_rest_port=free_port())
    batch = await api.submit(
        "SPARK", str(test_jar), class_name=TEST_APP_CLASS, args=["sleep", "600"],
        conf={"spark.master": cluster.master_url, "spark.submit.deployMode": "cluster", **SMALL})

    async def driver_running() -> bool:
        b = await api.get(batch["id"])
        assert b["state"] in ("INITIALIZED", "PENDING", "RUNNING"), b
        return bool(b["appState"] == "RUNNING")

    await wait_until(driver_running, "the driver to run", SPARK_TIMEOUT)
    running = await api.get(batch["id"])
    driver_id = running["appId"]
    assert driver_id.startswith("driver-") and running["state"] == "RUNNING"
    assert running["appUrl"].startswith(f"{cluster.worker_web_url}/logPage/?driverId={driver_id}")
    result = await api.kill(batch["id"])
    assert result["success"] is True
    final = await api.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    log = await api.full_log(batch["id"])
    assert any(f"kill of {driver_id} sent to the master web UI" in line for line in gateway_lines(log)), \
        gateway_lines(log)
    drivers = cluster.master_json()["completeddrivers"]
    assert any(d["id"] == driver_id and d["state"] == "KILLED" for d in drivers), drivers  # type: ignore[index, union-attr, attr-defined]


def test_display_is_a_shell_quoted_command(tmp_path: Path) -> None:
    s = spec(workdir=tmp_path, conf={"spark.app.name": "a b"})
    plan = builder().plan(s)
    assert shlex.split(plan.display)[: len(plan.argv)] == plan.argv
