"""The Livy batch API (/livy, and the Livy port) over HTTP: ids, states, mapping of Livy's options onto
Spark conf, log paging, kill, errors as {"msg"}, authorization. No Spark runs here: Livy batches are held
in the queue behind a LOCAL batch (BATCHGATE_MAX_RUNNING=1), and log paging is checked on a LOCAL batch,
which the Livy API reaches by its integer id like any other."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.keys import LIVY_PORT
from tests.helpers import Api, basic, info
from tests.test_auth import htpasswd

SLEEPER = ["-c", "import time; time.sleep(120)"]


@pytest.fixture
async def held(start_gateway: Callable[..., Awaitable[Api]], python: str) -> Api:
    """A gateway (open mode, admin 'admin') whose one running slot is taken: Livy batches stay queued."""
    api = await start_gateway(admin=["admin"], max_running=1)
    blocker = await api.submit(resource=python, args=SLEEPER, name="blocker")
    await api.wait_for(blocker["id"], ("RUNNING",), timeout=20)
    return api


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text("print('hello')\n")
    return path


async def livy_post(api: Api, body: dict[str, Any], path: str = "/livy/batches", expect: int = 201,
                    **kwargs: Any) -> Any:
    return await api.call("POST", path, json=body, expect=expect, **kwargs)


async def kyuubi_view(api: Api, livy_id: int) -> Any:
    page = await api.call("GET", "/api/v1/batches?size=1000")
    matches = [b for b in page["batches"] if info(b, "livyId") == livy_id]
    assert len(matches) == 1, page
    return matches[0]


async def test_submit_maps_livy_options_onto_spark_conf(held: Api, job: Path, tmp_path: Path) -> None:
    body = {
        "file": str(job), "name": "etl", "proxyUser": "bob", "args": ["a", 2],
        "driverMemory": "1g", "executorMemory": "512m", "driverCores": "2", "executorCores": 3,
        "numExecutors": "4", "queue": "etl.q", "jars": ["hdfs:///a.jar", "/opt/b.jar"],
        "pyFiles": ["dep.zip"], "files": ["x.csv", "y.csv"], "archives": ["env.tgz#env"],
        "conf": {"spark.sql.shuffle.partitions": 8, "spark.dynamicAllocation.enabled": False},
    }
    async with held.client.post("/livy/batches", json=body, headers=held.headers) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        assert resp.headers["Location"] == f"/livy/batches/{created['id']}"
    assert isinstance(created["id"], int)
    assert created == {
        "id": created["id"], "name": "etl", "owner": "admin", "proxyUser": "bob", "state": "starting",
        "appId": None, "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": [],
    }
    batch = await kyuubi_view(held, created["id"])
    assert batch["batchType"] == "PYSPARK" and batch["user"] == "bob" and batch["name"] == "etl"
    assert batch["batchInfo"]["realUser"] == "admin" and info(batch, "args") == ["a", "2"]
    conf = info(batch, "conf")
    assert {k: v for k, v in conf.items() if k.startswith("spark.")} == {
        "spark.driver.memory": "1g", "spark.executor.memory": "512m", "spark.driver.cores": "2",
        "spark.executor.cores": "3", "spark.executor.instances": "4", "spark.yarn.queue": "etl.q",
        "spark.jars": "hdfs:///a.jar,/opt/b.jar", "spark.submit.pyFiles": "dep.zip",
        "spark.files": "x.csv,y.csv", "spark.archives": "env.tgz#env",
        "spark.sql.shuffle.partitions": "8", "spark.dynamicAllocation.enabled": "false",
    }

    # A jar is a SPARK batch; /batches/ works like /batches; ?doAs= overrides proxyUser.
    jar = tmp_path / "app.jar"
    jar.write_bytes(b"PK")
    spark = await livy_post(held, {"file": str(jar), "className": "com.example.Main", "proxyUser": "bob"},
                            path="/livy/batches/?doAs=carol")
    assert spark["id"] == created["id"] + 1 and spark["proxyUser"] == "carol"
    batch = await kyuubi_view(held, spark["id"])
    assert batch["batchType"] == "SPARK" and batch["user"] == "carol"
    assert batch["batchInfo"]["className"] == "com.example.Main"

    # The same audit as any submit.
    audit = await held.call("GET", "/api/v1/audit?action=submit")
    assert {e["target"] for e in audit["entries"]} >= {batch["id"]}


async def test_get_state_list_and_delete(held: Api, job: Path, python: str) -> None:
    ids = [(await livy_post(held, {"file": str(job), "name": f"n{i}"}))["id"] for i in range(3)]
    local = await held.submit(resource=python, args=["-c", "print(1)"])  # not a Livy type: not listed
    assert info(local, "livyId") not in ids

    # The scheduler writes the wait reason when it next looks at the queue: give it a moment.
    for _ in range(100):
        one = await held.call("GET", f"/livy/batches/{ids[0]}")
        if one["log"]:
            break
        await asyncio.sleep(0.05)
    assert one["id"] == ids[0] and one["state"] == "starting" and one["appId"] is None
    assert set(one) == {"id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"}
    assert one["log"] and len(one["log"]) <= 10, "the wait reason is in the log"
    assert await held.call("GET", f"/livy/batches/{ids[0]}/state") == {"id": ids[0], "state": "starting"}

    page = await held.call("GET", "/livy/batches")
    assert page["from"] == 0 and page["total"] == 3
    assert [s["id"] for s in page["sessions"]] == ids
    page = await held.call("GET", "/livy/batches/?from=1&size=1")
    assert page["from"] == 1 and page["total"] == 3 and [s["id"] for s in page["sessions"]] == [ids[1]]
    page = await held.call("GET", "/livy/batches?size=0")
    assert page["total"] == 3 and page["sessions"] == []

    # DELETE answers {"msg": "deleted"}, also for a batch that has already ended.
    assert await held.call("DELETE", f"/livy/batches/{ids[1]}") == {"msg": "deleted"}
    assert (await held.call("GET", f"/livy/batches/{ids[1]}/state"))["state"] == "killed"
    assert await held.call("DELETE", f"/livy/batches/{ids[1]}") == {"msg": "deleted"}
    other = held.as_user("alice")
    status, body = await other.status_of("DELETE", f"/livy/batches/{ids[2]}")
    assert status == 403 and set(body) == {"msg"}, body
    assert (await other.call("GET", "/livy/batches"))["total"] == 0, "alice sees only her own"


async def test_states_and_log_paging(start_gateway: Callable[..., Awaitable[Api]], python: str) -> None:
    api = await start_gateway(admin=["admin"])
    program = "import sys\nfor i in range(250):\n    print(f'line-{i}')\nsys.exit(int(sys.argv[1]))\n"
    done = await api.submit(resource=python, args=["-c", program, "0"])
    failed = await api.submit(resource=python, args=["-c", program, "3"])
    sleeping = await api.submit(resource=python, args=SLEEPER)
    await api.wait_for(done["id"])
    await api.wait_for(failed["id"])
    await api.wait_for(sleeping["id"], ("RUNNING",), timeout=20)
    lid = {k: info(b, "livyId") for k, b in (("done", done), ("failed", failed), ("sleeping", sleeping))}

    async def state(key: str) -> str:
        body = await api.call("GET", f"/livy/batches/{lid[key]}/state")
        return str(body["state"])

    assert (await state("done"), await state("failed"), await state("sleeping")) == ("success", "dead", "running")
    await api.call("DELETE", f"/livy/batches/{lid['sleeping']}")
    await api.wait_for(sleeping["id"])
    assert await state("sleeping") == "killed"

    full = await api.full_log(done["id"])
    total = len(full)
    assert total > 250

    async def page(query: str) -> Any:
        return await api.call("GET", f"/livy/batches/{lid['done']}/log{query}")

    body = await page("")
    assert body == {"id": lid["done"], "from": total - 100, "total": total, "log": full[-100:]}, "tail by default"
    assert (await page("?from=0&size=10"))["log"] == full[:10]
    assert (await page("?from=240&size=5"))["log"] == full[240:245]
    assert await page(f"?from={total}&size=100") == {"id": lid["done"], "from": total, "total": total, "log": []}
    assert (await page(f"?from={total + 100}"))["log"] == []
    assert (await page("?size=-1"))["log"] == full
    assert (await page("?from=5&size=-1"))["log"] == full[5:]
    body = await page("?from=-7&size=3")
    assert body["from"] == total - 3 and body["log"] == full[-3:]
    assert (await page("?size=0"))["log"] == []
    batch = await api.call("GET", f"/livy/batches/{lid['done']}")
    assert batch["log"] == full[-10:] and batch["appId"].startswith("local-")
    status, body = await api.status_of("GET", f"/livy/batches/{lid['done']}/log?size=ten")
    assert status == 400 and body["msg"].startswith("size:"), body


@pytest.mark.parametrize(("body", "field"), [
    ({}, "file"),
    ({"file": ""}, "file"),
    ({"file": "/nonexistent/x.py"}, "file"),
    ({"file": "JOB", "driverCores": "many"}, "driverCores"),
    ({"file": "JOB", "numExecutors": 0}, "numExecutors"),
    ({"file": "JOB", "executorCores": True}, "executorCores"),
    ({"file": "JOB", "driverMemory": "lots"}, "driverMemory"),
    ({"file": "JOB", "queue": "a b"}, "queue"),
    ({"file": "JOB", "jars": ["a.jar,b.jar"]}, "jars"),
    ({"file": "JOB", "jars": "a.jar"}, "jars"),
    ({"file": "JOB", "args": None}, "args"),
    ({"file": "JOB", "conf": {"kyuubi.batch.id": "nope"}}, "conf"),
    ({"file": "JOB", "name": "x\x01"}, "name"),
    ({"file": "JOB", "proxyUser": "bob"}, "proxyUser"),  # alice may not act as bob
])
async def test_bad_input_is_400_naming_the_field(start_gateway: Callable[..., Awaitable[Api]], job: Path,
                                                body: dict[str, Any], field: str) -> None:
    api = (await start_gateway(admin=["admin"])).as_user("alice")
    if body.get("file") == "JOB":
        body = {**body, "file": str(job)}
    status, answer = await api.status_of("POST", "/livy/batches", json=body)
    assert status in (400, 403) and set(answer) == {"msg"}, (status, answer)
    assert answer["msg"].startswith(f"{field}"), answer
    if field == "proxyUser":
        status, answer = await api.status_of("POST", "/livy/batches?doAs=bob", json={"file": str(job)})
        assert status == 403 and answer["msg"].startswith("doAs:"), answer


async def test_errors_are_msg_bodies(api: Api) -> None:
    for method, path, expected in (
        ("GET", "/livy/batches/12345", 404), ("GET", "/livy/batches/12345/state", 404),
        ("GET", "/livy/batches/12345/log", 404), ("DELETE", "/livy/batches/12345", 404),
        ("GET", "/livy/batches/99999999999999999999999", 404), ("GET", "/livy/batches/-1", 404),
        ("GET", "/livy/batches/abc", 400), ("GET", "/livy/nothing", 404), ("PUT", "/livy/batches", 405),
        ("GET", "/livy/batches?size=x", 400), ("GET", "/livy/batches?from=-1", 400),
    ):
        status, body = await api.status_of(method, path)
        assert status == expected and isinstance(body, dict) and set(body) == {"msg"}, (method, path, status, body)
    status, body = await api.status_of("GET", "/livy/batches/12345")
    assert body == {"msg": "Session '12345' not found."}
    for raw in (b"", b"{", b"[1]"):
        status, body = await api.status_of("POST", "/livy/batches", data=raw,
                                           headers={"Content-Type": "application/json"})
        assert status == 400 and body["msg"].startswith("body:"), body
    status, body = await api.status_of("GET", "/api/v1/batches/nope")
    assert "message" in body, "the Kyuubi API keeps its own error shape"


async def test_authentication_covers_livy(start_gateway: Callable[..., Awaitable[Api]], tmp_path: Path) -> None:
    users = htpasswd(tmp_path / "users", {"alice": "a-pass"})
    api = await start_gateway(users_file=users, engines=["SPARK", "PYSPARK"], livy_port=0)
    port = api.app[LIVY_PORT]
    assert port
    for base in (str(api.client.make_url("/livy")), f"http://127.0.0.1:{port}"):
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/batches") as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
                assert set(await resp.json()) == {"msg"}
            async with http.get(base + "/batches", headers=basic("alice", "wrong")) as resp:
                assert resp.status == 401
            async with http.get(base + "/batches", headers=basic("alice", "a-pass")) as resp:
                assert resp.status == 200 and await resp.json() == {"from": 0, "total": 0, "sessions": []}
    async with api.client.get("/healthz") as resp:
        assert resp.status == 200


async def test_livy_port_serves_the_api_at_its_root(start_gateway: Callable[..., Awaitable[Api]],
                                                   job: Path) -> None:
    api = await start_gateway(admin=["admin"], livy_port=0, max_running=1, engines=["PYSPARK", "LOCAL"])
    blocker = await api.submit(resource=sys.executable, args=SLEEPER)
    await api.wait_for(blocker["id"], ("RUNNING",), timeout=20)
    root = f"http://127.0.0.1:{api.app[LIVY_PORT]}"
    async with aiohttp.ClientSession(headers=basic("admin")) as http:
        for path in ("/batches", "/batches/"):
            async with http.post(root + path, json={"file": str(job)}) as resp:
                assert resp.status == 201, await resp.text()
                created = await resp.json()
                assert resp.headers["Location"] == f"/batches/{created['id']}"
        async with http.get(f"{root}/batches/{created['id']}") as resp:
            assert (await resp.json())["state"] == "starting"
        async with http.get(root + "/batches") as resp:
            assert (await resp.json())["total"] == 2
        async with http.get(root + "/nothing") as resp:
            assert resp.status == 404 and set(await resp.json()) == {"msg"}
        async with http.delete(f"{root}/batches/{created['id']}") as resp:
            assert await resp.json() == {"msg": "deleted"}
    # The same batches through the main port.
    assert (await api.call("GET", "/livy/batches"))["total"] == 2
