"""Datameer's job commands (docs/datameer.md) over HTTP with real LOCAL processes: status, trigger, stop,
list-running, history, details, the sequential trigger and Delete Job, by number, UUID and path."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import bcrypt

from tests.helpers import Api

TIME = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")


def _job(name: str, python: str, code: str, *, nodes: int = 1, variables: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "variables": variables or {},
            "nodes": [{"id": f"n{i}", "request": {"batchType": "LOCAL", "resource": python, "args": ["-c", code]},
                       "dependsOn": [f"n{i - 1}"] if i else []} for i in range(nodes)]}


async def _wait_run(api: Api, run_id: str, states: tuple[str, ...] = ("SUCCEEDED", "FAILED", "KILLED")) -> Any:
    for _ in range(1200):
        run = await api.call("GET", f"/api/v1/runs/{run_id}")
        if run["state"] in states:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} still {run['state']}")


async def _run_of(api: Api, job: str) -> Any:
    runs = await api.call("GET", f"/api/v1/jobs/{job}/runs")
    return runs["runs"][0]


async def test_status_trigger_history_and_details(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/jobs", json=_job("workbook", python, "print('rows: 7')", nodes=2))
    never = await api.call("GET", "/api/job-execution/workbook/status")
    assert never == {"status": "success", "job-status": "_NONE"}
    fired = await api.call("POST", "/api/job-execution/workbook/trigger")
    assert fired["status"] == "success" and fired["job-execution-user"] == "admin"
    assert fired["job-execution-trigger"] == "RESTAPI" and isinstance(fired["job-execution-id"], int)
    await _wait_run(api, (await _run_of(api, "workbook"))["id"])
    done = await api.call("GET", "/api/job-execution/workbook/status")
    assert done["job-status"] == "COMPLETED" and done["job-execution-id"] == fired["job-execution-id"]
    assert TIME.match(done["start-time"]) and TIME.match(done["stop-time"])
    file_id = done["file-id"]
    by_number = await api.call("GET", f"/api/job-execution/{file_id}/status")
    assert by_number == done
    details = await api.call("GET", f"/rest/job-execution/job-details/{fired['job-execution-id']}")
    assert details["jobStatus"] == "COMPLETED" and details["jobConfigurationId"] == file_id
    assert details["file"]["id"] == file_id and details["file"]["path"] == "/workbook"
    assert details["successCount"] == 2 and details["failureCount"] == 0
    assert details["counters"]["n0.exitCode"] == 0 and details["counters"]["n1.exitCode"] == 0
    by_uuid = await api.call("GET", f"/api/job-execution/{details['file']['uuid']}/status")
    assert by_uuid["file-id"] == file_id
    for path in ("/api/job-execution//workbook/status", "/api/job-execution/%2Fworkbook/status"):
        assert (await api.call("GET", path))["file-id"] == file_id, path
    second = await api.call("POST", f"/api/job-execution/{file_id}/trigger")
    await _wait_run(api, (await _run_of(api, "workbook"))["id"])
    history = await api.call("GET", f"/rest/job-configuration/job-history/{file_id}?start=0&length=10")
    assert history == [{"id": second["job-execution-id"], "jobStatus": "COMPLETED"},
                       {"id": fired["job-execution-id"], "jobStatus": "COMPLETED"}]
    page = await api.call("GET", f"/rest/job-configuration/job-history/{file_id}?start=1&length=1")
    assert page == [{"id": fired["job-execution-id"], "jobStatus": "COMPLETED"}]


async def test_failed_canceled_and_stopped_jobs(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/jobs", json=_job("broken", python, "raise SystemExit(2)"))
    await api.call("POST", "/api/job-execution/broken/trigger")
    await _wait_run(api, (await _run_of(api, "broken"))["id"])
    assert (await api.call("GET", "/api/job-execution/broken/status"))["job-status"] == "ERROR"
    await api.call("POST", "/api/v1/jobs", json=_job("slow", python, "import time; time.sleep(30)"))
    status, body = await api.status_of("POST", "/api/job-execution/slow/stop")
    assert status == 409 and body["status"] == "failure" and "isn't running" in body["reason"]
    fired = await api.call("POST", "/api/job-execution/slow/trigger")
    run = await _run_of(api, "slow")
    await _wait_run(api, run["id"], ("RUNNING",))
    running = await api.call("GET", "/api/job-execution/list-running")
    mine = [r for r in running if r["jobExecutionId"] == fired["job-execution-id"]]
    assert len(mine) == 1 and mine[0]["fileName"] == "slow" and mine[0]["jobStatus"] == "RUNNING"
    assert mine[0]["fileId"] == mine[0]["dapJobConfigurationId"] and mine[0]["startTime"] > 0
    async with api.client.post("/api/job-execution/slow/stop", headers=api.headers) as resp:
        assert resp.status == 200 and await resp.read() == b"", "a stop that worked answers nothing"
    await _wait_run(api, run["id"])
    stopped = await api.call("GET", "/api/job-execution/slow/status")
    assert stopped["job-status"] == "CANCELED" and TIME.match(stopped["stop-time"])
    assert await api.call("GET", "/api/job-execution/list-running") == []


async def test_a_skipped_node_is_completed_with_warnings(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/jobs", json=_job("partial", python, "pass", nodes=2))
    run = await api.call("POST", "/api/v1/jobs/partial/runs", json={"disabled": ["n1"]})
    await _wait_run(api, run["id"])
    assert (await api.call("GET", "/api/job-execution/partial/status"))["job-status"] == "COMPLETED_WITH_WARNINGS"


async def test_sequential_trigger_runs_jobs_one_after_the_other(api: Api, python: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marks = tmp_path / "marks"
    append = "import sys, time; time.sleep(0.3); open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    for name in ("first", "second"):
        body = {"name": name, "variables": {"foo": "none"}, "nodes": [{"id": "n", "request": {
            "batchType": "LOCAL", "resource": python, "args": ["-c", append, str(marks), f"{name}-${{foo}}"]}}]}
        await api.call("POST", "/api/v1/jobs", json=body)
    first = (await api.call("GET", "/api/job-execution/first/status", expect=200))
    assert first["job-status"] == "_NONE"
    ids = []
    for name in ("first", "second"):
        await api.call("POST", f"/api/job-execution/{name}/trigger")
        ids.append((await api.call("GET", f"/api/job-execution/{name}/status"))["file-id"])
        await _wait_run(api, (await _run_of(api, name))["id"])
    marks.write_text("")
    # As Datameer's docs write the body: an unquoted key and a trailing comma.
    plan = await api.call("POST", "/api/job-execution/sequential-trigger",
                          data=f'{{ variables : {{ "foo": "fooValue" }}, "fileIds" : [{ids[1]}, {ids[0]}, ]}}',
                          headers={"Content-Type": "application/json"})
    assert plan["status"] == "success"
    steps = plan["execution-plan"]
    assert [s["job-configuration-name"] for s in steps] == ["second", "first"]
    assert [s["job-configuration-id"] for s in steps] == [ids[1], ids[0]] and all(s["trigger"] for s in steps)
    runs = [await _run_of(api, "second"), await _run_of(api, "first")]
    for run in runs:
        await _wait_run(api, run["id"])
    assert marks.read_text().split() == ["second-fooValue", "first-fooValue"], "in order, with the variables"
    earlier = await api.call("GET", f"/api/v1/runs/{runs[0]['id']}")
    later = await api.call("GET", f"/api/v1/runs/{runs[1]['id']}")
    assert earlier["endTime"] <= later["startTime"], "the second run started after the first had ended"
    bad = await api.status_of("POST", "/api/job-execution/sequential-trigger",
                              data=f'{{"fileIds": [{ids[0]}], "variables": {{"nope": "x"}}}}')
    assert bad[0] == 400 and bad[1]["status"] == "failure" and "nope" in bad[1]["reason"]


async def test_a_failed_job_cancels_the_rest_of_its_sequence(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/jobs", json=_job("fails", python, "raise SystemExit(1)"))
    await api.call("POST", "/api/v1/jobs", json=_job("after", python, "print('must not run')"))
    plan = await api.call("POST", "/api/job-execution/sequential-trigger", json={"fileIds": ["fails", "/after"]})
    executions = [s["job-execution-id"] for s in plan["execution-plan"]]
    for execution in executions:
        for _ in range(600):
            details = await api.call("GET", f"/rest/job-execution/job-details/{execution}")
            if details["stopTime"]:
                break
            await asyncio.sleep(0.05)
    first, second = [await api.call("GET", f"/rest/job-execution/job-details/{e}") for e in executions]
    assert first["jobStatus"] == "ERROR" and first["failureCount"] == 1
    assert second["jobStatus"] == "CANCELED" and second["successCount"] == 0 and second["counters"] == {}


async def test_delete_job_removes_the_job_and_its_runs(api: Api, python: str) -> None:
    await api.call("POST", "/api/v1/jobs", json=_job("doomed", python, "pass"))
    fired = await api.call("POST", "/api/job-execution/doomed/trigger")
    await _wait_run(api, (await _run_of(api, "doomed"))["id"])
    file_id = (await api.call("GET", "/api/job-execution/doomed/status"))["file-id"]
    assert await api.call("DELETE", f"/rest/data/{file_id}") == {"status": True}
    status, body = await api.status_of("DELETE", f"/rest/data/{file_id}")
    assert status == 404 and body == {"status": "failure",
                                      "reason": f"Entity of type 'Data' with id '{file_id}' not found."}
    status, body = await api.status_of("GET", f"/rest/job-execution/job-details/{fired['job-execution-id']}")
    assert status == 404 and body["status"] == "failure"
    await api.call("POST", "/api/v1/jobs", json=_job("doomed", python, "pass"))
    again = await api.call("GET", "/api/job-execution/doomed/status")
    assert again == {"status": "success", "job-status": "_NONE"}, "a job made again is a new file"
    assert (await api.status_of("GET", f"/api/job-execution/{file_id}/status"))[0] == 404
    log = await api.call("GET", "/api/v1/jobs/doomed/log")
    assert any(e["action"] == "deleted" and e["detail"] == {"runsRemoved": 1} for e in log["entries"])


async def test_unknown_and_forbidden_files(start_gateway, tmp_path, python: str) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users"
    users.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                             for u, p in (("alice", "a"), ("bob", "b"))))
    api: Api = await start_gateway(users_file=users, engines=["LOCAL"])
    alice, bob = api.as_user("alice", "a"), api.as_user("bob", "b")
    await alice.call("POST", "/api/v1/jobs", json=_job("private", python, "pass"))
    for path in ("/api/job-execution/404/status", "/api/job-execution/nothing/status",
                 "/api/job-execution/9c1b0ee2-40a4-4a39-a5d0-5b4e8c1d3f55/status"):
        status, body = await alice.status_of("GET", path)
        assert status == 404 and body["status"] == "failure"
        assert body["reason"].startswith("File doesn't exist or isn't accessible with current permissions")
    status, body = await bob.status_of("POST", "/api/job-execution/private/trigger")
    assert status == 403 and body["reason"].startswith("File doesn't exist or isn't accessible")
    status, body = await api.as_user("bob", "wrong").status_of("GET", "/api/job-execution/list-running")
    assert status == 401 and body["status"] == "failure"
    status, body = await bob.status_of("GET", "/rest/job-configuration/job-history/private?start=-1")
    assert status == 400 and "start" in body["reason"]
