"""Every curl example of Datameer's "REST API Job Commands" page (/work/shared/seeds 002), transcribed as
written, against a live gateway: each gets an answer of the shape the page documents.

Replaced placeholders: `<username>:<password>` (`<user>:<password>`), `<Datameer-serverIP>:<port-number>`,
and the ids: `<file-id>|<uuid>|<path>` (the page's choice of three; each form is run), the configuration,
execution and data ids, and the sequential trigger's file id 4. The sequential trigger example names no
URL: the test adds the gateway's (`/api/job-execution/sequential-trigger`, docs/datameer.md) after it.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import basic
from tests.live_gateway import live_gateway
from tests.seed_curl import CurlAnswer, run_curl

pytestmark = pytest.mark.slow

STATUS = "curl -u <username>:<password> -X GET 'http://<Datameer-serverIP>:<port-number>/api/job-execution/<file-id>|<uuid>|<path>/status'"
HISTORY = "curl -u <username>:<password> -X GET 'http://<Datameer-serverIP>:<port-number>/rest/job-configuration/job-history/<job-configuration-id>?start=0&length=10'"
DETAILS = "curl -u <username>:<password> -X GET 'http://<Datameer-serverIP>:<port-number>/rest/job-execution/job-details/<job-execution-id>'"
RUNNING = "curl -u <username>:<password> -X GET 'http://<Datameer-serverIP>:<port-number>/api/job-execution/list-running'"
TRIGGER = "curl -u <username>:<password> -X POST 'http://<Datameer-serverIP>:<port-number>/api/job-execution/<file-id>|<uuid>|<path>/trigger'"
SEQUENTIAL = """curl -X POST -u <user>:<password> -d '{ variables : { "foo": "fooValue" }, "fileIds" : [4, ]}' -H "Content-Type: application/json\""""
STOP = "curl -u <username>:<password> -X POST 'http://<Datameer-serverIP>:<port-number>/api/job-execution/<file-id>|<uuid>|<path>/stop'"
DELETE = "curl -u <username>:<password> -X DELETE 'http://<Datameer-serverIP>:<port-number>/rest/data/<data-id>'"

TIME = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")
USERS = {"analyst": "secret"}
CREDENTIALS = {"<username>:<password>": "analyst:secret"}


def _ok(answer: CurlAnswer) -> Any:
    assert answer.status == 200, answer.text
    return answer.json()


async def _api(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with session.request(method, url, headers=basic("analyst", "secret"), **kwargs) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _until(session: aiohttp.ClientSession, url: str, states: tuple[str, ...]) -> Any:
    for _ in range(1200):
        body = await _api(session, "GET", url)
        if body["state"] in states:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} still {body['state']}")


async def test_datameer_page_curl_examples(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw, \
            aiohttp.ClientSession() as session:
        server = {"<Datameer-serverIP>:<port-number>": f"127.0.0.1:{gw.port}"}
        base = {**CREDENTIALS, **server}
        api = f"{gw.url}/api/v1"
        await _api(session, "POST", f"{api}/projects", json={"name": "Workbooks"})
        for name, code in (("Workbook1", "import time; print('rows: 7'); time.sleep(1)"),
                           ("apache_log", "print('imported')"), ("categorization", "print('categorized')")):
            await _api(session, "POST", f"{api}/jobs", json={
                "name": name, "project": "Workbooks", "variables": {"foo": "default"},
                "nodes": [{"id": "compute", "request": {"batchType": "LOCAL", "resource": sys.executable,
                                                        "args": ["-c", code, "${foo}"]}}]})

        # Status of a job that never ran, by its path.
        never = _ok(await run_curl(STATUS, {**base, "<file-id>|<uuid>|<path>": "/Workbooks/Workbook1"}))
        assert never == {"status": "success", "job-status": "_NONE"}

        # Trigger it by path, then read its status by number and by UUID while it runs.
        fired = _ok(await run_curl(TRIGGER, {**base, "<file-id>|<uuid>|<path>": "/Workbooks/Workbook1"}))
        assert set(fired) == {"status", "job-execution-id", "job-execution-user", "job-execution-trigger"}
        assert fired["job-execution-user"] == "analyst" and fired["job-execution-trigger"] == "RESTAPI"
        run = (await _api(session, "GET", f"{api}/jobs/Workbook1/runs"))["runs"][0]
        await _until(session, f"{api}/runs/{run['id']}", ("RUNNING",))
        running = _ok(await run_curl(RUNNING, base))
        assert [r["jobExecutionId"] for r in running] == [fired["job-execution-id"]]
        assert set(running[0]) == {"jobStatus", "fileName", "jobName", "fileId", "uuid", "creationDate",
                                   "jobExecutionId", "dapJobConfigurationId", "estimatedTime", "startTime"}
        file_id, file_uuid = running[0]["fileId"], running[0]["uuid"]
        status = _ok(await run_curl(STATUS, {**base, "<file-id>|<uuid>|<path>": str(file_id)}))
        assert status["job-status"] == "RUNNING" and TIME.match(status["start-time"]) and "stop-time" not in status
        assert status["file-id"] == file_id and status["job-execution-id"] == fired["job-execution-id"]
        await _until(session, f"{api}/runs/{run['id']}", ("SUCCEEDED",))
        done = _ok(await run_curl(STATUS, {**base, "<file-id>|<uuid>|<path>": file_uuid}))
        assert done["job-status"] == "COMPLETED" and TIME.match(done["stop-time"])

        history = _ok(await run_curl(HISTORY, {**base, "<job-configuration-id>": str(file_id)}))
        assert history == [{"id": fired["job-execution-id"], "jobStatus": "COMPLETED"}]
        details = _ok(await run_curl(DETAILS, {**base, "<job-execution-id>": str(fired["job-execution-id"])}))
        assert set(details) == {"startTime", "stopTime", "jobStatus", "jobConfigurationId", "file", "successCount",
                                "failureCount", "counters"}
        assert details["file"]["id"] == file_id and details["file"]["uuid"] == file_uuid
        assert details["successCount"] == 1 and details["failureCount"] == 0

        # The sequential trigger: apache_log, then categorization.
        numbers = []
        for name in ("apache_log", "categorization"):
            numbers.append(_ok(await run_curl(TRIGGER, {**base, "<file-id>|<uuid>|<path>": f"/Workbooks/{name}"})))
        ids = []
        for name in ("apache_log", "categorization"):
            status = _ok(await run_curl(STATUS, {**base, "<file-id>|<uuid>|<path>": f"/Workbooks/{name}"}))
            ids.append(status["file-id"])
        sequential = SEQUENTIAL + f" 'http://127.0.0.1:{gw.port}/api/job-execution/sequential-trigger'"
        plan = _ok(await run_curl(sequential, {"<user>:<password>": "analyst:secret", "[4, ]": f"[{ids[0]}, {ids[1]}, ]"}))
        assert plan["status"] == "success"
        assert [(s["job-configuration-name"], s["job-configuration-id"], s["trigger"]) for s in plan["execution-plan"]] \
            == [("apache_log", ids[0], True), ("categorization", ids[1], True)]
        assert all(isinstance(s["job-execution-id"], int) for s in plan["execution-plan"])

        # Stop: a running job answers nothing; one that is not running, a failure.
        slow = await _api(session, "POST", f"{api}/jobs", json={
            "name": "long_import", "nodes": [{"id": "n", "request": {
                "batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}}]})
        await _api(session, "POST", f"{api}/jobs/{slow['name']}/runs", json={})
        stopped = await run_curl(STOP, {**base, "<file-id>|<uuid>|<path>": "long_import"})
        assert stopped.status == 200 and stopped.text == ""
        again = await run_curl(STOP, {**base, "<file-id>|<uuid>|<path>": "long_import"})
        assert again.status == 409 and again.json()["status"] == "failure" and again.json()["reason"]

        # Delete: the job and its runs' records; then Datameer's "not found".
        for _ in range(600):
            if not _ok(await run_curl(RUNNING, base)):
                break
            await asyncio.sleep(0.05)
        gone = _ok(await run_curl(DELETE, {**base, "<data-id>": str(file_id)}))
        assert gone == {"status": True}
        missing = await run_curl(DELETE, {**base, "<data-id>": str(file_id)})
        assert missing.status == 404
        assert missing.json() == {"status": "failure", "reason": f"Entity of type 'Data' with id '{file_id}' not found."}
