"""Every curl example of Azkaban's "API Documentation" page (/work/shared/seeds 003), transcribed as written,
against a live gateway: each gets an answer of the shape the page documents.

Replaced placeholders: the servers (`https://localhost:8443`, `https://localhost:8445`,
`http://localhost:8081`, `https://HOST:PORT`) by the gateway's address; the session ids
(`bca1d75d-…`, `XXXXXXXXXXXXXX`, `SESSION_ID`, …) by the one the login example got; the ids that exist
only on the documentation's server (exec ids 297 to 304, `projectId=1`, `scheduleId=1`, `PROJECT_ID`,
`SCHEDULE_ID`) by those of this gateway; `PROJECT_NAME` and `FLOW_NAME` by a project and flow made here.
The slaInfo example ends in a stray `"` (a shell would wait for its closing quote): the test drops it.
The upload example's `-i` prints the headers before the body: the test reads the body after them.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import basic
from tests.live_gateway import live_gateway
from tests.seed_curl import CurlAnswer, run_curl

pytestmark = pytest.mark.slow

GRAPH_PARAM = 'curl -k --get --data "session.id=bca1d75d-6bae-4163-a5b0-378a7d7b5a91&ajax=fetchflowgraph&project=azkaban-test-project&flow=test" https://localhost:8443/manager'
GRAPH_COOKIE = 'curl -k --get -b "azkaban.browser.session.id=bca1d75d-6bae-4163-a5b0-378a7d7b5a91" --data "ajax=fetchflowgraph&project=azkaban-test-project&flow=test" https://localhost:8443/manager'
LOGIN = 'curl -k -X POST --data "action=login&username=azkaban&password=azkaban" https://localhost:8443'
CREATE = 'curl -k -X POST --data "session.id=9089beb2-576d-47e3-b040-86dbdc7f523e&name=aaaa&description=11" https://localhost:8443/manager?action=create'
DELETE = 'curl -k --get --data "session.id=bca1d75d-6bae-4163-a5b0-378a7d7b5a91&delete=true&project=test-delete-project" https://localhost:8443/manager'
UPLOAD = "curl -k -i -X POST --form 'session.id=e7a29776-5783-49d7-afa0-b0e688096b5e' --form 'ajax=upload' --form 'file=@myproject.zip;type=application/zip' --form 'project=MyProject' https://localhost:8443/manager"
FLOWS = 'curl -k --get --data "session.id=6c96e7d8-4df5-470d-88fe-259392c09eea&ajax=fetchprojectflows&project=azkaban-test-project" https://localhost:8443/manager'
GRAPH_TEXTER = 'curl -k --get --data "session.id=bca1d75d-6bae-4163-a5b0-378a7d7b5a91&ajax=fetchflowgraph&project=texter-1-1&flow=test" https://localhost:8445/manager'
EXECUTIONS = 'curl -k --get --data "session.id=6c96e7d8-4df5-470d-88fe-259392c09eea&ajax=fetchFlowExecutions&project=azkaban-test-project&flow=test&start=0&length=3" https://localhost:8443/manager'
RUNNING = 'curl -k --data "session.id=34ba08fd-5cfa-4b65-94c4-9117aee48dda&ajax=getRunning&project=azkaban-test-project&flow=test" https://localhost:8443/executor'
EXECUTE = "curl -k --get --data 'session.id=189b956b-f39f-421e-9a95-e3117e7543c9' --data 'ajax=executeFlow' --data 'project=azkaban-test-project' --data 'flow=test' https://localhost:8443/executor"
CANCEL = 'curl -k --data "session.id=34ba08fd-5cfa-4b65-94c4-9117aee48dda&ajax=cancelFlow&execid=302" https://localhost:8443/executor'
SCHEDULE_ONCE = 'curl -k https://HOST:PORT/schedule -d "ajax=scheduleFlow&projectName=PROJECT_NAME&flow=FLOW_NAME&projectId=PROJECT_ID&scheduleTime=12,00,pm,PDT&scheduleDate=07/22/2014" -b azkaban.browser.session.id=SESSION_ID'
SCHEDULE_RECURRING = 'curl -k https://HOST:PORT/schedule -d "ajax=scheduleFlow&is_recurring=on&period=5w&projectName=PROJECT_NAME&flow=FLOW_NAME&projectId=PROJECT_ID&scheduleTime=12,00,pm,PDT&scheduleDate=07/22/2014" -b azkaban.browser.session.id=SESSION_ID'
SCHEDULE_CRON = 'curl -k -d ajax=scheduleCronFlow -d projectName=wtwt -d flow=azkaban-training --data-urlencode cronExpression="0 23/30 5,7-10 ? * 6#3" -b "azkaban.browser.session.id=XXXXXXXXXXXXXX" http://localhost:8081/schedule'
FETCH_SCHEDULE = 'curl -k --get --data "session.id=XXXXXXXXXXXXXX&ajax=fetchSchedule&projectId=1&flowId=test" http://localhost:8081/schedule'
UNSCHEDULE = 'curl -k https://HOST:PORT/schedule -d "action=removeSched&scheduleId=SCHEDULE_ID" -b azkaban.browser.session.id=SESSION_ID'
SET_SLA = 'curl -k -d "ajax=setSla&scheduleId=1&slaEmails=a@example.com;b@example.com&settings[0]=aaa,SUCCESS,5:00,true,false&settings[1]=bbb,SUCCESS,10:00,false,true" -b "azkaban.browser.session.id=XXXXXXXXXXXXXX" "http://localhost:8081/schedule"'
SLA_INFO = 'curl -k --get --data "session.id=XXXXXXXXXXXXXX&ajax=slaInfo&scheduleId=1" http://localhost:8081/schedule"'
PAUSE = 'curl -k --data "session.id=34ba08fd-5cfa-4b65-94c4-9117aee48dda&ajax=pauseFlow&execid=303" https://localhost:8443/executor'
RESUME = 'curl -k --data "session.id=34ba08fd-5cfa-4b65-94c4-9117aee48dda&ajax=resumeFlow&execid=303" https://localhost:8443/executor'
EXEC_FLOW = 'curl -k --data "session.id=34ba08fd-5cfa-4b65-94c4-9117aee48dda&ajax=fetchexecflow&execid=304" https://localhost:8443/executor'
JOB_LOGS = 'curl -k --data "session.id=9089beb2-576d-47e3-b040-86dbdc7f523e&ajax=fetchExecJobLogs&execid=297&jobId=test-foobar&offset=0&length=100" https://localhost:8443/executor'
EXEC_UPDATE = 'curl -k --data "execid=301&lastUpdateTime=-1&session.id=6668c180-efe7-46a-8dd2-e36508b440d8" https://localhost:8443/executor?ajax=fetchexecflowupdate'

USERS = {"azkaban": "azkaban"}
PY = sys.executable
# The flow `test` of the page's samples: start, then aaa, bbb, ccc and test-foobar, then end, then test.
TEST_FLOW = {
    "flow.properties": f"py={PY}\nnap=0\n",
    "start.job": "type=command\ncommand=${py} -c \"print('starting')\"\n",
    "aaa.job": "type=command\ndependencies=start\ncommand=${py} -c \"print('aaa')\"\n",
    "bbb.job": "type=command\ndependencies=start\ncommand=${py} -c \"print('bbb')\"\n",
    "ccc.job": "type=command\ndependencies=start\ncommand=${py} -c \"import sys, time; time.sleep(float(sys.argv[1]))\" ${nap}\n",
    "test-foobar.job": "type=command\ndependencies=start\ncommand=${py} -c \"print('foobar says hello')\"\n",
    "end.job": "type=command\ndependencies=aaa,bbb,ccc,test-foobar\ncommand=${py} -c \"print('end')\"\n",
    "test.job": "type=command\ndependencies=end\ncommand=${py} -c \"print('test')\"\n",
}


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def ok(answer: CurlAnswer) -> Any:
    assert answer.status == 200, answer.text
    body = answer.json()
    assert "error" not in body, body
    return body


class Setup:
    """What the examples need that the page does not show: projects, their zips, a long execution."""

    def __init__(self, session: aiohttp.ClientSession, url: str, session_id: str) -> None:
        self.session, self.url, self.session_id = session, url, session_id

    async def call(self, path: str, **params: str) -> Any:
        async with self.session.post(f"{self.url}{path}", data={"session.id": self.session_id, **params}) as resp:
            assert resp.status == 200
            return json.loads(await resp.text())

    async def project(self, name: str, files: dict[str, str]) -> str:
        assert (await self.call("/manager", action="create", name=name, description=name))["status"] == "success"
        form = aiohttp.FormData({"session.id": self.session_id, "ajax": "upload", "project": name})
        form.add_field("file", zipped(files), filename="p.zip", content_type="application/zip")
        async with self.session.post(f"{self.url}/manager", data=form) as resp:
            body = json.loads(await resp.text())
        assert "error" not in body, body
        return str(body["projectId"])

    async def until(self, execid: int, statuses: tuple[str, ...]) -> Any:
        for _ in range(1200):
            flow = await self.call("/executor", ajax="fetchexecflow", execid=str(execid))
            if flow["status"] in statuses:
                return flow
            await asyncio.sleep(0.05)
        raise AssertionError(f"execution {execid} still {flow['status']}")


async def test_azkaban_page_curl_examples(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw, aiohttp.ClientSession() as http:
        servers = {"https://localhost:8443": gw.url}
        login = ok(await run_curl(LOGIN, servers))
        assert login["status"] == "success" and set(login) == {"status", "session.id"}
        sid = login["session.id"]
        setup = Setup(http, gw.url, sid)
        pid = await setup.project("azkaban-test-project", TEST_FLOW)
        await setup.project("texter-1-1", TEST_FLOW)
        await setup.project("test-delete-project", {"only.job": "type=command\ncommand=true\n"})
        await setup.project("wtwt", {"azkaban-training.job": f"type=command\ncommand={PY} -c pass\n"})

        def at(*pairs: str) -> dict[str, str]:
            return {**servers, **dict(zip(pairs[::2], pairs[1::2], strict=True))}

        # Sessions, as a parameter and as the cookie: the same answer.
        by_param = ok(await run_curl(GRAPH_PARAM, at("bca1d75d-6bae-4163-a5b0-378a7d7b5a91", sid)))
        by_cookie = ok(await run_curl(GRAPH_COOKIE, at("bca1d75d-6bae-4163-a5b0-378a7d7b5a91", sid)))
        assert by_param == by_cookie
        assert set(by_param) == {"project", "nodes", "flow", "projectId"} and by_param["flow"] == "test"
        nodes = {n["id"]: n for n in by_param["nodes"]}
        assert set(nodes) == {"start", "aaa", "bbb", "ccc", "test-foobar", "end", "test"}
        assert nodes["test"] == {"id": "test", "type": "command", "in": ["end"]}
        assert nodes["start"] == {"id": "start", "type": "command"}
        texter = ok(await run_curl(GRAPH_TEXTER, {"https://localhost:8445": gw.url,
                                                  "bca1d75d-6bae-4163-a5b0-378a7d7b5a91": sid}))
        assert texter["project"] == "texter-1-1" and len(texter["nodes"]) == 7

        # Projects: create, delete, upload (with -i: headers, then the body).
        created = ok(await run_curl(CREATE, at("9089beb2-576d-47e3-b040-86dbdc7f523e", sid)))
        assert created == {"status": "success", "path": "manager?project=aaaa", "action": "redirect"}
        deleted = await run_curl(DELETE, at("bca1d75d-6bae-4163-a5b0-378a7d7b5a91", sid))
        assert deleted.status == 200 and "test-delete-project" in deleted.text
        assert "test-delete-project" not in [p["name"] for p in await _projects(http, gw.url)]
        await setup.call("/manager", action="create", name="MyProject", description="mine")
        (tmp_path / "myproject.zip").write_bytes(zipped({"hello.job": f"type=command\ncommand={PY} -c pass\n"}))
        uploaded = await run_curl(UPLOAD, at("e7a29776-5783-49d7-afa0-b0e688096b5e", sid), cwd=str(tmp_path))
        head, _, body = uploaded.text.partition("\r\n\r\n")
        assert uploaded.status == 200 and head.startswith("HTTP/1.1 200")
        assert json.loads(body) == {"projectId": json.loads(body)["projectId"], "version": "1"}
        flows = ok(await run_curl(FLOWS, at("6c96e7d8-4df5-470d-88fe-259392c09eea", sid)))
        assert flows == {"project": "azkaban-test-project", "projectId": int(pid), "flows": [{"flowId": "test"}]}

        # Executions.
        started = ok(await run_curl(EXECUTE, at("189b956b-f39f-421e-9a95-e3117e7543c9", sid)))
        first = started["execid"]
        assert started == {"message": f"Execution submitted successfully with exec id {first}",
                           "project": "azkaban-test-project", "flow": "test", "execid": first}
        await setup.until(first, ("SUCCEEDED", "FAILED", "KILLED"))
        listed = ok(await run_curl(EXECUTIONS, at("6c96e7d8-4df5-470d-88fe-259392c09eea", sid)))
        assert listed["total"] == 1 and listed["from"] == 0 and listed["length"] == 3
        assert set(listed["executions"][0]) == {"startTime", "submitUser", "status", "submitTime", "execId",
                                                "projectId", "endTime", "flowId"}
        assert listed["executions"][0]["status"] == "SUCCEEDED" and listed["executions"][0]["submitUser"] == "azkaban"
        flow = ok(await run_curl(EXEC_FLOW, at("34ba08fd-5cfa-4b65-94c4-9117aee48dda", sid, "execid=304",
                                               f"execid={first}")))
        assert {"attempt", "submitUser", "updateTime", "status", "submitTime", "projectId", "flow", "endTime",
                "type", "nestedId", "startTime", "id", "project", "nodes", "flowId", "execid"} == set(flow)
        assert flow["status"] == "SUCCEEDED" and {n["status"] for n in flow["nodes"]} == {"SUCCEEDED"}
        assert next(n for n in flow["nodes"] if n["id"] == "end")["in"] == ["aaa", "bbb", "ccc", "test-foobar"]
        update = ok(await run_curl(EXEC_UPDATE, at("6668c180-efe7-46a-8dd2-e36508b440d8", sid, "execid=301",
                                                   f"execid={first}")))
        assert {"id", "startTime", "attempt", "status", "updateTime", "nodes", "flow", "endTime"} == set(update)
        assert set(update["nodes"][0]) == {"attempt", "startTime", "id", "updateTime", "status", "endTime"}

        # A long execution (ccc naps): getRunning, pause, resume, cancel.
        second = (await setup.call("/executor", ajax="executeFlow", project="azkaban-test-project", flow="test",
                                   **{"flowOverride[nap]": "60"}))["execid"]
        await setup.until(second, ("RUNNING",))
        running = ok(await run_curl(RUNNING, at("34ba08fd-5cfa-4b65-94c4-9117aee48dda", sid)))
        assert running == {"execIds": [second]}
        same_session = at("34ba08fd-5cfa-4b65-94c4-9117aee48dda", sid, "execid=303", f"execid={second}")
        assert ok(await run_curl(PAUSE, same_session)) == {}
        await setup.until(second, ("PAUSED",))
        assert ok(await run_curl(RESUME, same_session)) == {}
        await setup.until(second, ("RUNNING",))
        cancel = at("34ba08fd-5cfa-4b65-94c4-9117aee48dda", sid, "execid=302", f"execid={second}")
        assert ok(await run_curl(CANCEL, cancel)) == {}
        await setup.until(second, ("KILLED",))
        again = await run_curl(CANCEL, cancel)
        assert again.status == 200 and again.json() == {"error": f"Execution {second} of flow test isn't running."}

        # Schedules: cron, the period form (a one-time one in 2014 is refused, a recurring one is kept).
        cron = ok(await run_curl(SCHEDULE_CRON, {"http://localhost:8081": gw.url, "XXXXXXXXXXXXXX": sid}))
        assert cron["status"] == "success" and cron["message"] == "wtwt.azkaban-training scheduled."
        assert isinstance(cron["scheduleId"], int)
        period = {"https://HOST:PORT": gw.url, "PROJECT_NAME": "azkaban-test-project", "FLOW_NAME": "test",
                  "PROJECT_ID": pid, "SESSION_ID": sid}
        once = await run_curl(SCHEDULE_ONCE, period)
        assert once.status == 200 and once.json()["status"] == "error" and "in the past" in once.json()["message"]
        recurring = ok(await run_curl(SCHEDULE_RECURRING, period))
        assert recurring["status"] == "success" and recurring["message"] == "azkaban-test-project.test scheduled."
        schedule_id = str(recurring["scheduleId"])
        fetched = ok(await run_curl(FETCH_SCHEDULE, {"http://localhost:8081": gw.url, "XXXXXXXXXXXXXX": sid,
                                                     "projectId=1": f"projectId={pid}"}))
        assert set(fetched["schedule"]) >= {"cronExpression", "nextExecTime", "period", "submitUser",
                                            "executionOptions", "scheduleId", "firstSchedTime"}
        assert fetched["schedule"]["period"] == "5w" and fetched["schedule"]["scheduleId"] == schedule_id
        assert fetched["schedule"]["submitUser"] == "azkaban"

        # SLAs on that schedule.
        sla = {"http://localhost:8081": gw.url, "XXXXXXXXXXXXXX": sid, "scheduleId=1": f"scheduleId={schedule_id}"}
        assert ok(await run_curl(SET_SLA, sla)) == {}
        info = ok(await run_curl(SLA_INFO, {**sla, '/schedule"': "/schedule"}))
        assert info == {"settings": [{"duration": "300m", "rule": "SUCCESS", "id": "aaa", "actions": ["EMAIL"]},
                                     {"duration": "600m", "rule": "SUCCESS", "id": "bbb", "actions": ["KILL"]}],
                        "slaEmails": ["a@example.com", "b@example.com"],
                        "allJobNames": ["aaa", "bbb", "ccc", "end", "start", "test", "test-foobar"]}
        unschedule = {"https://HOST:PORT": gw.url, "SESSION_ID": sid, "SCHEDULE_ID": schedule_id}
        removed = ok(await run_curl(UNSCHEDULE, unschedule))
        assert removed == {"message": "flow test removed from Schedules.", "status": "success"}
        gone = await run_curl(UNSCHEDULE, unschedule)
        assert gone.json() == {"message": f"Schedule with ID {schedule_id} does not exist", "status": "error"}


async def _projects(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/api/v1/projects", headers=basic("azkaban", "azkaban")) as resp:
        assert resp.status == 200
        return list((await resp.json())["projects"])


async def test_azkaban_page_job_log_example(tmp_path: Path, database_url: str) -> None:
    async with live_gateway(tmp_path, database_url, users=USERS, admins=()) as gw, aiohttp.ClientSession() as http:
        servers = {"https://localhost:8443": gw.url}
        sid = ok(await run_curl(LOGIN, servers))["session.id"]
        setup = Setup(http, gw.url, sid)
        await setup.project("azkaban-test-project", TEST_FLOW)
        execid = (await setup.call("/executor", ajax="executeFlow", project="azkaban-test-project",
                                   flow="test"))["execid"]
        await setup.until(execid, ("SUCCEEDED",))
        logs = ok(await run_curl(JOB_LOGS, at_logs(servers, sid, execid)))
        assert set(logs) == {"data", "length", "offset"} and logs["offset"] == 0
        assert logs["length"] == len(logs["data"]) <= 100 and logs["data"]
        text, offset = "", 0
        while True:  # the rest as the azkaban client reads it: offset += length until length is 0
            window = await setup.call("/executor", ajax="fetchExecJobLogs", execid=str(execid), jobId="test-foobar",
                                      offset=str(offset), length="100")
            if not window["length"]:
                break
            text, offset = text + window["data"], offset + window["length"]
        assert text.startswith(logs["data"]) and "foobar says hello" in text


def at_logs(servers: dict[str, str], sid: str, execid: int) -> dict[str, str]:
    return {**servers, "9089beb2-576d-47e3-b040-86dbdc7f523e": sid, "execid=297": f"execid={execid}"}
