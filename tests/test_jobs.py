"""Jobs and runs over HTTP with real LOCAL processes: a file proves order and exactly-once."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api

TERMINAL_RUN = ("SUCCEEDED", "FAILED", "KILLED")


def node(
    node_id: str, marker: Path, deps: list[str] | None = None, *, code: str = "", sleep: float = 0.0, fail: bool = False
) -> dict[str, Any]:
    program = (
        "import os, sys, time\n"
        f"time.sleep({sleep})\n"
        f"{code}\n"
        f"open({str(marker)!r}, 'a').write({node_id!r} + '\\n')\n"
        f"sys.exit({1 if fail else 0})\n"
    )
    return {
        "id": node_id,
        "dependsOn": deps or [],
        "request": {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", program]},
    }


async def create_job(api: Api, name: str, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.call("POST", "/api/v1/jobs", json={"name": name, "nodes": nodes, **extra})
    return result


async def wait_run(api: Api, run_id: str, states: tuple[str, ...] = TERMINAL_RUN, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await api.call("GET", f"/api/v1/runs/{run_id}")
        if run["state"] in states:
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run still {run['state']}: {run}")
        await asyncio.sleep(0.1)


def lines(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


async def test_diamond_runs_in_order_exactly_once(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "order.txt"
    job = await create_job(
        api,
        "diamond",
        [
            node("a", marker),
            node("b", marker, ["a"], sleep=0.3),
            node("c", marker, ["a"]),
            node("d", marker, ["b", "c"]),
        ],
        description="a diamond",
    )
    assert job["version"] == 1 and job["owner"] == "admin"
    graph = {n["id"]: (n["in"], n["out"]) for n in job["nodes"]}
    assert graph == {"a": ([], ["b", "c"]), "b": (["a"], ["d"]), "c": (["a"], ["d"]), "d": (["b", "c"], [])}
    run = await api.call("POST", "/api/v1/jobs/diamond/runs", json={})
    assert run["state"] in ("RUNNING", "PREPARING") and run["trigger"] == "API"
    final = await wait_run(api, run["id"])
    assert final["state"] == "SUCCEEDED"
    order = lines(marker)
    assert sorted(order) == ["a", "b", "c", "d"] and order[0] == "a" and order[-1] == "d"
    nodes = {n["id"]: n for n in final["nodes"]}
    assert all(n["state"] == "SUCCEEDED" and n["batchId"] for n in nodes.values())
    assert nodes["d"]["startTime"] >= max(nodes["b"]["endTime"], nodes["c"]["endTime"])
    batch = await api.get(nodes["b"]["batchId"])
    assert batch["batchInfo"]["runId"] == run["id"] and batch["batchInfo"]["nodeId"] == "b"
    log = await api.call("GET", f"/api/v1/runs/{run['id']}/nodes/c/log?size=100")
    assert any("launched pid" in row for row in log["logRowSet"])


async def test_independent_branches_run_in_parallel(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    code = f"open({str(tmp_path / 'starts.txt')!r}, 'a').write(str(time.time()) + '\\n')"
    await create_job(api, "fan", [node(f"n{i}", marker, code=code, sleep=1.0) for i in range(4)])
    run = await api.call("POST", "/api/v1/jobs/fan/runs")
    await wait_run(api, run["id"])
    starts = sorted(float(x) for x in (tmp_path / "starts.txt").read_text().split())
    assert starts[-1] - starts[0] < 1.0, "all four started before the first one finished"


@pytest.mark.parametrize(
    ("action", "expect"),
    [
        (
            "FINISH_CURRENTLY_RUNNING",
            {"bad": "FAILED", "slow": "SUCCEEDED", "after_bad": "CANCELLED", "after_slow": "CANCELLED"},
        ),
        ("CANCEL_ALL", {"bad": "FAILED", "slow": "CANCELLED", "after_bad": "CANCELLED", "after_slow": "CANCELLED"}),
        (
            "FINISH_ALL_POSSIBLE",
            {"bad": "FAILED", "slow": "SUCCEEDED", "after_bad": "CANCELLED", "after_slow": "SUCCEEDED"},
        ),
    ],
)
async def test_failure_actions(api: Api, tmp_path: Path, action: str, expect: dict[str, str]) -> None:
    marker = tmp_path / "m.txt"
    name = f"fail-{action.lower()}"
    await create_job(
        api,
        name,
        [
            node("bad", marker, fail=True),
            node("slow", marker, sleep=2.0),
            node("after_bad", marker, ["bad"]),
            node("after_slow", marker, ["slow"]),
        ],
        failureAction=action,
    )
    run = await api.call("POST", f"/api/v1/jobs/{name}/runs")
    final = await wait_run(api, run["id"])
    assert final["state"] == "FAILED"
    assert {n["id"]: n["state"] for n in final["nodes"]} == expect
    ran = set(lines(marker))
    assert "after_bad" not in ran
    assert ("after_slow" in ran) == (action == "FINISH_ALL_POSSIBLE")


async def test_retry_after_fixing_a_variable(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    check = "if '${mode}' != 'good': sys.exit('bad mode ${mode}')"
    await create_job(
        api,
        "retry-me",
        [
            node("first", marker),
            node("check", marker, ["first"], code=check),
            node("last", marker, ["check"]),
        ],
        variables={"mode": "bad"},
    )
    run = await api.call("POST", "/api/v1/jobs/retry-me/runs")
    failed = await wait_run(api, run["id"])
    assert failed["state"] == "FAILED"
    assert {n["id"]: n["state"] for n in failed["nodes"]} == {
        "first": "SUCCEEDED",
        "check": "FAILED",
        "last": "CANCELLED",
    }
    retried = await api.call("POST", f"/api/v1/runs/{run['id']}/retry", json={"variables": {"mode": "good"}})
    assert retried["attempt"] == 2
    final = await wait_run(api, run["id"])
    assert final["state"] == "SUCCEEDED" and final["variables"]["mode"] == "good"
    nodes = {n["id"]: n for n in final["nodes"]}
    assert nodes["first"]["attempt"] == 1 and nodes["check"]["attempt"] == 2 and nodes["last"]["attempt"] == 2
    assert collections.Counter(lines(marker)) == {"first": 1, "check": 1, "last": 1}, "succeeded nodes are kept"
    status, _payload = await api.status_of("POST", f"/api/v1/runs/{run['id']}/retry")
    assert status == 409


async def test_variables_and_disabled_nodes(api: Api, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    say = {
        "id": "say",
        "request": {
            "batchType": "LOCAL",
            "resource": sys.executable,
            "args": ["-c", f"open({str(out)!r}, 'w').write('${{greeting}}, ${{who}}')"],
        },
    }
    skip = node("skip", tmp_path / "never.txt")
    await create_job(
        api, "vars", [skip, {**say, "dependsOn": ["skip"]}], variables={"greeting": "hello", "who": "nobody"}
    )
    run = await api.call("POST", "/api/v1/jobs/vars/runs", json={"variables": {"who": "world"}, "disabled": ["skip"]})
    final = await wait_run(api, run["id"])
    assert final["state"] == "SUCCEEDED"
    assert {n["id"]: n["state"] for n in final["nodes"]} == {"skip": "SKIPPED", "say": "SUCCEEDED"}
    assert out.read_text() == "hello, world" and not (tmp_path / "never.txt").exists()
    for body, text in (({"variables": {"nope": "1"}}, "unknown variable"), ({"disabled": ["ghost"]}, "ghost")):
        status, payload = await api.status_of("POST", "/api/v1/jobs/vars/runs", json=body)
        assert status == 400 and text in payload["message"]


async def test_pause_and_resume_a_run(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    await create_job(api, "chain", [node("one", marker, sleep=1.0), node("two", marker, ["one"])])
    run = await api.call("POST", "/api/v1/jobs/chain/runs")
    paused = await api.call("POST", f"/api/v1/runs/{run['id']}/pause")
    assert paused["state"] == "PAUSED"
    await asyncio.sleep(2.0)
    current = await api.call("GET", f"/api/v1/runs/{run['id']}")
    states = {n["id"]: n["state"] for n in current["nodes"]}
    assert states == {"one": "SUCCEEDED", "two": "READY"}, "the running node finished, nothing new started"
    resumed = await api.call("POST", f"/api/v1/runs/{run['id']}/resume")
    assert resumed["state"] == "RUNNING"
    assert (await wait_run(api, run["id"]))["state"] == "SUCCEEDED"
    assert lines(marker) == ["one", "two"]


async def test_cancel_a_run(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    await create_job(api, "long", [node("slow", marker, sleep=30), node("next", marker, ["slow"])])
    run = await api.call("POST", "/api/v1/jobs/long/runs")
    await wait_run(api, run["id"], ("RUNNING",))
    for _ in range(100):
        current = await api.call("GET", f"/api/v1/runs/{run['id']}")
        if current["nodes"][0]["state"] == "RUNNING":
            break
        await asyncio.sleep(0.1)
    canceled = await api.call("POST", f"/api/v1/runs/{run['id']}/cancel")
    assert canceled["state"] == "KILLED"
    final = await wait_run(api, run["id"])
    for _ in range(100):
        final = await api.call("GET", f"/api/v1/runs/{run['id']}")
        if all(n["state"] == "CANCELLED" for n in final["nodes"]):
            break
        await asyncio.sleep(0.1)
    assert {n["id"]: n["state"] for n in final["nodes"]} == {"slow": "CANCELLED", "next": "CANCELLED"}
    batch = await api.get(final["nodes"][0]["batchId"])
    assert batch["state"] == "CANCELED"
    assert lines(marker) == []


async def test_updated_since_and_event_stream(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    await create_job(api, "events", [node("a", marker), node("b", marker, ["a"], sleep=0.3), node("c", marker, ["b"])])
    run = await api.call("POST", "/api/v1/jobs/events/runs")
    events: list[tuple[str, dict[str, Any]]] = []
    ids: list[int] = []
    async with api.client.get(f"/api/v1/runs/{run['id']}/events", headers=api.headers) as resp:
        assert resp.status == 200
        current: dict[str, str] = {}
        async for raw in resp.content:
            text = raw.decode().rstrip("\n")
            if not text:
                if current.get("event") in ("run", "node"):
                    events.append((current["event"], json.loads(current["data"])))
                    ids.append(int(current["id"]))
                elif current.get("event") == "end":
                    end = json.loads(current["data"])
                current = {}
            elif not text.startswith(":"):
                key, _, value = text.partition(": ")
                current[key] = value
    assert end["state"] == "SUCCEEDED" and ids == sorted(ids)
    per_node: dict[str, list[str]] = collections.defaultdict(list)
    for kind, data in events:
        if kind == "node":
            per_node[data["node"]].append(data["state"])
    for node_id in ("a", "b", "c"):
        assert per_node[node_id][0] == "QUEUED" and per_node[node_id][-1] == "SUCCEEDED", per_node
    assert [d["state"] for k, d in events if k == "run"][-1] == "SUCCEEDED"
    order = [d["node"] for k, d in events if k == "node" and d["state"] == "SUCCEEDED"]
    assert order == ["a", "b", "c"]
    final = await api.call("GET", f"/api/v1/runs/{run['id']}")
    b_end = next(n for n in final["nodes"] if n["id"] == "b")["updateTime"]
    changed = await api.call("GET", f"/api/v1/runs/{run['id']}?updatedSince={b_end - 1}")
    assert "b" in [n["id"] for n in changed["nodes"]] and "a" not in [n["id"] for n in changed["nodes"]]
    later = await api.call(
        "GET", f"/api/v1/runs/{run['id']}?updatedSince={max(n['updateTime'] for n in final['nodes'])}"
    )
    assert later["nodes"] == []


async def test_history_listing_and_versions(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "m.txt"
    await create_job(api, "hist", [node("x", marker)])
    updated = await api.call("PUT", "/api/v1/jobs/hist", json={"nodes": [node("x", marker), node("y", marker, ["x"])]})
    assert updated["version"] == 2
    runs = [await api.call("POST", "/api/v1/jobs/hist/runs") for _ in range(2)]
    for run in runs:
        assert run["version"] == 2
        await wait_run(api, run["id"])
    history = await api.call("GET", "/api/v1/jobs/hist/runs?size=1")
    assert history["total"] == 2 and history["runs"][0]["id"] == runs[1]["id"], "newest first"
    everything = await api.call("GET", "/api/v1/runs?job=hist&state=SUCCEEDED")
    assert everything["total"] == 2
    log = await api.call("GET", "/api/v1/jobs/hist/log")
    assert [e["action"] for e in reversed(log["entries"])] == ["created", "updated", "triggered", "triggered"]
    assert all(e["actor"] == "admin" for e in log["entries"])
    listed = await api.call("GET", "/api/v1/jobs")
    assert "hist" in [j["name"] for j in listed["jobs"]] and listed["total"] >= 1
    assert (await api.call("DELETE", "/api/v1/jobs/hist"))["success"] is True
    status, _ = await api.status_of("GET", "/api/v1/jobs/hist")
    assert status == 404
    log = await api.call("GET", "/api/v1/jobs/hist/log")
    assert log["entries"][0]["action"] == "deleted"


@pytest.mark.parametrize(
    ("nodes", "text"),
    [
        (
            [
                {"id": "a", "dependsOn": ["b"], "request": {"batchType": "LOCAL", "resource": "/bin/true"}},
                {"id": "b", "dependsOn": ["c"], "request": {"batchType": "LOCAL", "resource": "/bin/true"}},
                {"id": "c", "dependsOn": ["a"], "request": {"batchType": "LOCAL", "resource": "/bin/true"}},
            ],
            "cycle: a -> b -> c -> a",
        ),
        (
            [{"id": "a", "dependsOn": ["ghost"], "request": {"batchType": "LOCAL", "resource": "/bin/true"}}],
            "unknown node 'ghost'",
        ),
        (
            [
                {"id": "a", "request": {"batchType": "LOCAL", "resource": "/bin/true"}},
                {"id": "a", "request": {"batchType": "LOCAL", "resource": "/bin/true"}},
            ],
            "duplicate node id 'a'",
        ),
        (
            [{"id": "a", "request": {"batchType": "LOCAL", "resource": "/bin/echo", "args": ["${missing}"]}}],
            "${missing}",
        ),
        ([{"id": "a", "request": {"batchType": "NOPE", "resource": "/bin/true"}}], "nodes[a].request.batchType"),
        ([{"id": "a", "request": {"batchType": "LOCAL", "resource": "/no/such"}}], "nodes[a].request.resource"),
        ([], "nodes"),
    ],
)
async def test_job_validation_names_the_problem(api: Api, nodes: list[dict[str, Any]], text: str) -> None:
    status, payload = await api.status_of("POST", "/api/v1/jobs", json={"name": "bad", "nodes": nodes})
    assert status == 400 and text in payload["message"], payload


async def test_job_name_conflicts_and_not_found(api: Api, tmp_path: Path) -> None:
    await create_job(api, "dup", [node("x", tmp_path / "m")])
    status, _payload = await api.status_of(
        "POST", "/api/v1/jobs", json={"name": "dup", "nodes": [node("x", tmp_path / "m")]}
    )
    assert status == 409
    for method, path in (
        ("GET", "/api/v1/jobs/ghost"),
        ("POST", "/api/v1/jobs/ghost/runs"),
        ("GET", "/api/v1/runs/00000000-0000-0000-0000-000000000000"),
    ):
        status, _ = await api.status_of(method, path)
        assert status == 404, path
    status, _ = await api.status_of("GET", "/api/v1/runs/not-a-uuid")
    assert status == 400


async def test_permissions_matrix(start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_auth import htpasswd

    users = htpasswd(tmp_path / "users", {u: "pw" for u in ("owner", "reader", "runner", "writer", "stranger", "root")})
    gate: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL"])
    owner, reader, runner, writer, stranger, root = (
        gate.as_user(u, "pw") for u in ("owner", "reader", "runner", "writer", "stranger", "root")
    )
    marker = tmp_path / "m.txt"
    await create_job(
        owner,
        "shared",
        [node("x", marker)],
        permissions={"reader": ["READ"], "runner": ["READ", "EXECUTE"], "writer": ["READ", "WRITE"]},
    )
    run = await owner.call("POST", "/api/v1/jobs/shared/runs")
    final = await wait_run(owner, run["id"])
    batch_id = final["nodes"][0]["batchId"]
    spec = {
        "nodes": [node("x", marker)],
        "permissions": {"reader": ["READ"], "runner": ["READ", "EXECUTE"], "writer": ["READ", "WRITE"]},
    }
    checks: list[tuple[str, str, dict[str, Any], dict[str, int]]] = [
        ("GET", "/api/v1/jobs/shared", {}, {"reader": 200, "runner": 200, "writer": 200, "stranger": 403}),
        ("GET", f"/api/v1/runs/{run['id']}", {}, {"reader": 200, "runner": 200, "writer": 200, "stranger": 403}),
        ("GET", f"/api/v1/runs/{run['id']}/nodes/x/log", {}, {"reader": 200, "stranger": 403}),
        ("GET", f"/api/v1/batches/{batch_id}/localLog", {}, {"reader": 200, "stranger": 403}),
        ("GET", "/api/v1/jobs/shared/log", {}, {"reader": 200, "stranger": 403}),
        ("POST", "/api/v1/jobs/shared/runs", {}, {"reader": 403, "runner": 200, "writer": 403, "stranger": 403}),
        ("PUT", "/api/v1/jobs/shared", {"json": spec}, {"reader": 403, "runner": 403, "writer": 200, "stranger": 403}),
        ("POST", f"/api/v1/runs/{run['id']}/retry", {}, {"reader": 403, "stranger": 403}),
        ("DELETE", "/api/v1/jobs/shared", {}, {"reader": 403, "runner": 403, "stranger": 403}),
    ]
    for method, path, kwargs, expected in checks:
        for user, want in expected.items():
            api = {"reader": reader, "runner": runner, "writer": writer, "stranger": stranger}[user]
            status, payload = await api.status_of(method, path, **kwargs)
            assert status == want, (method, path, user, status, payload)
    assert (await root.call("GET", "/api/v1/jobs/shared"))["name"] == "shared"
    listed = await stranger.call("GET", "/api/v1/jobs")
    assert listed["total"] == 0
    assert (await reader.call("GET", "/api/v1/jobs"))["total"] == 1
    await wait_run(owner, (await runner.call("GET", "/api/v1/jobs/shared/runs"))["runs"][0]["id"])
