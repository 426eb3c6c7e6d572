"""The parts of Kyuubi's current batch API beyond the basics: extra resources in a multipart submit,
POST /batches/reassign, GET /admin/batch/count, and the state details Kyuubi's clients rely on."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.keys import BATCH_REPOSITORY, INSTANCE, SUPERVISOR
from tests.gateway_process import GatewayProcess
from tests.helpers import Api, info
from tests.spark_cluster import reap_batch_processes

# Prints every file the batch's working dir received, with its content, then its argument.
LISTER = b"""\
import os, sys
for name in sorted(os.listdir("upload")):
    print("file", name, open(os.path.join("upload", name), "rb").read().decode(errors="replace"))
print("arg", sys.argv[1])
"""


def form(request: dict[str, Any], resource: tuple[str, bytes] | None = ("main.py", LISTER),
         extras: dict[str, bytes] | None = None, *, extras_first: bool = False) -> aiohttp.FormData:
    """A multipart submit as Kyuubi's client builds it: extra files are parts named by their file name."""
    data = aiohttp.FormData()

    def add_extras() -> None:
        for name, content in (extras or {}).items():
            data.add_field(name, content, filename=name, content_type="application/octet-stream")

    if extras_first:
        add_extras()  # the Java client's parts come in a HashMap's order
    data.add_field("batchRequest", json.dumps(request), content_type="application/json")
    if resource is not None:
        data.add_field("resourceFile", resource[1], filename=resource[0], content_type="text/x-python")
    if not extras_first:
        add_extras()
    return data


def local_request(**fields: Any) -> dict[str, Any]:
    return {"batchType": "local", "args": ["go"], "name": "extras", **fields}


async def test_extra_resources_are_stored_and_written_next_to_the_resource(api: Api) -> None:
    request = local_request(
        conf={"spark.submit.pyFiles": "hdfs://nn/base.zip"},
        extraResourcesMap={"spark.submit.pyFiles": "deps.zip,util.py", "spark.files": "data.txt, ,util.py",
                           " ": "ignored-as-kyuubi-does", "spark.jars": " "},
    )
    extras = {"deps.zip": b"zip bytes", "util.py": b"X = 42", "data.txt": b"some data"}
    batch = await api.call("POST", "/api/v1/batches", data=form(request, extras=extras, extras_first=True))
    assert batch["batchType"] == "LOCAL", "batchType is case-insensitive and stored upper-case"
    assert all(v is None or isinstance(v, str) for v in batch["batchInfo"].values()), "a Map<String, String>"
    assert batch["batchInfo"]["uploadedFile"] == "main.py"
    assert info(batch, "extraResources") == {"spark.submit.pyFiles": ["deps.zip", "util.py"],
                                      "spark.files": ["data.txt", "util.py"]}
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED", final
    log = await api.full_log(batch["id"])
    for line in ("file data.txt some data", "file deps.zip zip bytes", "file util.py X = 42", "arg go"):
        assert line in log, log
    # The conf the engine gets: each key's stored paths after the value it already had.
    record = await api.app[BATCH_REPOSITORY].get_batch(uuid.UUID(batch["id"]))
    assert record is not None
    spec = api.app[SUPERVISOR].spec(record)
    upload = spec.workdir / "upload"
    assert spec.conf["spark.submit.pyFiles"] == f"hdfs://nn/base.zip,{upload / 'deps.zip'},{upload / 'util.py'}"
    assert spec.conf["spark.files"] == f"{upload / 'data.txt'},{upload / 'util.py'}"
    assert "spark.jars" not in spec.conf and record.conf == request["conf"], "the stored conf is the client's"


async def test_extra_resources_survive_restart_and_go_with_drop(api: Api) -> None:
    request = local_request(extraResourcesMap={"spark.files": "a.txt"})
    batch = await api.call("POST", "/api/v1/batches", data=form(request, extras={"a.txt": b"first"}))
    await api.wait_for(batch["id"])
    again = await api.call("POST", f"/api/v1/batches/{batch['id']}/restart")
    assert info(again, "extraResources") == {"spark.files": ["a.txt"]}
    assert (await api.wait_for(again["id"]))["state"] == "FINISHED"
    assert "file a.txt first" in await api.full_log(again["id"])
    await api.call("DELETE", f"/api/v1/batches/{batch['id']}/drop")
    store = api.app[BATCH_REPOSITORY]
    assert await store.file_chunks(uuid.UUID(batch["id"]), "a.txt") == []
    assert await store.file_chunks(uuid.UUID(again["id"]), "a.txt") == [b"first"]


async def test_missing_extra_resources_are_refused_with_kyuubis_message(api: Api) -> None:
    request = local_request(extraResourcesMap={"spark.submit.pyFiles": "deps.zip,b.py,a.py"})
    status, body = await api.status_of("POST", "/api/v1/batches", data=form(request, extras={"b.py": b"1"}))
    assert status == 400
    assert body["message"] == "required extra resource files [a.py,deps.zip] are not uploaded in the multipart form data"
    # A JSON submit has no files at all: the same answer, not a silently ignored map.
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "true", "extraResourcesMap": {"spark.files": "x.txt"}})
    assert status == 400 and "[x.txt]" in body["message"], body
    assert (await api.call("GET", "/api/v1/batches"))["total"] == 0, "nothing was queued"


async def test_extra_resource_parts_are_checked(start_gateway: Callable[..., Awaitable[Api]]) -> None:
    api = await start_gateway(admin=["admin"], max_upload_bytes=2048, max_upload_total_bytes=3000,
                              max_extra_resources=2)

    async def refused(data: aiohttp.FormData) -> tuple[int, str]:
        status, body = await api.status_of("POST", "/api/v1/batches", data=data)
        return status, body["message"]

    wanted = local_request(extraResourcesMap={"spark.files": "a.txt,b.txt"})
    status, message = await refused(form(local_request(), extras={"stray.txt": b"1"}))
    assert status == 400 and "'stray.txt'" in message, "an uploaded file no key lists"
    status, message = await refused(form(wanted, extras={"a.txt": b"#" * 3000, "b.txt": b"1"}))
    assert status == 413 and message.startswith("a.txt: larger than 2048"), message
    status, message = await refused(form(wanted, extras={"a.txt": b"#" * 1500, "b.txt": b"#" * 1600}))
    assert status == 413 and "together" in message, message
    status, message = await refused(form(local_request(extraResourcesMap={"k": "a,b,c"}),
                                         extras={"a": b"1", "b": b"1", "c": b"1"}))
    assert status == 400 and "more than 2 extra resource files" in message, message
    status, message = await refused(form(local_request(extraResourcesMap={"k": "main.py"}),
                                         extras={"main.py": b"1"}))
    assert status == 400 and "resourceFile" in message, message
    # Names are reduced as resourceFile's are: a path in the map and in the part name stays in upload/.
    batch = await api.call("POST", "/api/v1/batches", data=form(
        local_request(extraResourcesMap={"spark.files": "../../etc/evil name.txt"}),
        extras={"../../etc/evil name.txt": b"contained"}))
    assert info(batch, "extraResources") == {"spark.files": ["evil_name.txt"]}
    await api.wait_for(batch["id"])
    assert "file evil_name.txt contained" in await api.full_log(batch["id"])


async def test_admin_batch_count(api: Api, python: str) -> None:
    for user, code in (("alice", 0), ("alice", 1), ("bob", 0)):
        batch = await api.as_user(user).submit(resource=python, args=["-c", f"raise SystemExit({code})"])
        await api.wait_for(batch["id"])

    async def count(query: str = "") -> int:
        body = await api.call("GET", f"/api/v1/admin/batch/count{query}")
        assert set(body) == {"count"}
        return int(body["count"])

    assert await count() == 3
    assert await count("?batchType=local") == 3 and await count("?batchType=SPARK") == 0
    assert await count("?batchUser=alice") == 2
    assert await count("?batchUser=alice&batchState=FINISHED") == 1
    assert await count("?batchState=ERROR,FINISHED") == 3
    status, body = await api.as_user("alice").status_of("GET", "/api/v1/admin/batch/count")
    assert status == 403 and "count batches" in body["message"]
    status, body = await api.status_of("GET", "/api/v1/admin/batch/count?batchState=LOST")
    assert status == 400 and "batchState" in body["message"]


async def test_reassign_is_post_only_and_admins_only(api: Api) -> None:
    for method in ("GET", "DELETE"):
        status, body = await api.status_of(method, "/api/v1/batches/reassign")
        assert status == 405, "not taken for a batch id"
    answer = await api.call("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "nobody:10099"})
    instance = api.app[INSTANCE]
    assert answer == {"batchIds": [], "originalKyuubiInstance": "nobody:10099", "newKyuubiInstance": instance}
    status, body = await api.as_user("alice").status_of(
        "POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "nobody:10099"})
    assert status == 403 and body["message"] == "only admins may reassign batches"
    status, body = await api.status_of("POST", "/api/v1/batches/reassign", json={"instance": "x"})
    assert status == 400 and "kyuubiInstance" in body["message"]


async def test_state_details_kyuubi_clients_rely_on(start_gateway: Callable[..., Awaitable[Api]],
                                                    python: str) -> None:
    api = await start_gateway(admin=["admin"], max_running=1)
    before = int(time.time() * 1000)
    batch = await api.submit("Local", python, args=["-c", "import time; time.sleep(60)"],
                             conf={"kyuubi.client.version": "1.10.2"})
    assert batch["batchType"] == "LOCAL" and batch["appStartTime"] == 0 and batch["endTime"] == 0
    running = await api.wait_for(batch["id"], ("RUNNING",))
    assert running["appStartTime"] >= before and running["appState"] == "RUNNING", running
    assert info(running, "conf")["kyuubi.client.version"] == "1.10.2"
    # Canceled while still queued (the one running slot is taken): the app never started, and reads KILLED.
    queued = await api.as_user("carol").submit("LOCAL", python, args=["-c", "pass"])
    assert (await api.get(queued["id"]))["state"] == "INITIALIZED"
    assert (await api.as_user("carol").kill(queued["id"]))["success"] is True
    final = await api.get(queued["id"])
    assert (final["state"], final["appState"], final["appStartTime"]) == ("CANCELED", "KILLED", 0), final
    closed = await api.kill(batch["id"])
    assert closed["success"] is True
    final = await api.wait_for(batch["id"])
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert final["appStartTime"] == running["appStartTime"] and final["endTime"] >= final["appStartTime"]


@pytest.fixture
def _reap(tmp_path: Path) -> Iterator[None]:
    yield
    reap_batch_processes(tmp_path / "dead")


@pytest.mark.slow
async def test_reassign_moves_a_dead_instances_batches(
    start_gateway: Callable[..., Awaitable[Api]], database_url: str, tmp_path: Path, python: str, _reap: None
) -> None:
    dead = await GatewayProcess(tmp_path / "dead", database_url=database_url, instance_id="dead",
                                env={"BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "4"}).start()
    try:
        program = ["-c", "import time; print('up', flush=True); time.sleep(120)"]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{dead.url}/api/v1/batches", json={
                    "batchType": "LOCAL", "resource": python, "args": program}) as resp:
                sleeper = (await resp.json())["id"]
            for _ in range(200):
                async with http.get(f"{dead.url}/api/v1/batches/{sleeper}") as resp:
                    if (await resp.json())["state"] == "RUNNING":
                        break
                await asyncio.sleep(0.1)
        # This instance sweeps for expired leases at start and then only every 60 s: the admin's call,
        # not the sweep, is what moves the batch.
        api = await start_gateway(admin=["admin"], instance_id="live", heartbeat_seconds=60.0, lease_seconds=180.0)
        running = await api.get(sleeper)
        assert running["kyuubiInstance"] == "dead" and running["state"] == "RUNNING", running
        done = await api.submit(resource=python, args=["-c", "pass"])
        await api.wait_for(done["id"])
        dead.send(signal.SIGKILL)
        await dead.proc.wait()  # type: ignore[union-attr]

        status, body = await api.status_of("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "dead"})
        assert status == 409 and "alive" in body["message"], "its lease has not run out yet"
        status, body = await api.status_of("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "live"})
        assert status == 409 and "this instance" in body["message"]
        status, body = await api.as_user("alice").status_of(
            "POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "dead"})
        assert status == 403 and "reassign" in body["message"]
        status, body = await api.status_of("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": ""})
        assert status == 400 and "kyuubiInstance" in body["message"]

        deadline = time.monotonic() + 30
        while True:
            status, body = await api.status_of("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "dead"})
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert body == {"batchIds": [sleeper], "originalKyuubiInstance": "dead", "newKyuubiInstance": "live"}, body
        moved = await api.get(sleeper)
        assert moved["kyuubiInstance"] == "live" and moved["state"] == "RUNNING", moved
        assert any("reassigned by admin to live from dead" in line for line in await api.full_log(sleeper))
        again = await api.call("POST", "/api/v1/batches/reassign", json={"kyuubiInstance": "dead"})
        assert again["batchIds"] == [], "nothing is left to move"
        # This instance really supervises it now: a kill goes through and ends it.
        assert (await api.kill(sleeper))["success"] is True
        final = await api.wait_for(sleeper)
        assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
        audit = await api.call("GET", "/api/v1/audit?action=reassign")
        assert [(e["actor"], e["target"]) for e in audit["entries"]] == [("admin", "dead"), ("admin", "dead")]
    finally:
        await dead.stop()


PYSPARK_MAIN = b"""\
from pyspark.sql import SparkSession

import answer  # from deps.zip, which reaches the driver only through spark.submit.pyFiles

spark = SparkSession.builder.appName("extras").getOrCreate()
print("the answer is", answer.ANSWER * spark.sparkContext.parallelize([1, 1], 2).sum() // 2, flush=True)
spark.stop()
"""


def deps_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("answer.py", "ANSWER = 42\n")
    return buffer.getvalue()


@pytest.mark.slow
async def test_pyspark_imports_a_module_from_an_extra_resource(
    start_gateway: Callable[..., Awaitable[Api]], tmp_path: Path
) -> None:
    api = await start_gateway(admin=["admin"], spark_master="local[2]", engines=["PYSPARK"])
    try:
        request = {"batchType": "pyspark", "name": "extras",
                   "conf": {"spark.driver.memory": "512m", "spark.ui.enabled": "false"},
                   "extraResourcesMap": {"spark.submit.pyFiles": "deps.zip"}}
        batch = await api.call("POST", "/api/v1/batches",
                               data=form(request, ("main.py", PYSPARK_MAIN), {"deps.zip": deps_zip()}))
        final = await api.wait_for(batch["id"], timeout=150)
        log = await api.full_log(batch["id"])
        assert final["state"] == "FINISHED", (final, log[-30:])
        assert "the answer is 42" in log
        assert final["appId"] and final["appStartTime"] > 0 and final["endTime"] >= final["appStartTime"]
    finally:
        reap_batch_processes(tmp_path / "data")
