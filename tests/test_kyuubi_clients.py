"""Kyuubi's own Java REST client (kyuubi-rest-client's BatchRestApi, version pinned in
tests/maven/kyuubi-clients/pom.xml) against a live, secured gateway.

tests/kyuubi_clients/KyuubiClientDriver.java is compiled here and takes one command per line; it answers
with what the client parsed, so every field is checked as Kyuubi's client reads it, not as we send it.

Where the jars come from: $BATCHGATE_KYUUBI_CLIENTS is `maven` (tests/maven_deps.py resolves the pinned
pom from Maven Central, cached outside the repository) or a Java class path that holds kyuubi-rest-client
and its dependencies. Without it these tests are deselected (tests/conftest.py says so in the summary):
the Maven Central that this project's machines reach serves no org.apache.kyuubi artifact at all, so CI
cannot fetch them. See docs/kyuubi.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import maven_deps
from tests.gateway_process import GatewayProcess
from tests.live_gateway import USERS, write_users
from tests.spark_cluster import reap_batch_processes

pytestmark = [pytest.mark.slow, pytest.mark.kyuubi_clients]

DRIVER = Path(__file__).resolve().parent / "kyuubi_clients" / "KyuubiClientDriver.java"
TERMINAL = ("FINISHED", "ERROR", "CANCELED")
BATCH_FIELDS = {"id", "user", "batchType", "name", "appStartTime", "appId", "appUrl", "appState", "appDiagnostic",
                "kyuubiInstance", "state", "createTime", "endTime", "batchInfo"}


def client_classpath() -> str:
    source = os.environ.get("BATCHGATE_KYUUBI_CLIENTS", "")
    if source == "maven":
        return maven_deps.classpath("kyuubi-clients")
    assert source, "BATCHGATE_KYUUBI_CLIENTS is not set (tests/conftest.py deselects these tests then)"
    return source


@pytest.fixture(scope="session")
def driver_classpath() -> str:
    """Kyuubi's client jars plus the compiled driver (compiled once per driver source and class path)."""
    classpath = client_classpath()
    digest = hashlib.sha256(DRIVER.read_bytes() + classpath.encode()).hexdigest()[:16]
    out = maven_deps.cache_root() / "kyuubi-driver" / digest
    if not (out / "KyuubiClientDriver.class").exists():
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        subprocess.run(["javac", "-d", str(staging), "-cp", classpath, str(DRIVER)], check=True, timeout=300)
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return f"{out}{os.pathsep}{classpath}"


class KyuubiClient:
    """One JVM running the driver; `call` sends a command and returns the client's answer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, op: str, user: str = "alice", **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        command = {"op": op, "user": user, "password": USERS[user], **fields}
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        assert line, f"the client driver exited ({self.proc.returncode})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ok(self, op: str, user: str = "alice", **fields: Any) -> Any:
        answer = await self.call(op, user, **fields)
        assert answer["ok"], f"{op} {fields}: {answer}"
        return answer["value"]

    async def wait(self, batch_id: str, states: tuple[str, ...] = TERMINAL, user: str = "alice",
                   timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            batch: dict[str, Any] = await self.ok("get", user, id=batch_id)
            if batch["state"] in states:
                return batch
            assert time.monotonic() < deadline, f"{batch_id} still {batch['state']}: {batch}"
            await asyncio.sleep(0.2)


@pytest.fixture
async def gateway(tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    users = write_users(tmp_path / "users")
    process = GatewayProcess(tmp_path / "data", database_url=database_url, instance_id="g1", extra_args=[
        "--users-file", str(users), "--admin", "root", "--engines", "LOCAL,PYSPARK", "--spark-master", "local[2]",
    ])
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
        reap_batch_processes(tmp_path / "data")


@pytest.fixture
async def client(gateway: GatewayProcess, driver_classpath: str) -> AsyncIterator[KyuubiClient]:
    proc = await asyncio.create_subprocess_exec(
        "java", "-cp", driver_classpath, "KyuubiClientDriver", gateway.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        yield KyuubiClient(proc)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def local(name: str, *args: str, **conf: str) -> dict[str, Any]:
    return {"batchType": "local", "resource": sys.executable, "name": name, "conf": conf, "args": list(args)}


async def test_create_get_list_log_delete_json_only(client: KyuubiClient) -> None:
    started = int(time.time() * 1000)
    program = "import sys\nfor i in range(25):\n    print('line', i)\nsys.exit(int(sys.argv[1]))\n"
    done = await client.ok("create", request=local("kc-done", "-c", program, "0"))
    assert set(done) == BATCH_FIELDS, "every field of Kyuubi's Batch"
    assert done["user"] == "alice" and done["batchType"] == "LOCAL" and done["name"] == "kc-done"
    assert done["state"] in ("INITIALIZED", "PENDING", "RUNNING", "FINISHED") and done["createTime"] >= started
    info_conf = json.loads(done["batchInfo"]["conf"])
    assert info_conf["kyuubi.client.version"], "the client adds its version to the conf, and it is accepted"
    failed = await client.ok("create", request=local("kc-failed", "-c", program, "3"))
    sleeper = await client.ok("create", request=local("kc-sleep", "-c", "import time; time.sleep(120)"))

    final = await client.wait(done["id"])
    assert (final["state"], final["appState"]) == ("FINISHED", "FINISHED"), final
    assert final["appId"].startswith("local-") and final["kyuubiInstance"] == "g1"
    assert final["appStartTime"] >= final["createTime"] and final["endTime"] >= final["appStartTime"]
    bad = await client.wait(failed["id"])
    assert (bad["state"], bad["appState"]) == ("ERROR", "FAILED") and "exit code 3" in bad["appDiagnostic"], bad
    running = await client.wait(sleeper["id"], ("RUNNING",))
    assert running["appState"] == "RUNNING" and running["endTime"] == 0 and running["appStartTime"] > 0

    # getBatchLocalLog: exact windows, 0-based, empty past the end.
    whole = await client.ok("log", id=done["id"], **{"from": 0, "size": 1000})
    assert whole["rowCount"] == len(whole["logRowSet"]) and "line 0" in whole["logRowSet"]
    first = whole["logRowSet"].index("line 0")
    window = await client.ok("log", id=done["id"], **{"from": first + 10, "size": 5})
    assert window == {"logRowSet": [f"line {i}" for i in range(10, 15)], "rowCount": 5}
    past = await client.ok("log", id=done["id"], **{"from": 100_000, "size": 5})
    assert past == {"logRowSet": [], "rowCount": 0}

    # listBatches with every filter and desc.
    listed = await client.ok("list", batchType="LOCAL", batchUser="alice", batchName="kc-done", size=10)
    assert listed["from"] == 0 and listed["total"] == 1 and [b["id"] for b in listed["batches"]] == [done["id"]]
    assert set(listed["batches"][0]) == BATCH_FIELDS
    by_state = await client.ok("list", batchState="ERROR", size=10)
    assert [b["id"] for b in by_state["batches"]] == [failed["id"]]
    newest = await client.ok("list", batchUser="alice", size=2, desc=True)
    assert newest["total"] == 3 and [b["id"] for b in newest["batches"]] == [sleeper["id"], failed["id"]]
    oldest = await client.ok("list", batchUser="alice", size=2, desc=False, **{"from": 1})
    assert oldest["from"] == 1 and [b["id"] for b in oldest["batches"]] == [failed["id"], sleeper["id"]]
    window_ids = await client.ok("list", createTime=started, endTime=int(time.time() * 1000) + 1000, size=10)
    assert {b["id"] for b in window_ids["batches"]} == {done["id"], failed["id"]}, "ended in the window only"
    assert (await client.ok("list", batchType="SPARK", size=10))["total"] == 0

    # Others' batches: not visible to bob, all visible to the admin.
    denied = await client.call("get", "bob", id=done["id"])
    assert not denied["ok"] and denied["status"] == 403, denied
    assert (await client.ok("list", "bob", size=10))["total"] == 0
    assert (await client.ok("list", "root", batchUser="alice", size=10))["total"] == 3

    # deleteBatch of a running batch, then of a finished one.
    killed = await client.ok("delete", id=sleeper["id"])
    assert killed["success"] is True and sleeper["id"] in killed["msg"]
    gone = await client.wait(sleeper["id"])
    assert (gone["state"], gone["appState"]) == ("CANCELED", "KILLED") and gone["endTime"] > 0, gone
    again = await client.ok("delete", id=done["id"])
    assert again["success"] is False and "already FINISHED" in again["msg"]
    missing = await client.call("get", id="00000000-0000-4000-8000-000000000000")
    assert not missing["ok"] and missing["status"] == 404


def deps_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("answer.py", "ANSWER = 42\n")
    return buffer.getvalue()


PYSPARK_MAIN = """\
from pyspark.sql import SparkSession

import answer  # from deps.zip, uploaded as an extra resource into spark.submit.pyFiles

spark = SparkSession.builder.appName("kyuubi-client-extras").getOrCreate()
print("the answer is", answer.ANSWER * spark.sparkContext.parallelize([1, 1], 2).sum() // 2, flush=True)
spark.stop()
"""


async def test_create_with_resource_file_and_extra_resources(client: KyuubiClient, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('uploaded says', sys.argv[1])\n")
    uploaded = await client.ok("create", request={"batchType": "LOCAL", "name": "kc-upload", "args": ["hi"]},
                               resourceFile=str(script))
    assert uploaded["batchInfo"]["uploadedFile"] == "hello.py"
    assert (await client.wait(uploaded["id"]))["state"] == "FINISHED"
    log = await client.ok("log", id=uploaded["id"], **{"from": 0, "size": 1000})
    assert "uploaded says hi" in log["logRowSet"]

    main = tmp_path / "main.py"
    main.write_text(PYSPARK_MAIN)
    deps = tmp_path / "deps.zip"
    deps.write_bytes(deps_zip())
    request = {"batchType": "PYSPARK", "name": "kc-extras",
               "conf": {"spark.driver.memory": "512m", "spark.ui.enabled": "false"},
               "extraResourcesMap": {"spark.submit.pyFiles": "deps.zip"}}
    batch = await client.ok("create", request=request, resourceFile=str(main), extraResources=[str(deps)])
    assert json.loads(batch["batchInfo"]["extraResources"]) == {"spark.submit.pyFiles": ["deps.zip"]}
    final = await client.wait(batch["id"], timeout=180)
    log = await client.ok("log", id=batch["id"], **{"from": 0, "size": 10_000})
    assert final["state"] == "FINISHED", (final, log["logRowSet"][-30:])
    assert "the answer is 42" in log["logRowSet"]

    # A listed file the client did not send: Kyuubi's message, as a 400.
    request["extraResourcesMap"] = {"spark.submit.pyFiles": "deps.zip,util.py"}
    refused = await client.call("create", request=request, resourceFile=str(main), extraResources=[str(deps)])
    assert not refused["ok"] and refused["status"] == 400, refused
    assert "required extra resource files [util.py] are not uploaded" in refused["body"]


async def test_reassign_through_the_client(client: KyuubiClient) -> None:
    nothing = await client.ok("reassign", "root", kyuubiInstance="gone:10099")
    assert nothing == {"batchIds": [], "originalKyuubiInstance": "gone:10099", "newKyuubiInstance": "g1"}
    itself = await client.call("reassign", "root", kyuubiInstance="g1")
    assert not itself["ok"] and itself["status"] == 409
    denied = await client.call("reassign", "alice", kyuubiInstance="gone:10099")
    assert not denied["ok"] and denied["status"] == 403
