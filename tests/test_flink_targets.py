"""The Flink target that cannot run here (kubernetes-application: an application cluster without a YARN
ResourceManager to ask), and cluster failure modes a real cluster is not made to show, against a fake
`flink` launcher and a fake Flink REST API (tests/fake_flink_rest.py). yarn-application and yarn-session
run on a real YARN cluster in tests/test_flink_yarn.py.

What is real: the gateway, its database, the runner process, HTTP on both sides. What is fake: the
program behind bin/flink and the JobManager's REST endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest

from engines.base import InvalidRequest, LaunchSpec
from engines.flink import FlinkEngine
from engines.flink_cli import CauseScanner, display_argv, free_port
from engines.flink_rest import app_state, latest_failure, poll_interval
from engines.flink_state import FlinkFacts, Phase
from engines.process import ProcessSupervisor
from gateway.settings import Settings
from tests.fake_flink_rest import FakeFlinkRest, fake_flink_home, recorded_argv, set_behaviour
from tests.helpers import Api, info

StartGateway = Callable[..., Awaitable[Api]]

K8S_LINE = ("2026-01-01 10:00:00,000 INFO  org.apache.flink.kubernetes.KubernetesClusterDescriptor  - Create "
            "flink application cluster bg-x successfully, JobManager Web Interface: http://{rest}")
SUBMITTED = "Job has been submitted with JobID {job_id}"


@pytest.fixture
async def fake_rest() -> AsyncIterator[FakeFlinkRest]:
    async with FakeFlinkRest() as fake:
        yield fake


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    return fake_flink_home(tmp_path)


@pytest.fixture
def jar(tmp_path: Path) -> Path:
    path = tmp_path / "app.jar"
    path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return path


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text("print('never run by the fake')\n")
    return path


def spec_for(tmp_path: Path, batch_type: str, resource: Path | str, *, conf: dict[str, str] | None = None,
             args: list[str] | None = None, class_name: str | None = None, name: str | None = "my job",
             user: str = "alice", real_user: str = "alice") -> LaunchSpec:
    return LaunchSpec(
        batch_id=str(uuid.uuid4()), batch_type=batch_type, user=user, real_user=real_user, name=name,
        resource=str(resource), class_name=class_name, conf=conf or {}, args=args or [], workdir=tmp_path / "wd",
    )


def d_options(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-D"]
    return dict(pair.split("=", 1) for pair in pairs)


def workdir_of(tmp_path: Path, batch_id: str) -> Path:
    return tmp_path / "data" / "batches" / batch_id


async def wait_app_state(api: Api, batch_id: str, app_state: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = await api.get(batch_id)
        if batch["appState"] == app_state:
            return batch
        if batch["state"] in ("FINISHED", "ERROR", "CANCELED") or time.monotonic() > deadline:
            raise AssertionError(f"appState never became {app_state}: {batch}")
        await asyncio.sleep(0.05)


# --- command building -------------------------------------------------------------------------------


def test_local_target_command(tmp_path: Path, script: Path) -> None:
    engine = FlinkEngine(ProcessSupervisor(), home=fake_flink_home(tmp_path))
    spec = spec_for(tmp_path, "PYFLINK", script, args=["--input", "a b"], conf={"parallelism.default": "2"})
    argv, target, _conf = engine.command(spec, local_rest_port=45678)
    assert target.name == "local"
    assert argv[1:4] == ["run", "-t", "local"] and "-d" not in argv, "the mini cluster lives in the launcher"
    options = d_options(argv)
    assert options["io.tmp.dirs"] == options["web.upload.dir"] == str(spec.workdir / "tmp")
    assert options["rest.bind-port"] == "45678" and options["rest.address"] == "127.0.0.1"
    assert options["python.client.executable"] == options["python.executable"] == sys.executable
    assert options["pipeline.name"] == "my job" and options["parallelism.default"] == "2"
    assert argv[-4:] == ["-py", str(script), "--input", "a b"]


def test_remote_target_command_from_conf(tmp_path: Path, jar: Path) -> None:
    engine = FlinkEngine(ProcessSupervisor(), home=fake_flink_home(tmp_path))
    spec = spec_for(tmp_path, "FLINK", jar, class_name="com.example.Main", args=["x"],
                    conf={"batchgate.flink.jobmanager": "10.1.2.3:8082", "kyuubi.batch.priority": "5"})
    argv, target, _conf = engine.command(spec)
    assert target.name == "remote" and target.rest_url == "http://10.1.2.3:8082"
    assert argv[1:5] == ["run", "-t", "remote", "-d"]
    options = d_options(argv)
    assert options["rest.address"] == "10.1.2.3" and options["rest.port"] == "8082"
    assert not any(k.startswith(("batchgate.", "kyuubi.")) for k in options), "gateway keys stay in the gateway"
    assert "io.tmp.dirs" not in options, "a cluster's temp dirs are the cluster's business"
    assert argv[-4:] == ["-c", "com.example.Main", str(jar), "x"]

    by_rest_address = spec_for(tmp_path, "FLINK", jar, conf={"rest.address": "jm.example", "rest.port": "9000"})
    _argv, target, _conf = engine.command(by_rest_address)
    assert target.name == "remote" and target.rest_url == "http://jm.example:9000"

    default = FlinkEngine(ProcessSupervisor(), home=fake_flink_home(tmp_path), default_target="remote",
                          default_jobmanager="jm.default:8081")
    _argv, target, _conf = default.command(spec_for(tmp_path, "FLINK", jar))
    assert target.rest_url == "http://jm.default:8081"


def test_application_target_commands(tmp_path: Path, jar: Path, script: Path) -> None:
    engine = FlinkEngine(ProcessSupervisor(), home=fake_flink_home(tmp_path))
    yarn = spec_for(tmp_path, "FLINK", jar, conf={"execution.target": "yarn-application"}, name=None)
    argv, target, _conf = engine.command(yarn)
    options = d_options(argv)
    assert argv[1:4] == ["run", "-t", "yarn-application"] and "-d" not in argv
    assert "execution.target" not in options
    assert options["$internal.pipeline.job-id"] == uuid.UUID(yarn.batch_id).hex
    assert options["execution.shutdown-on-application-finish"] == "false"
    assert options["yarn.application.name"] == f"batchgate-{yarn.batch_id}"
    assert options["yarn.tags"] == f"batchgate,batchgate-{yarn.batch_id}"

    k8s = spec_for(tmp_path, "PYFLINK", "local:///opt/flink/usrlib/job.py",
                   conf={"execution.target": "kubernetes-application", "kubernetes.container.image.ref": "img:1"})
    argv, target, _conf = engine.command(k8s)
    options = d_options(argv)
    assert target.application and target.rest_url is None
    assert options["kubernetes.cluster-id"] == f"bg-{k8s.batch_id}"
    assert options["kubernetes.container.image.ref"] == "img:1"
    assert "python.executable" not in options, "the gateway's Python does not exist in the cluster's image"
    assert argv[-2:] == ["-py", "local:///opt/flink/usrlib/job.py"]

    session = spec_for(tmp_path, "PYFLINK", script, conf={
        "execution.target": "yarn-session", "yarn.application.id": "application_1_0007"})
    argv, target, _conf = engine.command(session)
    options = d_options(argv)
    assert target.session and not target.application and target.rest_url is None, "the RM tells it at launch"
    assert argv[1:5] == ["run", "-t", "yarn-session", "-d"]
    assert options["yarn.application.id"] == "application_1_0007"
    assert options["python.executable"] == sys.executable, "a session's workers are the gateway's neighbours"


def test_secrets_are_masked_in_the_logged_command() -> None:
    shown = display_argv(["flink", "run", "-D", "s3.secret-key=hunter2", "-D", "pipeline.name=x y"])
    assert "hunter2" not in shown and "s3.secret-key=********" in shown and "'pipeline.name=x y'" in shown


def test_validation(tmp_path: Path, jar: Path, script: Path) -> None:
    engine = FlinkEngine(ProcessSupervisor(), home=fake_flink_home(tmp_path))
    cases: list[tuple[LaunchSpec, str, str]] = [
        (spec_for(tmp_path, "FLINK", script), "resource", ".jar"),
        (spec_for(tmp_path, "PYFLINK", jar), "resource", ".py"),
        (spec_for(tmp_path, "FLINK", tmp_path / "missing.jar"), "resource", "not found"),
        (spec_for(tmp_path, "FLINK", jar, conf={"execution.target": "yarn-per-job"}), "conf", "yarn-per-job"),
        (spec_for(tmp_path, "FLINK", jar, conf={"execution.target": "remote"}), "conf", "batchgate.flink.jobmanager"),
        (spec_for(tmp_path, "FLINK", jar, conf={"batchgate.flink.jobmanager": "nohost"}), "conf", "host:port"),
        (spec_for(tmp_path, "FLINK", "hdfs:///jobs/app.jar"), "resource", "application target"),
        (spec_for(tmp_path, "FLINK", jar, class_name="not a class"), "className", "class name"),
        (spec_for(tmp_path, "FLINK", jar, conf={"execution.target": "yarn-session"}), "conf", "yarn.application.id"),
        (spec_for(tmp_path, "FLINK", jar, conf={"execution.target": "yarn-session", "yarn.application.id": "x"}),
         "conf", "yarn.application.id"),
    ]
    for spec, field_name, words in cases:
        with pytest.raises(InvalidRequest) as caught:
            engine.validate(spec)
        assert caught.value.field == field_name and words in str(caught.value), (spec, caught.value)
    engine.validate(spec_for(tmp_path, "FLINK", "hdfs:///jobs/app.jar", conf={"execution.target": "yarn-application"}))


# Handles as earlier versions stored them (the "flink" part): each reads as a phase, and is written back
# in the same keys, so that a gateway re-attaches across an upgrade (and a downgrade) either way.
STORED_FACTS = [
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": False, "submitted": 1.5, "job_ids": [],
      "app_ids": []}, Phase.LAUNCHING),
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": True, "submitted": 1.5, "job_ids": ["a"],
      "app_ids": ["a"], "argv": ["flink", "run"]}, Phase.FOLLOWING),
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": True, "submitted": 1.5, "job_ids": ["a"],
      "app_ids": ["a"], "pausing": {"job": "a", "request": "r1", "dir": "file:///sp"}}, Phase.PAUSING),
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": True, "submitted": 1.5, "job_ids": ["a"],
      "app_ids": ["a"], "paused": True, "savepoint": "file:///sp/savepoint-a", "paused_job": "a"}, Phase.PAUSED),
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": False, "submitted": 2.5, "job_ids": [],
      "app_ids": ["a"], "paused": True, "resuming": True, "savepoint": "file:///sp/savepoint-a",
      "paused_job": "a"}, Phase.RESUMING),
    ({"target": "remote", "rest_url": "http://jm:8081", "cli_done": True, "submitted": 2.5, "job_ids": ["b"],
      "app_ids": ["a", "b"], "paused": False, "resuming": False, "savepoint": "file:///sp/savepoint-a",
      "restored_from": "file:///sp/savepoint-a"}, Phase.FOLLOWING),
    ({"target": "yarn-application", "rest_url": None, "cli_done": True, "submitted": 1.5, "job_ids": ["c"],
      "app_ids": ["c"], "yarn_app": "application_1_0001", "tracking_url": "http://rm/proxy/x/", "tracked": True},
     Phase.FOLLOWING),
]


@pytest.mark.parametrize(("stored", "phase"), STORED_FACTS)
def test_stored_flink_facts_read_as_a_phase_and_write_back_the_same(stored: dict[str, Any], phase: Phase) -> None:
    facts = FlinkFacts.from_dict(stored)
    assert facts.phase is phase
    written = facts.to_dict()
    assert {k: v for k, v in written.items() if k not in ("paused", "resuming")} == \
        {k: v for k, v in stored.items() if k not in ("paused", "resuming")}
    assert written["paused"] is bool(stored.get("paused")) and written["resuming"] is bool(stored.get("resuming"))
    assert FlinkFacts.from_dict(written) == facts
    assert written["cli_done"] is (phase not in (Phase.LAUNCHING, Phase.RESUMING))


def test_state_mapping_polling_and_diagnostics() -> None:
    assert [app_state(s) for s in ("INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "FINISHED", "FAILED",
                                   "CANCELED")] == ["PENDING", "PENDING", "RUNNING", "RUNNING", "FINISHED",
                                                    "FAILED", "KILLED"]
    intervals = [poll_interval(age, hurry=False, fastest=0.25, slowest=2.0) for age in (0, 5, 30, 600, 86400)]
    assert intervals == sorted(intervals) and intervals[0] == 0.25 and intervals[-1] == 2.0
    assert poll_interval(86400, hurry=True, fastest=0.25, slowest=2.0) == 0.25
    with pytest.raises(pydantic.ValidationError):
        Settings(flink_poll_max_seconds=5.0)

    scanner = CauseScanner()
    scanner.feed(["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: the real reason",
                  "", "py4j.protocol.Py4JJavaError: An error occurred", "Caused by: java.lang.RuntimeException: x"])
    assert scanner.best() == "ValueError: the real reason"
    java = CauseScanner()
    java.feed(["org.apache.flink.client.program.ProgramInvocationException: The main method caused an error",
               "\tat x.y(Z.java:1)", "Caused by: java.lang.IllegalStateException: deepest cause"])
    assert java.best() == "java.lang.IllegalStateException: deepest cause"
    py4j = CauseScanner()  # a Table API call that failed in Java: the Java exception under py4j's wrapper
    py4j.feed(["Traceback (most recent call last):", '  File "x.py", line 7, in <module>',
               "py4j.protocol.Py4JJavaError: An error occurred while calling o52.select.",
               ": org.apache.flink.table.api.ValidationException: Cannot resolve field [no_such_col], input field "
               "list:[word, n].", "\tat org.apache.flink.table.X.y(X.java:91)",
               "org.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process "
               "exits with code: 1", "Caused by: java.lang.RuntimeException: Python process exits with code: 1"])
    assert py4j.best() == ("org.apache.flink.table.api.ValidationException: Cannot resolve field [no_such_col], "
                           "input field list:[word, n].")
    assert latest_failure({"exceptionHistory": {"entries": []}}) == (None, None, [])


# --- through the gateway, against the fakes -----------------------------------------------------------


async def test_application_target_follows_its_jobmanager_to_finished(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path, tmp_path: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    batch_id = str(uuid.uuid4())
    job_id = uuid.UUID(batch_id).hex
    set_behaviour(fake_home, lines=["Deploying", K8S_LINE], rest=fake_rest.address)
    batch = await api.submit(
        "FLINK", str(jar), class_name="com.example.Main", args=["--in", "x y"], name="k8s-job",
        conf={"execution.target": "kubernetes-application", "kyuubi.batch.id": batch_id,
              "taskmanager.numberOfTaskSlots": "2"},
    )
    assert batch["id"] == batch_id
    # Deployed, but the application's main() has not submitted the job yet: the cluster says 404.
    running = await api.wait_for(batch_id, ("RUNNING",), timeout=30)
    assert running["appId"] == job_id and running["appState"] == "PENDING"
    assert running["appUrl"] == f"{fake_rest.url}/#/job/running/{job_id}/overview"
    await asyncio.sleep(0.5)
    assert (await api.get(batch_id))["state"] == "RUNNING", "a job the cluster does not know yet is pending"

    job = fake_rest.add_job(job_id, "RUNNING")
    await wait_app_state(api, batch_id, "RUNNING")
    argv = recorded_argv(workdir_of(tmp_path, batch_id))
    assert argv[:3] == ["run", "-t", "kubernetes-application"] and "-d" not in argv
    options = d_options(argv)
    assert options["$internal.pipeline.job-id"] == job_id
    assert options["taskmanager.numberOfTaskSlots"] == "2" and options["pipeline.name"] == "k8s-job"
    assert "kyuubi.batch.id" not in options
    assert argv[-5:] == ["-c", "com.example.Main", str(jar), "--in", "x y"]

    job.set("FINISHED")
    final = await api.wait_for(batch_id, timeout=15)
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED"
    assert final["appUrl"] == f"{fake_rest.url}/#/job/completed/{job_id}/overview"
    assert info(final, "flink")["target"] == "kubernetes-application"
    assert fake_rest.shutdowns == 1, "the application cluster is shut down once its result is read"
    log = await api.full_log(batch_id)
    assert any("JobManager Web Interface" in line for line in log)
    assert any(f"Flink job {job_id} is FINISHED" in line for line in log)


async def test_kubernetes_application_failure_is_error_with_the_cause(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, tmp_path: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    batch_id = str(uuid.uuid4())
    job = fake_rest.add_job(uuid.UUID(batch_id).hex, "RUNNING")
    set_behaviour(fake_home, lines=[K8S_LINE], rest=fake_rest.address)
    resource = "local:///opt/flink/usrlib/job.py"
    await api.submit("PYFLINK", resource, conf={
        "execution.target": "kubernetes-application", "kyuubi.batch.id": batch_id,
        "kubernetes.container.image.ref": "registry.example/flink-job:1"})
    await wait_app_state(api, batch_id, "RUNNING")
    argv = recorded_argv(workdir_of(tmp_path, batch_id))
    assert d_options(argv)["kubernetes.cluster-id"] == f"bg-{batch_id}"
    assert argv[-2:] == ["-py", resource]

    job.set("FAILED", failure="kaboom-42")
    final = await api.wait_for(batch_id, timeout=15)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED"
    assert "ValueError: kaboom-42" in final["appDiagnostic"]
    log = await api.full_log(batch_id)
    assert any(line.startswith(f"Flink job {job.jid} failure:") for line in log)
    assert "ValueError: kaboom-42" in log, "the stack trace is part of the batch log"
    assert fake_rest.shutdowns == 1


async def test_kill_application_job_cancels_it_by_rest(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    batch_id = str(uuid.uuid4())
    job = fake_rest.add_job(uuid.UUID(batch_id).hex, "RUNNING")
    set_behaviour(fake_home, lines=[K8S_LINE], rest=fake_rest.address)
    await api.submit("FLINK", str(jar), conf={"execution.target": "kubernetes-application",
                                              "kyuubi.batch.id": batch_id})
    await wait_app_state(api, batch_id, "RUNNING")
    result = await api.kill(batch_id)
    assert result["success"] is True
    final = await api.wait_for(batch_id, timeout=15)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED"
    assert ("PATCH", f"/jobs/{job.jid}?mode=cancel") in fake_rest.requests
    assert job.state == "CANCELED"


async def test_application_without_rest_address_is_error_with_a_hint(
    start_gateway: StartGateway, fake_home: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    set_behaviour(fake_home, lines=["deployed somewhere"])
    batch = await api.submit("FLINK", "local:///opt/flink/usrlib/app.jar",
                             conf={"execution.target": "kubernetes-application"})
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "ERROR" and "batchgate.flink.jobmanager" in final["appDiagnostic"]


async def test_remote_job_restarting_then_failed(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home, flink_target="remote",
                              flink_jobmanager=fake_rest.address)
    job = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    set_behaviour(fake_home, lines=["Submitting", SUBMITTED], job_id=job.jid)
    batch = await api.submit("FLINK", str(jar))
    running = await wait_app_state(api, batch["id"], "RUNNING")
    assert running["appId"] == job.jid and running["state"] == "RUNNING"
    assert running["appUrl"] == f"{fake_rest.url}/#/job/running/{job.jid}/overview"

    job.set("RESTARTING", failure="flaky-7")
    deadline = time.monotonic() + 10
    while "flaky-7" not in ((await api.get(batch["id"]))["appDiagnostic"] or ""):
        assert time.monotonic() < deadline, "a restarting job's cause is reported while it restarts"
        await asyncio.sleep(0.1)
    current = await api.get(batch["id"])
    assert current["state"] == "RUNNING" and current["appState"] == "RUNNING"
    assert current["appDiagnostic"].startswith("restarting after:")

    job.set("FAILED")
    final = await api.wait_for(batch["id"], timeout=15)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED" and "flaky-7" in final["appDiagnostic"]
    assert fake_rest.shutdowns == 0, "a session cluster is not ours to shut down"


async def test_finish_is_seen_quickly_and_polling_slows_with_age(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home, flink_poll_min_seconds=0.05,
                              flink_poll_max_seconds=1.0)
    job = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=job.jid)
    batch = await api.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": fake_rest.address})
    await wait_app_state(api, batch["id"], "RUNNING")
    await asyncio.sleep(8)
    polls = [t for t, jid in fake_rest.job_polls if jid == job.jid]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps[0] < 0.5 and max(gaps) <= 1.5, gaps
    assert sum(gaps[-3:]) / 3 > 2 * sum(gaps[:3]) / 3, f"polling should slow down as the job ages: {gaps}"
    finished_at = time.time()
    job.set("FINISHED")
    final = await api.wait_for(batch["id"], timeout=10)
    assert final["state"] == "FINISHED"
    assert final["endTime"] / 1000 - finished_at < 2.0, "no batch waits long to learn that it finished"


async def test_launcher_failure_before_a_job_is_error(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    set_behaviour(fake_home, exit_code=31, lines=[
        "org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: x",
        "\tat org.apache.flink.client.program.PackagedProgram.callMainMethod(PackagedProgram.java:373)",
        "Caused by: java.net.ConnectException: Connection refused: localhost/127.0.0.1:8081",
    ])
    batch = await api.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": fake_rest.address})
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "ERROR" and final["appId"] is None
    assert "exit code 31" in final["appDiagnostic"] and "ConnectException" in final["appDiagnostic"]


async def test_unreachable_cluster_is_lost_after_a_while(start_gateway: StartGateway, fake_home: Path,
                                                         jar: Path) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home, flink_lost_after_seconds=1.5)
    job_id = uuid.uuid4().hex
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=job_id)
    batch = await api.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": f"127.0.0.1:{free_port()}"})
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "ERROR" and final["appId"] == job_id
    assert "lost contact" in final["appDiagnostic"]
    assert any("unreachable" in line for line in await api.full_log(batch["id"]))


async def test_recover_by_job_id_after_gateway_restart(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    settings = {"admin": ["admin"], "flink_home": fake_home, "instance_id": "gw-flink-fake"}
    first = await start_gateway(**settings)
    finished = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    vanished = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    ids = []
    for job in (finished, vanished):
        set_behaviour(fake_home, lines=[SUBMITTED], job_id=job.jid)
        batch = await first.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": fake_rest.address})
        await wait_app_state(first, batch["id"], "RUNNING")
        ids.append(batch["id"])
    await first.client.close()  # a clean shutdown leaves the applications running

    fake_rest.jobs.pop(vanished.jid)
    second = await start_gateway(**settings)
    finished.set("FINISHED")
    done = await second.wait_for(ids[0], timeout=20)
    assert done["state"] == "FINISHED" and done["appId"] == finished.jid
    lost = await second.wait_for(ids[1], timeout=20)
    assert lost["state"] == "ERROR" and "not known to the cluster" in lost["appDiagnostic"]
    assert any("re-attached by gw-flink-fake" in line for line in await second.full_log(ids[0]))


async def test_bad_requests_are_400(api: Api, tmp_path: Path, jar: Path, script: Path) -> None:
    cases = [
        ({"batch_type": "FLINK", "resource": str(script)}, "resource"),
        ({"batch_type": "PYFLINK", "resource": str(jar)}, "resource"),
        ({"batch_type": "PYFLINK", "resource": str(tmp_path / "nope.py")}, "not found"),
        ({"batch_type": "FLINK", "resource": str(jar), "conf": {"execution.target": "mesos"}}, "conf"),
    ]
    for kwargs, words in cases:
        body = await api.submit(expect=400, **kwargs)
        assert words in body["message"], body


async def test_kill_before_the_job_is_submitted_stops_the_launcher(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    set_behaviour(fake_home, lines=["compiling the job graph"], sleep=60)
    batch = await api.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": fake_rest.address})
    started = time.monotonic()
    while "compiling the job graph" not in await api.full_log(batch["id"]):
        assert time.monotonic() - started < 20
        await asyncio.sleep(0.05)
    await api.kill(batch["id"])
    final = await api.wait_for(batch["id"], timeout=15)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED"
    assert time.monotonic() - started < 15, "the launcher was stopped, not waited for"
    assert not any(method == "PATCH" for method, _path in fake_rest.requests), "there was no job to cancel"


async def test_every_submitted_job_is_followed(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, jar: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    first = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    second = fake_rest.add_job(uuid.uuid4().hex, "RUNNING")
    set_behaviour(fake_home, lines=[SUBMITTED, f"Job has been submitted with JobID {second.jid}"], job_id=first.jid)
    batch = await api.submit("FLINK", str(jar), conf={"batchgate.flink.jobmanager": fake_rest.address})
    await wait_app_state(api, batch["id"], "RUNNING")
    first.set("FINISHED")
    await asyncio.sleep(1.0)
    current = await api.get(batch["id"])
    assert current["state"] == "RUNNING" and current["appState"] == "RUNNING", "it ends when its last job ends"
    second.set("FAILED", failure="second-job-broke")
    final = await api.wait_for(batch["id"], timeout=15)
    assert final["state"] == "ERROR" and final["appId"] == first.jid
    assert final["appDiagnostic"].startswith(f"job {second.jid}:") and "second-job-broke" in final["appDiagnostic"]
    assert info(final, "flink")["jobIds"] == [first.jid, second.jid]


async def test_uploaded_script_is_what_flink_runs(
    start_gateway: StartGateway, fake_rest: FakeFlinkRest, fake_home: Path, tmp_path: Path,
) -> None:
    api = await start_gateway(admin=["admin"], flink_home=fake_home)
    job = fake_rest.add_job(uuid.uuid4().hex, "FINISHED")
    set_behaviour(fake_home, lines=[SUBMITTED], job_id=job.jid)
    form = aiohttp.FormData()
    form.add_field("batchRequest", json.dumps({
        "batchType": "PYFLINK", "args": ["--x", "1"],
        "conf": {"batchgate.flink.jobmanager": fake_rest.address}}), content_type="application/json")
    form.add_field("resourceFile", b"print('job')\n", filename="my_job.py", content_type="text/x-python")
    batch = await api.call("POST", "/api/v1/batches", data=form)
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "FINISHED" and final["appId"] == job.jid
    workdir = workdir_of(tmp_path, batch["id"])
    assert recorded_argv(workdir)[-4:] == ["-py", str(workdir / "upload" / "my_job.py"), "--x", "1"]

    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "PYFLINK"}', content_type="application/json")
    form.add_field("resourceFile", b"not a script", filename="job.jar")
    status, payload = await api.status_of("POST", "/api/v1/batches", data=form)
    assert status == 400 and "resource" in payload["message"]
