"""Projects over HTTP: shared roles, artifacts (good and bad zips), pinned versions, bulk, project log."""

from __future__ import annotations

import io
import stat
import struct
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.helpers import Api, info
from tests.test_auth import htpasswd
from tests.test_jobs import wait_run

USERS = ("pm", "alice", "bob", "carol", "root")


def make_zip(files: dict[str, str | bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name, target in (links or {}).items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(entry, target)
    return buffer.getvalue()


@pytest.fixture
async def team(start_gateway, tmp_path: Path) -> dict[str, Api]:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {u: "pw" for u in USERS})
    gate: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL", "PYSPARK", "SPARK"],
                                    max_artifact_bytes=5_000_000, max_artifact_files=50)
    apis = {u: gate.as_user(u, "pw") for u in USERS}
    project = await apis["pm"].call("POST", "/api/v1/projects", json={
        "name": "etl", "description": "nightly", "members": {"alice": ["WRITE", "EXECUTE"], "bob": ["READ"]}})
    assert project["owner"] == "pm" and project["members"]["bob"] == ["READ"]
    return apis


async def upload(api: Api, project: str, data: bytes, expect: int = 200) -> Any:
    return await api.call("POST", f"/api/v1/projects/{project}/artifacts", data=data,
                          headers={"Content-Type": "application/zip"}, expect=expect)


async def test_shared_project_roles(team: dict[str, Api]) -> None:
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    sleeper = ["-c", "import time; print('alice works', flush=True); time.sleep(60)"]
    batch = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "args": sleeper, "project": "etl"})
    kyuubi_style = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "args": sleeper, "conf": {"batchgate.project": "etl"}})
    assert info(await alice.get(kyuubi_style["id"]), "conf")["batchgate.project"] == "etl"
    await alice.wait_for(batch["id"], ("RUNNING",))
    # bob (READ) reads alice's batch and its log, but may not kill it.
    assert (await bob.get(batch["id"]))["user"] == "alice"
    while "alice works" not in await bob.full_log(batch["id"]):
        pass
    status, payload = await bob.status_of("DELETE", f"/api/v1/batches/{batch['id']}")
    assert status == 403
    listed = await bob.call("GET", "/api/v1/batches?project=etl")
    assert {b["id"] for b in listed["batches"]} == {batch["id"], kyuubi_style["id"]}
    assert {b["id"] for b in (await bob.call("GET", "/api/v1/batches"))["batches"]} >= {batch["id"]}
    # bob may not put work into the project; carol sees nothing at all.
    status, payload = await bob.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "project": "etl"})
    assert status == 403 and "may not put batches into project etl" in payload["message"]
    for method, path in (("GET", f"/api/v1/batches/{batch['id']}"), ("GET", f"/api/v1/batches/{batch['id']}/localLog"),
                         ("DELETE", f"/api/v1/batches/{batch['id']}"), ("GET", "/api/v1/projects/etl"),
                         ("GET", "/api/v1/projects/etl/log"), ("GET", "/api/v1/projects/etl/artifacts")):
        status, _ = await carol.status_of(method, path)
        assert status == 403, (method, path)
    assert (await carol.call("GET", "/api/v1/batches?project=etl"))["total"] == 0
    assert (await carol.call("GET", "/api/v1/projects"))["total"] == 0
    assert (await bob.call("GET", "/api/v1/projects"))["total"] == 1
    status, _ = await carol.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "project": "etl"})
    assert status == 403
    # The project owner acts on everything in it: a project-wide bulk cancel.
    result = await team["pm"].call("PUT", "/api/v1/batches/status", json={"action": "CANCEL", "project": "etl"})
    assert result["matched"] == 2 and result["succeeded"] == 2
    assert (await alice.wait_for(batch["id"], timeout=15))["state"] == "CANCELED"
    # Deleting a project with live work is refused, and says what is live.
    live = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "args": sleeper, "project": "etl"})
    status, payload = await team["pm"].status_of("DELETE", "/api/v1/projects/etl")
    assert status == 409 and live["id"] in payload["message"]
    await alice.kill(live["id"])
    # An enabled schedule of a project's job is live work too.
    await alice.call("POST", "/api/v1/jobs", json={"name": "tick", "project": "etl", "nodes": [
        {"id": "x", "request": {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"]}}]})
    schedule = await team["pm"].call("POST", "/api/v1/schedules", json={"job": "tick", "cron": "0 3 * * *"})
    status, payload = await team["pm"].status_of("DELETE", "/api/v1/projects/etl")
    assert status == 409 and schedule["id"] in payload["message"] and "schedules" in payload["message"]


async def test_artifacts_pinned_versions_and_project_jobs(team: dict[str, Api]) -> None:
    alice, bob = team["alice"], team["bob"]
    v1 = await upload(alice, "etl", make_zip({"tools/say.py": "print('code version one')\n"}))
    v2 = await upload(alice, "etl", make_zip({"tools/say.py": "print('code version two')\n", "README": "x"}))
    assert (v1["version"], v2["version"]) == (1, 2) and len(v2["digest"]) == 64 and v2["uploader"] == "alice"
    listed = await bob.call("GET", "/api/v1/projects/etl/artifacts")
    assert [a["version"] for a in listed["artifacts"]] == [2, 1] and listed["artifacts"][0]["files"] == [
        "tools/say.py", "README"]
    await upload(bob, "etl", make_zip({"a.py": ""}), expect=403)

    pinned = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:tools/say.py@1", "project": "etl"})
    latest = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:tools/say.py", "project": "etl"})
    assert info(latest, "artifact") == {"path": "tools/say.py", "version": 2}
    for batch, text in ((pinned, "code version one"), (latest, "code version two")):
        assert (await alice.wait_for(batch["id"]))["state"] == "FINISHED"
        assert text in await alice.full_log(batch["id"])
    for resource, message in (("artifact:tools/none.py", "not in artifact"), ("artifact:tools/say.py@9", "version 9")):
        status, payload = await alice.status_of("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": resource, "project": "etl"})
        assert status == 400 and message in payload["message"], payload
    status, payload = await alice.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:tools/say.py"})
    assert status == 400 and "needs a project" in payload["message"]

    # A job in the project: bob (READ) reads it and its runs but cannot trigger it.
    job = {"name": "etl-flow", "project": "etl", "nodes": [
        {"id": "one", "request": {"batchType": "LOCAL", "resource": "artifact:tools/say.py@1"}},
        {"id": "two", "dependsOn": ["one"], "request": {"batchType": "LOCAL", "resource": "artifact:tools/say.py"}},
    ]}
    status, _ = await bob.status_of("POST", "/api/v1/jobs", json=job)
    assert status == 403
    await alice.call("POST", "/api/v1/jobs", json=job)
    run = await alice.call("POST", "/api/v1/jobs/etl-flow/runs")
    final = await wait_run(alice, run["id"])
    assert final["state"] == "SUCCEEDED" and final["project"] == "etl"
    log_one = await bob.call("GET", f"/api/v1/runs/{run['id']}/nodes/one/log?size=1000")
    log_two = await bob.call("GET", f"/api/v1/runs/{run['id']}/nodes/two/log?size=1000")
    assert "code version one" in log_one["logRowSet"] and "code version two" in log_two["logRowSet"]
    status, _ = await bob.status_of("POST", "/api/v1/jobs/etl-flow/runs")
    assert status == 403
    assert (await bob.call("GET", "/api/v1/runs?project=etl"))["total"] == 1
    assert (await bob.call("GET", "/api/v1/jobs?project=etl"))["total"] == 1
    assert (await team["carol"].call("GET", "/api/v1/jobs"))["total"] == 0

    history = await team["pm"].call("GET", "/api/v1/projects/etl/log")
    actions = [e["action"] for e in reversed(history["entries"])]
    assert actions[:4] == ["created", "artifact_uploaded", "artifact_uploaded", "job_created"]
    await team["pm"].call("PUT", "/api/v1/projects/etl", json={
        "description": "nightly", "members": {"alice": ["WRITE", "EXECUTE"], "carol": ["READ"]}})
    history = await team["pm"].call("GET", "/api/v1/projects/etl/log?size=2")
    assert {(e["action"], e["detail"]["user"]) for e in history["entries"]} == {
        ("member_added", "carol"), ("member_removed", "bob")}
    assert (await team["carol"].call("GET", "/api/v1/projects/etl"))["name"] == "etl"
    status, _ = await bob.status_of("GET", f"/api/v1/batches/{pinned['id']}")
    assert status == 403, "a removed member loses access at once"


@pytest.mark.parametrize(("files", "links", "message"), [
    ({"../evil.py": "x"}, None, "escapes the archive root"),
    ({"/etc/evil.py": "x"}, None, "escapes the archive root"),
    ({"C:/evil.py": "x"}, None, "escapes the archive root"),
    ({"ok/../../evil.py": "x"}, None, "escapes the archive root"),
    ({"fine.py": "x"}, {"link": "/etc/passwd"}, "symbolic link"),
    ({"bomb.bin": b"\0" * 6_000_000}, None, "zip bomb"),
    ({f"f{i}.py": "" for i in range(60)}, None, "more than the limit of 50"),
])
async def test_bad_zips_are_refused(team: dict[str, Api], tmp_path: Path, files: dict[str, Any],
                                    links: dict[str, str] | None, message: str) -> None:
    alice = team["alice"]
    data = make_zip(files, links=links)
    assert len(data) < 5_000_000, "the bomb is small compressed"
    payload = await upload(alice, "etl", data, expect=400)
    assert message in payload["message"], payload
    assert (await alice.call("GET", "/api/v1/projects/etl/artifacts"))["artifacts"] == []
    assert not (tmp_path / "evil.py").exists() and not Path("/etc/evil.py").exists()


async def test_not_a_zip_and_too_large(team: dict[str, Api]) -> None:
    payload = await upload(team["alice"], "etl", b"this is not a zip at all", expect=400)
    assert "not a zip" in payload["message"]
    payload = await upload(team["alice"], "etl", b"\0" * 5_100_000, expect=413)
    assert "larger than" in payload["message"]
    status, _ = await team["alice"].status_of("POST", "/api/v1/projects/ghost/artifacts", data=make_zip({"a": "b"}))
    assert status == 404


async def test_project_validation(team: dict[str, Api]) -> None:
    pm = team["pm"]
    for body, text in (({"name": "bad name!"}, "name"), ({"name": "x", "members": {"a": ["KING"]}}, "members"),
                       ({"description": "no name"}, "name"), ({"name": "etl"}, "exists")):
        status, payload = await pm.status_of("POST", "/api/v1/projects", json=body)
        assert status in (400, 409) and text in payload["message"], payload
    status, payload = await team["alice"].status_of("PUT", "/api/v1/projects/etl", json={"members": {}})
    assert status == 403, "only ADMIN changes members"
    status, payload = await team["alice"].status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "project": "ghost"})
    assert status == 400 and "unknown project" in payload["message"]


@pytest.mark.slow
async def test_zip_with_pyspark_script_and_local_helper(team: dict[str, Api]) -> None:
    """A two-node job from one artifact: a PYSPARK script feeding a LOCAL helper."""
    alice = team["alice"]
    spark_job = (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.appName('artifact-count').getOrCreate()\n"
        "n = spark.sparkContext.parallelize(range(1000), 2).filter(lambda x: x % 7 == 0).count()\n"
        "print(f'sevens={n}')\n"
        "spark.stop()\n"
    )
    helper = "import sys\nprint('helper ran after spark with', sys.argv[1])\n"
    await upload(alice, "etl", make_zip({"jobs/count.py": spark_job, "bin/helper.py": helper}))
    await alice.call("POST", "/api/v1/jobs", json={"name": "mixed", "project": "etl", "nodes": [
        {"id": "spark", "request": {"batchType": "PYSPARK", "resource": "artifact:jobs/count.py",
                                    "conf": {"spark.master": "local[1]"}}},
        {"id": "helper", "dependsOn": ["spark"],
         "request": {"batchType": "LOCAL", "resource": "artifact:bin/helper.py", "args": ["done"]}},
    ]})
    run = await alice.call("POST", "/api/v1/jobs/mixed/runs")
    final = await wait_run(alice, run["id"], timeout=240)
    assert final["state"] == "SUCCEEDED", final
    spark_log = await alice.call("GET", f"/api/v1/runs/{run['id']}/nodes/spark/log?size=10000")
    assert "sevens=143" in spark_log["logRowSet"]
    helper_log = await alice.call("GET", f"/api/v1/runs/{run['id']}/nodes/helper/log?size=1000")
    assert "helper ran after spark with done" in helper_log["logRowSet"]


# --- archives that would pass a look at the directory and still not unpack ------------------------------


def _patch_headers(data: bytes, name: bytes, *, offset: int, value: bytes) -> bytes:
    """Overwrite a field of an entry's local and central headers (offsets from the local header's start;
    the central header has the same field 2 bytes later, after 'version made by')."""
    out = bytearray(data)
    for signature, shift in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        start = 0
        while (at := out.find(signature, start)) >= 0:
            name_at = at + (30 if shift == 0 else 46)
            if out[name_at:name_at + len(name)] == name:
                out[at + offset + shift:at + offset + shift + len(value)] = value
            start = at + 4
    return bytes(out)


def _rename(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new)
    return data.replace(old, new)  # in both headers: names are stored twice


def _bad_crc() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("ok.py", "print('ok')\n")
        archive.writestr("job.py", "print('the original content')\n")
    return buffer.getvalue().replace(b"the original content", b"the altered! content")


def _understated() -> bytes:
    data = make_zip({"ok.py": "print('ok')\n", "big.py": "x = 1\n" * 1000})
    return _patch_headers(data, b"big.py", offset=22, value=struct.pack("<I", 100))  # 6000 bytes, says 100


def _dir_and_file() -> bytes:
    return make_zip({"a": "I am a file", "a/b.py": "print(1)\n"})


def _duplicate() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, and writes it
        archive.writestr("job.py", "print(1)\n")
        archive.writestr("job.py", "print(2)\n")
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "message"), [
    (_dir_and_file(), "entry 'a' is a file, and 'a/b.py' needs it to be a directory"),
    (make_zip({"dir/": "", "dir": "a file of the same name"}), "entry 'dir' is a file"),
    (_duplicate(), "entry 'job.py' appears twice"),
    (make_zip({"a.py": "1", "./a.py": "2"}), "entry './a.py' appears twice"),
    (make_zip({"x//y.py": "1", "x/y.py": "2"}), "appears twice"),
    (_bad_crc(), "entry 'job.py' cannot be read: Bad CRC-32"),
    (_understated(), "entry 'big.py' cannot be read"),
    (_rename(make_zip({"evil.shX.txt": "echo"}), b"evil.shX.txt", b"evil.sh\x00.txt"),
     "entry 'evil.sh\\x00.txt' has a NUL or control character in its name"),
    (make_zip({"tab\there.py": "1"}), "entry 'tab\\there.py' has a NUL or control character"),
])
async def test_what_is_accepted_unpacks(team: dict[str, Api], data: bytes, message: str) -> None:
    payload = await upload(team["alice"], "etl", data, expect=400)
    assert message in payload["message"], payload
    assert (await team["alice"].call("GET", "/api/v1/projects/etl/artifacts"))["artifacts"] == []


async def test_an_unpack_failure_at_launch_is_the_batch_diagnostic(team: dict[str, Api], database_url: str) -> None:
    """A stored artifact that can no longer be unpacked (its bytes were damaged at rest: a fault the upload
    check cannot see coming) ends its batch in ERROR, saying so."""
    alice = team["alice"]
    await upload(alice, "etl", make_zip({"job.py": "print('fine')\n" * 50}))
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("select data from artifact_chunks where project = 'etl' and version = 1")
        damaged = stored.replace(b"job.py", b"job.pz", 1)  # the local header no longer matches the directory
        await conn.execute("update artifact_chunks set data = $1 where project = 'etl' and version = 1", damaged)
    finally:
        await conn.close()
    batch = await alice.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": "artifact:job.py", "project": "etl"})
    done = await alice.wait_for(batch["id"])
    assert done["state"] == "ERROR", done
    diagnostic = done["appDiagnostic"]
    assert diagnostic.startswith("launch failed: artifact: ") and "version 1 of project etl" in diagnostic, done
    assert "internal error" not in diagnostic
