"""Kylin's job API (docs/kylin.md) over HTTP with real LOCAL processes: the v5 list and bulk status
change, the v2 calls on one job (a batch or a run), step output, and Kylin's envelope for errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.helpers import Api, basic

V2 = {"Accept": "application/vnd.apache.kylin-v2+json"}
V5 = {"Accept": "application/vnd.apache.kylin-v4-public+json"}
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(30)\n"


async def _kylin(api: Api, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    status, body = await api.status_of(method, path, **kwargs)
    assert status == expect, f"{method} {path} -> {status} {body}"
    assert isinstance(body, dict) and set(body) >= {"code", "data", "msg"}, body
    assert body["code"] == ("000" if expect == 200 else "999"), body
    return body["data"] if expect == 200 else body


async def test_v5_list_pages_filters_and_sorts(api: Api, python: str) -> None:
    ids = []
    for i in range(3):
        batch = await api.submit(resource=python, args=["-c", f"print({i})"], name=f"cube-{i}")
        ids.append(batch["id"])
    for batch_id in ids:
        await api.wait_for(batch_id)
    data = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=0&page_size=2", headers=V5)
    assert data["total_size"] == 3 and data["limit"] == 2 and data["offset"] == 0
    assert [j["uuid"] for j in data["value"]] == [ids[2], ids[1]], "newest first (reverse defaults to true)"
    page = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=0&page_size=2&page_offset=1", headers=V5)
    assert [j["uuid"] for j in page["value"]] == [ids[0]], "page_offset is a page number"
    job = data["value"][0]
    assert job["job_status"] == "FINISHED" and job["progress"] == 100.0 and job["name"] == "cube-2"
    assert [s["name"] for s in job["steps"][:3]] == ["Queued", "Launching", "Running"]
    assert {s["step_status"] for s in job["steps"]} == {"FINISHED"}
    assert job["steps"][0]["id"] == f"{ids[2]}-00" and job["exec_start_time"] > 0
    by_name = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=4&sort_by=job_name&reverse=false", headers=V5)
    assert [j["name"] for j in by_name["value"]] == ["cube-0", "cube-1", "cube-2"]
    keyed = await _kylin(api, "GET", f"/kylin/api/jobs?time_filter=4&key={ids[1][:8]}", headers=V5)
    assert [j["uuid"] for j in keyed["value"]] == [ids[1]]
    none = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=4&statuses=RUNNING,ERROR", headers=V5)
    assert none["total_size"] == 0
    finished = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=4&statuses=FINISHED", headers=V5)
    assert finished["total_size"] == 3
    bad = await _kylin(api, "GET", "/kylin/api/jobs?time_filter=4&statuses=SLEEPING", expect=400, headers=V5)
    assert "SLEEPING" in bad["msg"]
    missing = await _kylin(api, "GET", "/kylin/api/jobs", expect=400, headers=V5)
    assert "time_filter" in missing["msg"]


async def test_v2_list_by_status_code_project_and_name(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/projects", json={"name": "ssb"})
    done = await api.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": python, "args": ["-c", "pass"], "name": "Sample_Cube", "project": "ssb"})
    await api.wait_for(done["id"])
    running = await api.submit(resource=python, args=["-c", SLEEPER], name="other")
    await api.wait_for(running["id"], ("RUNNING",))
    try:
        data = await _kylin(api, "GET", "/kylin/api/jobs?timeFilter=1&pageOffset=0&pageSize=10&status=4"
                                        "&projectName=ssb&jobName=Sample_Cube&sortby=last_modify", headers=V2)
        assert data["size"] == 1 and [j["uuid"] for j in data["jobs"]] == [done["id"]]
        assert data["jobs"][0]["project"] == "ssb" and data["jobs"][0]["related_cube"] == "Sample_Cube"
        live = await _kylin(api, "GET", "/kylin/api/jobs?timeFilter=4&status=2", headers=V2)
        job = live["jobs"][0]
        assert live["size"] == 1 and job["uuid"] == running["id"] and job["job_status"] == "RUNNING"
        assert [s["step_status"] for s in job["steps"]] == ["FINISHED", "FINISHED", "RUNNING"]
        assert 0 < job["progress"] < 100
        both = await _kylin(api, "GET", "/kylin/api/jobs?timeFilter=4&status=2&status=4&status=", headers=V2)
        assert both["size"] == 2
        bad = await _kylin(api, "GET", "/kylin/api/jobs?timeFilter=4&status=3", expect=400, headers=V2)
        assert "status" in bad["msg"]
    finally:
        await api.kill(running["id"])


async def test_v2_pause_resume_discard_drop_and_get_a_batch(api: Api, python: str) -> None:
    fixed = str(uuid.uuid4())
    await api.submit(resource=python, args=["-c", SLEEPER], conf={"kyuubi.batch.id": fixed})
    await api.wait_for(fixed, ("RUNNING",))
    paused = await _kylin(api, "PUT", f"/kylin/api/jobs/{fixed}/pause", headers=V2)
    assert paused["uuid"] == fixed and paused["job_status"] == "STOPPED"
    assert paused["steps"][2]["step_status"] == "STOPPED"
    resumed = await _kylin(api, "PUT", f"/kylin/api/jobs/{fixed}/resume", headers=V2)
    assert resumed["job_status"] == "RUNNING"
    conflict = await _kylin(api, "DELETE", f"/kylin/api/jobs/{fixed}/drop", expect=409, headers=V2)
    assert "kill it before dropping" in conflict["msg"]
    discarded = await _kylin(api, "PUT", f"/kylin/api/jobs/{fixed}/cancel", headers=V2)
    assert discarded["job_status"] in ("DISCARDED", "RUNNING")
    assert (await api.wait_for(fixed))["state"] == "CANCELED"
    got = await _kylin(api, "GET", f"/kylin/api/jobs/{fixed}", headers=V2)
    assert got["job_status"] == "DISCARDED" and got["steps"][2]["step_status"] == "DISCARDED"
    again = await _kylin(api, "PUT", f"/kylin/api/jobs/{fixed}/cancel", expect=409, headers=V2)
    assert "already CANCELED" in again["msg"]
    dropped = await _kylin(api, "DELETE", f"/kylin/api/jobs/{fixed}/drop", headers=V2)
    assert dropped["uuid"] == fixed and dropped["job_status"] == "DISCARDED"
    gone = await _kylin(api, "GET", f"/kylin/api/jobs/{fixed}", expect=404, headers=V2)
    assert fixed in gone["msg"]
    bad = await _kylin(api, "GET", "/kylin/api/jobs/not-a-job", expect=400, headers=V2)
    assert "not-a-job" in bad["msg"]


async def test_resume_of_a_failed_batch_restarts_it(api: Api, python: str) -> None:
    failed = await api.submit(resource=python, args=["-c", "raise SystemExit(3)"])
    assert (await api.wait_for(failed["id"]))["state"] == "ERROR"
    job = await _kylin(api, "GET", f"/kylin/api/jobs/{failed['id']}", headers=V2)
    assert job["job_status"] == "ERROR" and job["steps"][2]["step_status"] == "ERROR"
    again = await _kylin(api, "PUT", f"/kylin/api/jobs/{failed['id']}/resume", headers=V2)
    assert again["uuid"] != failed["id"], "a failed batch runs again as a new batch"
    assert (await api.get(again["uuid"]))["batchInfo"]["restartOf"] == failed["id"]


async def test_a_run_is_a_job_whose_steps_are_its_nodes(api: Api, python: str) -> None:
    nodes = [{"id": f"n{i}", "request": {"batchType": "LOCAL", "resource": python,
                                         "args": ["-c", f"print('node {i} says hi')"]},
              "dependsOn": [f"n{i - 1}"] if i else []} for i in range(4)]
    await api.call("POST", "/api/v1/jobs", json={"name": "chain", "nodes": nodes})
    run = await api.call("POST", "/api/v1/jobs/chain/runs", json={})
    for _ in range(600):
        run = await api.call("GET", f"/api/v1/runs/{run['id']}")
        if run["state"] in ("SUCCEEDED", "FAILED", "KILLED"):
            break
        await asyncio.sleep(0.05)
    job = await _kylin(api, "GET", f"/kylin/api/jobs/{run['id']}", headers=V2)
    assert job["type"] == "RUN" and job["name"] == "chain" and job["job_status"] == "FINISHED"
    assert [s["name"] for s in job["steps"]] == ["n0", "n1", "n2", "n3"]
    assert [s["id"] for s in job["steps"]][3] == f"{run['id']}-03"
    output = await _kylin(api, "GET", f"/kylin/api/jobs/{run['id']}/steps/{run['id']}-03/output", headers=V2)
    assert output["jobId"] == run["id"] and output["stepId"] == f"{run['id']}-03"
    assert "node 3 says hi" in output["cmd_output"]
    missing = await _kylin(api, "GET", f"/kylin/api/jobs/{run['id']}/steps/{run['id']}-04/output", expect=404,
                           headers=V2)
    assert "no step" in missing["msg"]
    wrong = await _kylin(api, "GET", f"/kylin/api/jobs/{run['id']}/steps/{uuid.uuid4()}-00/output", expect=400,
                         headers=V2)
    assert "not a step" in wrong["msg"]
    drop = await _kylin(api, "DELETE", f"/kylin/api/jobs/{run['id']}/drop", expect=409, headers=V2)
    assert "is a run" in drop["msg"]


async def test_v5_bulk_status_change_by_ids_and_by_project(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/projects", json={"name": "ssb"})
    ids = []
    for _ in range(2):
        batch = await api.call("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": python, "args": ["-c", SLEEPER], "project": "ssb"})
        ids.append(batch["id"])
    for batch_id in ids:
        await api.wait_for(batch_id, ("RUNNING",))
    assert await _kylin(api, "PUT", "/kylin/api/jobs/status", headers=V5,
                        json={"action": "PAUSE", "job_ids": ids}) == ""
    assert {(await api.get(i))["state"] for i in ids} == {"PAUSED"}
    assert await _kylin(api, "PUT", "/kylin/api/jobs/status", headers=V5,
                        json={"action": "RESUME", "project": "ssb", "statuses": ["STOPPED"]}) == ""
    assert {(await api.get(i))["state"] for i in ids} == {"RUNNING"}
    assert await _kylin(api, "PUT", "/kylin/api/jobs/status", headers=V5,
                        json={"action": "DISCARD", "project": "ssb"}) == ""
    assert {(await api.wait_for(i))["state"] for i in ids} == {"CANCELED"}
    failed = await _kylin(api, "PUT", "/kylin/api/jobs/status", expect=409, headers=V5,
                          json={"action": "PAUSE", "job_ids": ids})
    assert failed["data"]["matched"] == 2 and failed["data"]["succeeded"] == 0
    empty = await _kylin(api, "PUT", "/kylin/api/jobs/status", expect=400, headers=V5, json={"action": "PAUSE"})
    assert "cannot be empty" in empty["msg"]
    bad = await _kylin(api, "PUT", "/kylin/api/jobs/status", expect=400, headers=V5,
                       data='{"action" : "PAUSE", "job_ids" : [ "project" : "ssb"')
    assert "invalid JSON" in bad["msg"]
    unknown = await _kylin(api, "PUT", "/kylin/api/jobs/status", expect=400, headers=V5,
                           json={"action": "EXPLODE", "project": "ssb"})
    assert "action" in unknown["msg"]


async def test_kylin_authorization_is_the_batch_services(start_gateway, tmp_path, python: str) -> None:  # type: ignore[no-untyped-def]
    import bcrypt

    users = tmp_path / "users"
    users.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                             for u, p in (("ADMIN", "KYLIN"), ("bob", "b"))))
    api: Api = await start_gateway(users_file=users, admin=["ADMIN"], engines=["LOCAL"])
    admin = api.as_user("ADMIN", "KYLIN")
    bob = api.as_user("bob", "b")
    batch = await admin.submit(resource=python, args=["-c", "pass"])
    await admin.wait_for(batch["id"])
    denied = await _kylin(bob, "GET", f"/kylin/api/jobs/{batch['id']}", expect=403, headers=V2)
    assert "another user" in denied["msg"]
    listed = await _kylin(bob, "GET", "/kylin/api/jobs?time_filter=4", headers=V5)
    assert listed["total_size"] == 0, "a user lists only what they may read"
    status, body = await api.status_of("GET", "/kylin/api/jobs?time_filter=4", headers={**basic("bob", "wrong")})
    assert status == 401 and body["code"] == "999" and "invalid" in body["msg"]
    status, body = await api.status_of("PUT", f"/kylin/api/jobs/{batch['id']}/pause",
                                       headers={**basic("bob", "b"), **V2})
    assert status == 403 and body["code"] == "999"
