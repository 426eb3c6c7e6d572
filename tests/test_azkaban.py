"""Azkaban's AJAX API (docs/azkaban.md) over HTTP with real LOCAL processes: login and sessions, project
zips (Flow 1.0 and 2.0) as jobs, executions as runs, schedules and SLAs, and Azkaban's error answers."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from typing import Any

import aiohttp

from tests.helpers import Api


def project_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class Azkaban:
    """Azkaban's calls as its clients make them: form data, the session as `session.id`."""

    def __init__(self, api: Api, session_id: str) -> None:
        self.client = api.client
        self.session_id = session_id

    @classmethod
    async def login(cls, api: Api, user: str = "admin") -> Azkaban:
        async with api.client.post("/", data={"action": "login", "username": user, "password": "x"}) as resp:
            assert resp.status == 200
            body = json.loads(await resp.text())
        assert body["status"] == "success", body
        return cls(api, body["session.id"])

    async def call(self, path: str, **params: Any) -> Any:
        data = {"session.id": self.session_id, **{k: str(v) for k, v in params.items()}}
        async with self.client.post(path, data=data) as resp:
            assert resp.status == 200, await resp.text()
            return json.loads(await resp.text())

    async def upload(self, project: str, content: bytes) -> Any:
        form = aiohttp.FormData()
        form.add_field("session.id", self.session_id)
        form.add_field("ajax", "upload")
        form.add_field("file", content, filename="p.zip", content_type="application/zip")
        form.add_field("project", project)
        async with self.client.post("/manager", data=form) as resp:
            assert resp.status == 200, await resp.text()
            return json.loads(await resp.text())

    async def until(self, execid: int, statuses: tuple[str, ...]) -> Any:
        for _ in range(1200):
            flow = await self.call("/executor", ajax="fetchexecflow", execid=execid)
            if flow["status"] in statuses:
                return flow
            await asyncio.sleep(0.05)
        raise AssertionError(f"execution {execid} still {flow['status']}")


def two_jobs(python: str) -> dict[str, str]:
    return {
        "app/system.properties": f"py={python}\ngreeting=hello\n",
        "app/first.job": "type=command\ncommand=${py} first.py ${greeting}\n",
        "app/first.py": "import sys\nprint('first says', sys.argv[1])\n",
        "app/second.job": "type=command\ndependencies=first\ncommand=${py} -c \"print('second')\"\n"
                          "command.1=${py} -c \"print('second again')\"\n",
    }


async def test_a_project_zip_runs_as_a_flow(api: Api, python: str) -> None:
    az = await Azkaban.login(api)
    created = await az.call("/manager", action="create", name="demo", description="a demo")
    assert created == {"status": "success", "path": "manager?project=demo", "action": "redirect"}
    uploaded = await az.upload("demo", project_zip(two_jobs(python)))
    assert "error" not in uploaded, uploaded
    assert uploaded["version"] == "1" and uploaded["projectId"].isdigit() and "error" not in uploaded
    flows = await az.call("/manager", ajax="fetchprojectflows", project="demo")
    assert flows["flows"] == [{"flowId": "second"}] and flows["projectId"] == int(uploaded["projectId"])
    graph = await az.call("/manager", ajax="fetchflowjobs", project="demo", flow="second")
    assert graph["nodes"] == [{"id": "first", "type": "command"},
                              {"id": "second", "type": "command", "in": ["first"]}]
    started = await az.call("/executor", ajax="executeFlow", project="demo", flow="second",
                            **{"flowOverride[greeting]": "bonjour"})
    execid = started["execid"]
    assert started["message"] == f"Execution submitted successfully with exec id {execid}"
    done = await az.until(execid, ("SUCCEEDED", "FAILED", "KILLED"))
    assert done["status"] == "SUCCEEDED", done
    assert done["execid"] == execid and done["project"] == "demo" and done["flowId"] == "second"
    assert {n["id"]: n["status"] for n in done["nodes"]} == {"first": "SUCCEEDED", "second": "SUCCEEDED"}
    assert next(n for n in done["nodes"] if n["id"] == "second")["in"] == ["first"]
    update = await az.call("/executor", ajax="fetchexecflowupdate", execid=execid, lastUpdateTime=-1)
    assert update["status"] == "SUCCEEDED" and len(update["nodes"]) == 2
    later = await az.call("/executor", ajax="fetchexecflowupdate", execid=execid,
                          lastUpdateTime=max(n["updateTime"] for n in update["nodes"]))
    assert later["nodes"] == []
    runs = await api.call("GET", "/api/v1/jobs/demo.second/runs")
    run = runs["runs"][0]
    assert run["variables"]["greeting"] == "bonjour"
    log = await api.call("GET", f"/api/v1/runs/{run['id']}/nodes/first/log")
    assert "first says bonjour" in json.dumps(log)
    executions = await az.call("/manager", ajax="fetchFlowExecutions", project="demo", flow="second",
                               start=0, length=3)
    assert executions["total"] == 1 and executions["executions"][0]["execId"] == execid
    assert executions["executions"][0]["status"] == "SUCCEEDED"
    ended = await az.call("/executor", ajax="cancelFlow", execid=execid)
    assert ended == {"error": f"Execution {execid} of flow second isn't running."}


async def test_pause_resume_cancel_and_running(api: Api, python: str) -> None:
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="slow", description="d")
    await az.upload("slow", project_zip({"wait.job": f"type=command\ncommand={python} -c \"import time; time.sleep(60)\"\n"}))
    execid = (await az.call("/executor", ajax="executeFlow", project="slow", flow="wait"))["execid"]
    await az.until(execid, ("RUNNING",))
    assert await az.call("/executor", ajax="getRunning", project="slow", flow="wait") == {"execIds": [execid]}
    skipped = await az.call("/executor", ajax="executeFlow", project="slow", flow="wait", concurrentOption="skip")
    assert "already running" in skipped["error"]
    assert await az.call("/executor", ajax="pauseFlow", execid=execid) == {}
    await az.until(execid, ("PAUSED",))
    assert await az.call("/executor", ajax="pauseFlow", execid=execid) == {}
    assert await az.call("/executor", ajax="resumeFlow", execid=execid) == {}
    await az.until(execid, ("RUNNING",))
    assert await az.call("/executor", ajax="cancelFlow", execid=execid) == {}
    killed = await az.until(execid, ("KILLED", "FAILED", "SUCCEEDED"))
    assert killed["status"] == "KILLED"
    assert await az.call("/executor", ajax="getRunning", project="slow", flow="wait") == {"execIds": []}


async def test_flow_2_yaml_and_spark_and_unknown_types(api: Api, python: str) -> None:
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="two", description="d")
    flow = ("config:\n  who: world\nnodes:\n  - name: hello\n    type: command\n    config:\n"
            f"      command: {python} -c \"print('hi ${{who}}')\"\n"
            "  - name: crunch\n    type: spark\n    dependsOn: [hello]\n    config:\n"
            "      execution-jar: lib/app.jar\n      class: org.example.Main\n      params: a 'b c'\n"
            "      executor-memory: 2g\n      conf.spark.foo: bar\n")
    uploaded = await az.upload("two", project_zip({"p.project": "azkaban-flow-version: 2.0\n", "etl.flow": flow,
                                                   "lib/app.jar": "jar"}))
    if "error" in uploaded:  # SPARK is not enabled on this gateway: the admission step says so, naming it
        assert "SPARK" in uploaded["error"], uploaded
        return
    job = await api.call("GET", "/api/v1/jobs/two.etl")
    crunch = next(n for n in job["nodes"] if n["id"] == "crunch")
    assert crunch["request"]["batchType"] == "SPARK" and crunch["request"]["resource"] == "artifact:lib/app.jar@1"
    assert crunch["request"]["args"] == ["a", "b c"] and crunch["request"]["conf"]["spark.executor.memory"] == "2g"


async def test_upload_errors_are_clear(api: Api, python: str) -> None:
    az = await Azkaban.login(api)
    missing = await az.upload("nowhere", project_zip({"a.job": "type=command\ncommand=true\n"}))
    assert missing["error"].endswith("doesn't exist.")
    await az.call("/manager", action="create", name="bad", description="d")
    unknown = await az.upload("bad", project_zip({"a.job": "type=hive\nquery=select 1\n"}))
    assert "job type 'hive' is not supported" in unknown["error"] and "Job a" in unknown["error"]
    broken = await az.upload("bad", b"not a zip")
    assert "Error unzipping file" in broken["error"]
    dangling = await az.upload("bad", project_zip({"a.job": "type=command\ncommand=true\ndependencies=zz\n"}))
    assert "depends on zz" in dangling["error"]
    undefined = await az.upload("bad", project_zip({"a.job": "type=command\ncommand=echo ${nope}\n"}))
    assert "${nope}" in undefined["error"]
    files = await az.upload("bad", project_zip({"a.job": "type=command\ncommand=cat data.txt\n", "data.txt": "x"}))
    assert "data.txt" in files["error"]
    duplicate = await az.call("/manager", action="create", name="bad", description="d")
    assert duplicate["status"] == "error" and "exists" in duplicate["message"]
    empty = await az.call("/manager", action="create", name="nodesc", description="")
    assert empty == {"status": "error", "message": "Description cannot be empty."}


async def test_sessions_and_errors(api: Api) -> None:
    async with api.client.post("/manager", data={"session.id": "0123456789abcdef0123", "ajax": "fetchprojectflows",
                                                 "project": "x"}) as resp:
        assert resp.status == 200
        assert '"error" : "session"' in await resp.text()
    az = await Azkaban.login(api)
    async with api.client.post("/manager", data={"session.id": az.session_id}) as resp:
        assert resp.status == 200 and "error" not in await resp.text()  # the client's session check
    async with api.client.get("/manager", params={"ajax": "fetchprojectflows", "project": "nope"},
                              cookies={"azkaban.browser.session.id": az.session_id}) as resp:
        assert resp.status == 200 and "not found" in json.loads(await resp.text())["error"]
    assert "Cannot find execution" in (await az.call("/executor", ajax="fetchexecflow", execid=987654))["error"]
    assert "not a number" in (await az.call("/executor", ajax="fetchexecflow", execid="x"))["error"]
    assert "Unknown action" in (await az.call("/executor", ajax="frobnicate"))["error"]


async def test_cron_schedule_and_slas(api: Api, python: str) -> None:
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="nightly", description="d")
    uploaded = await az.upload("nightly", project_zip(two_jobs(python)))
    pid = uploaded["projectId"]
    bad = await az.call("/schedule", ajax="scheduleCronFlow", projectName="nightly", flow="second",
                        cronExpression="0 61 * ? * *")
    assert bad["status"] == "error" and "can not be parsed to quartz cron" in bad["message"]
    scheduled = await az.call("/schedule", ajax="scheduleCronFlow", projectName="nightly", flow="second",
                              cronExpression="0 23/30 5,7-10 ? * 6#3")
    assert scheduled["status"] == "success" and scheduled["message"] == "nightly.second scheduled."
    schedule_id = scheduled["scheduleId"]
    fetched = (await az.call("/schedule", ajax="fetchSchedule", projectId=pid, flowId="second"))["schedule"]
    assert fetched["cronExpression"] == "0 23/30 5,7-10 ? * 6#3" and fetched["scheduleId"] == str(schedule_id)
    again = await az.call("/schedule", ajax="scheduleCronFlow", projectName="nightly", flow="second",
                          cronExpression="0 0 9 ? * *")
    assert again["scheduleId"] == schedule_id  # one schedule per flow, changed
    assert (await api.call("GET", "/api/v1/schedules"))["total"] == 1
    refused = await az.call("/schedule", ajax="setSla", scheduleId=schedule_id, **{"settings[0]": "first,SUCCESS,0:00,true,false"})
    assert "Unable to parse duration" in refused["error"]
    assert await az.call("/schedule", ajax="setSla", scheduleId=schedule_id, slaEmails="a@example.com;b@example.com",
                         **{"settings[0]": "first,SUCCESS,5:00,true,false",
                            "settings[1]": ",FINISH,10:00,false,true"}) == {}
    info = await az.call("/schedule", ajax="slaInfo", scheduleId=schedule_id)
    assert info["slaEmails"] == ["a@example.com", "b@example.com"] and info["allJobNames"] == ["first", "second"]
    assert sorted(info["settings"], key=lambda s: s["id"]) == [
        {"duration": "600m", "rule": "FINISH", "id": "", "actions": ["KILL"]},
        {"duration": "300m", "rule": "SUCCESS", "id": "first", "actions": ["EMAIL"]}]
    removed = await az.call("/schedule", action="removeSched", scheduleId=schedule_id)
    assert removed == {"message": "flow second removed from Schedules.", "status": "success"}
    assert await az.call("/schedule", ajax="fetchSchedule", projectId=pid, flowId="second") == {}
    gone = await az.call("/schedule", action="removeSched", scheduleId=schedule_id)
    assert gone == {"status": "error", "message": f"Schedule with ID {schedule_id} does not exist"}
    recurring = await az.call("/schedule", ajax="scheduleFlow", projectName="nightly", flow="second", projectId=pid,
                              scheduleTime="12,00,pm,PDT", scheduleDate="07/22/2014", is_recurring="on", period="5w")
    assert recurring["status"] == "success"
    fetched = (await az.call("/schedule", ajax="fetchSchedule", projectId=pid, flowId="second"))["schedule"]
    assert fetched["period"] == "5w" and fetched["firstSchedTime"] == "2014-07-22 12:00:00"
    past = await az.call("/schedule", ajax="scheduleFlow", projectName="nightly", flow="second", projectId=pid,
                         scheduleTime="12,00,pm,PDT", scheduleDate="07/22/2014")
    assert past["status"] == "error" and "in the past" in past["message"]


async def test_a_script_of_the_zip_reads_another_file_of_it(api: Api, python: str) -> None:
    """`sh run.sh data.txt`: the script is the artifact resource (run by /bin/sh), the data file its
    argument as the unpacked copy's path; `${check}` (several words, referring to `${py}`) is replaced
    before the command is split."""
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="scripts", description="d")
    uploaded = await az.upload("scripts", project_zip({
        "job.properties": f"py={python}\ncheck=${{py}} -c \"print('checked')\"\n",
        "read.job": "type=command\ncommand=sh run.sh data.txt\n",
        "after.job": "type=command\ndependencies=read\ncommand=${check}\n",
        "run.sh": "echo reading; cat \"$1\"\n",
        "data.txt": "the data line\n",
    }))
    assert "error" not in uploaded, uploaded
    job = await api.call("GET", "/api/v1/jobs/scripts.after")
    read = next(n for n in job["nodes"] if n["id"] == "read")
    assert read["request"]["resource"] == "artifact:run.sh@1" and read["request"]["args"] == ["artifact/data.txt"]
    after = next(n for n in job["nodes"] if n["id"] == "after")
    assert after["request"]["resource"] == python and after["request"]["args"] == ["-c", "print('checked')"]
    assert job["variables"] == {}  # `${check}` is several words: replaced before the split, as Azkaban does
    execid = (await az.call("/executor", ajax="executeFlow", project="scripts", flow="after"))["execid"]
    done = await az.until(execid, ("SUCCEEDED", "FAILED", "KILLED"))
    assert done["status"] == "SUCCEEDED", done
    run = (await api.call("GET", "/api/v1/jobs/scripts.after/runs"))["runs"][0]
    log = json.dumps(await api.call("GET", f"/api/v1/runs/{run['id']}/nodes/read/log"))
    assert "reading" in log and "the data line" in log


async def test_hostile_zips_are_refused_clearly(api: Api) -> None:
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="hostile", description="d")
    doubling = "".join(f"p{i}=${{p{i + 1}}}${{p{i + 1}}}${{p{i + 1}}}${{p{i + 1}}}\n" for i in range(20))
    bomb = await az.upload("hostile", project_zip({"a.properties": doubling + "p20=xxxxxxxxxxxxxxxx\n",
                                                   "a.job": "type=command\ncommand=echo ${p0}\n"}))
    assert "more than 65536 characters" in bomb["error"]
    nested = await az.upload("hostile", project_zip({
        "p.project": "azkaban-flow-version: 2.0\n",
        "f.flow": "nodes:\n  - name: a\n    type: command\n    config:\n      command: [echo, hi]\n"}))
    assert "must be a single value" in nested["error"]
    deep = await az.upload("hostile", project_zip({"p.project": "azkaban-flow-version: 2.0\n",
                                                   "f.flow": "nodes: " + "[" * 5000 + "]" * 5000 + "\n"}))
    assert "Installation Failed" in deep["error"]


async def test_the_local_allow_list_governs_the_program_that_runs(start_gateway: Any) -> None:
    """Only /bin/sh is allowed: `sh run.sh` is saved (the script runs with /bin/sh), `echo` and a Python
    script are refused at upload, naming the program."""
    api: Api = await start_gateway(admin=["admin"], local_programs=["/bin/sh"])
    az = await Azkaban.login(api)
    await az.call("/manager", action="create", name="guarded", description="d")
    allowed = await az.upload("guarded", project_zip({"a.job": "type=command\ncommand=sh run.sh\n",
                                                      "run.sh": "echo fine\n"}))
    assert "error" not in allowed, allowed
    echo = await az.upload("guarded", project_zip({"a.job": "type=command\ncommand=echo hi\n"}))
    assert "program 'echo' is not in the LOCAL allow-list" in echo["error"]
    script = await az.upload("guarded", project_zip({"a.job": "type=command\ncommand=python3 x.py\n",
                                                     "x.py": "print(1)\n"}))
    assert "not in the LOCAL allow-list" in script["error"] and "x.py" in script["error"]
