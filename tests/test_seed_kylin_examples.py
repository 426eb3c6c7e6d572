"""Every curl example of Kylin's two job API pages (/work/shared/seeds 000 and 001), transcribed as written,
against a live gateway: each gets an answer of the shape its page documents.

The Kylin 5 page's operate example is cut off inside its quoted body; the test closes the quote.
Replaced placeholders: `host:port` (the gateway), the v2 page's `Basic XXXXXXXXX` (ADMIN:KYLIN, the
credentials the v5 page's examples carry), and in the step-output example the job id, since a step
`-03` needs a job with four steps: a run of four nodes (a batch of the LOCAL engine has three).
The v2 page's job id 7cba7f9d-... is kept: the test submits its batch with that id (kyuubi.batch.id).
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.live_gateway import live_gateway
from tests.seed_curl import CurlAnswer, run_curl

pytestmark = pytest.mark.slow

USERS = {"ADMIN": "KYLIN"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ADMIN:KYLIN").decode()}
DOC_JOB = "7cba7f9d-7cd3-44e7-905c-9f88ff5ee838"
DOC_STEP_JOB = "fb479e54-837f-49a2-b457-651fc50be110"

# The Kylin 5 page ("Job Management").
V5_LIST = """
curl -X GET \\
'http://host:port/kylin/api/jobs?time_filter=0&page_size=1' \\
-H 'Accept: application/vnd.apache.kylin-v4-public+json' \\
-H 'Accept-Language: en' \\
-H 'Authorization: Basic QURNSU46S1lMSU4=' \\
-H 'Content-Type: application/json;charset=utf-8'
"""
V5_OPERATE = """
curl -X PUT \\
'http://host:port/kylin/api/jobs/status' \\
-H 'Accept: application/vnd.apache.kylin-v4-public+json' \\
-H 'Accept-Language: en' \\
-H 'Authorization: Basic QURNSU46S1lMSU4=' \\
-H 'Content-Type: application/json;charset=utf-8' \\
-d '{
"action" : "PAUSE",
"job_ids" : [
"project" : "ssb"
"""
# The page's operate example stops mid-body, inside its quote: no shell could run it. Closing the quote
# is the least that makes it a command; the body it sends, as printed, is not JSON.
V5_OPERATE_CLOSED = V5_OPERATE.rstrip() + "'"

# The Kylin 3/4 page ("Job REST API", v2).
V2_RESUME = """curl -X PUT -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json' -H "Content-Type:application/vnd.apache.kylin-v2+json"  http://host:port/kylin/api/jobs/7cba7f9d-7cd3-44e7-905c-9f88ff5ee838/resume"""
V2_DISCARD = """curl -X PUT -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json'  http://host:port/kylin/api/jobs/7cba7f9d-7cd3-44e7-905c-9f88ff5ee838/cancel"""
V2_PAUSE = """curl -X PUT -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json' -H "Content-Type:application/vnd.apache.kylin-v2+json"  http://host:port/kylin/api/jobs/7cba7f9d-7cd3-44e7-905c-9f88ff5ee838/pause"""
V2_DROP = """curl -X DELETE -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json' -H "Content-Type:application/vnd.apache.kylin-v2+json"  http://host:port/kylin/api/jobs/7cba7f9d-7cd3-44e7-905c-9f88ff5ee838/drop"""
V2_STATUS = """curl -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json'  -H "Content-Type:application/vnd.apache.kylin-v2+json" http://host:port/kylin/api/jobs/7cba7f9d-7cd3-44e7-905c-9f88ff5ee838"""
V2_STEP_OUTPUT = """curl -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json' -H "Content-Type:application/vnd.apache.kylin-v2+json"   http://host:port/kylin/api/jobs/fb479e54-837f-49a2-b457-651fc50be110/steps/fb479e54-837f-49a2-b457-651fc50be110-03/output"""
V2_LIST = """curl -X GET -H "Authorization: Basic XXXXXXXXX" -H 'Accept: application/vnd.apache.kylin-v2+json'  -H "Content-Type:application/vnd.apache.kylin-v2+json"  http://host:port/kylin/api/jobs?timeFilter=1&pageOffset=0&pageSize=10&status=&projectName=your_project&jobName=&sortby=last_modify"""

# The fields of the v2 page's response examples.
JOB_FIELDS = {"uuid", "last_modified", "version", "name", "type", "duration", "related_cube", "display_cube_name",
              "related_segment", "exec_start_time", "exec_end_time", "exec_interrupt_time", "mr_waiting", "steps",
              "submitter", "job_status", "progress"}
STEP_FIELDS = {"interruptCmd", "id", "name", "sequence_id", "exec_cmd", "interrupt_cmd", "exec_start_time",
               "exec_end_time", "exec_wait_time", "step_status", "cmd_type", "info", "run_async"}
STATUSES = {"NEW", "PENDING", "RUNNING", "STOPPED", "FINISHED", "ERROR", "DISCARDED"}


def _data(answer: CurlAnswer) -> Any:
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["code"] == "000" and body["msg"] == "", body
    return body["data"]


def _job(data: Any, uuid: str, status: str) -> None:
    assert JOB_FIELDS <= set(data), JOB_FIELDS - set(data)
    assert data["uuid"] == uuid and data["job_status"] == status, data
    assert data["steps"] and all(STEP_FIELDS <= set(s) and s["step_status"] in STATUSES for s in data["steps"])


async def _api(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with session.request(method, url, headers=AUTH, **kwargs) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _wait(session: aiohttp.ClientSession, url: str, field: str, states: tuple[str, ...]) -> Any:
    for _ in range(1200):
        body = await _api(session, "GET", url)
        if body[field] in states:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} still {body[field]}")


async def test_kylin_pages_curl_examples(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=("ADMIN",)) as gw, \
            aiohttp.ClientSession() as session:
        host = {"host:port": f"127.0.0.1:{gw.port}"}
        v2 = {**host, "Basic XXXXXXXXX": AUTH["Authorization"]}
        api = f"{gw.url}/api/v1"
        sleeper = {"batchType": "LOCAL", "resource": sys.executable, "name": "test_kylin_cube",
                   "args": ["-c", "import time; print('building', flush=True); time.sleep(60)"],
                   "conf": {"kyuubi.batch.id": DOC_JOB}}
        await _api(session, "POST", f"{api}/batches", json=sleeper)
        await _wait(session, f"{api}/batches/{DOC_JOB}", "state", ("RUNNING",))

        # Kylin 5: the list, then the operate example (its body, as printed, is not JSON: Kylin's error).
        listed = _data(await run_curl(V5_LIST, host))
        assert listed["total_size"] == 1 and listed["limit"] == 1 and listed["value"][0]["uuid"] == DOC_JOB
        answer = await run_curl(V5_OPERATE_CLOSED, host)
        assert answer.status == 400 and answer.json()["code"] == "999" and "JSON" in answer.json()["msg"]

        # Kylin 3/4: pause, resume, status, discard, drop on the page's job id.
        _job(_data(await run_curl(V2_PAUSE, v2)), DOC_JOB, "STOPPED")
        _job(_data(await run_curl(V2_RESUME, v2)), DOC_JOB, "RUNNING")
        _job(_data(await run_curl(V2_STATUS, v2)), DOC_JOB, "RUNNING")
        discarded = _data(await run_curl(V2_DISCARD, v2))
        assert discarded["uuid"] == DOC_JOB and discarded["job_status"] in ("DISCARDED", "RUNNING")
        await _wait(session, f"{api}/batches/{DOC_JOB}", "state", ("CANCELED",))
        _job(_data(await run_curl(V2_DROP, v2)), DOC_JOB, "DISCARDED")
        gone = await run_curl(V2_STATUS, v2)
        assert gone.status == 404 and gone.json()["code"] == "999"

        # The list example: the project your_project has no jobs yet.
        empty = _data(await run_curl(V2_LIST, v2))
        assert empty == {"size": 0, "jobs": []}
        await _api(session, "POST", f"{api}/projects", json={"name": "your_project"})
        built = await _api(session, "POST", f"{api}/batches", json={
            "batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"], "project": "your_project"})
        await _wait(session, f"{api}/batches/{built['id']}", "state", ("FINISHED",))
        one = _data(await run_curl(V2_LIST, v2))
        assert one["size"] == 1
        _job(one["jobs"][0], built["id"], "FINISHED")

        # Step output: the fourth step of a four-node run.
        nodes = [{"id": f"step{i}", "request": {"batchType": "LOCAL", "resource": sys.executable,
                                                "args": ["-c", f"print('output of step {i}')"]},
                  "dependsOn": [f"step{i - 1}"] if i else []} for i in range(4)]
        await _api(session, "POST", f"{api}/jobs", json={"name": "cube_build", "nodes": nodes})
        run = await _api(session, "POST", f"{api}/jobs/cube_build/runs", json={})
        await _wait(session, f"{api}/runs/{run['id']}", "state", ("SUCCEEDED",))
        output = _data(await run_curl(V2_STEP_OUTPUT, {**v2, DOC_STEP_JOB: run["id"]}))
        assert set(output) == {"jobId", "cmd_output", "stepId"}
        assert output["stepId"] == f"{run['id']}-03" and "output of step 3" in output["cmd_output"]
