"""SLAs over HTTP with a live gateway: deadlines in the database, breaches recorded once, alerts to a real
webhook receiver (an aiohttp server in the test) and a real SMTP server (aiosmtpd), KILL of slow work."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from gateway.schedules.alerts import Alerter
from gateway.security.outbound import OutboundRule
from tests.gateway_process import free_port
from tests.helpers import Api
from tests.test_schedules import eventually, next_second, runs_of

SLEEPER = ["-c", "import sys, time; print('working', flush=True); time.sleep(float(sys.argv[1]))"]


@dataclass
class Receiver:
    """A webhook endpoint: records every POST; answers with the queued statuses, then 200."""

    url: str = ""
    posts: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    def deliveries(self) -> list[str]:
        return [headers["X-Batchgate-Delivery"] for headers, _ in self.posts]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        rec.posts.append((dict(request.headers), await request.json()))
        if rec.delay:
            await asyncio.sleep(rec.delay)
        return web.json_response({}, status=rec.statuses.pop(0) if rec.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def sleeper_job(name: str, sleep: str = "3", **extra: Any) -> dict[str, Any]:
    return {"name": name, "variables": {"sleep": sleep}, **extra,
            "nodes": [{"id": "work", "request": {"batchType": "LOCAL", "resource": sys.executable,
                                                 "args": [*SLEEPER, "${sleep}"]}}]}


async def breaches(api: Api, sla_id: str, count: int | None = None, timeout: float = 15) -> list[dict[str, Any]]:
    """The SLA's breaches once `count` of them have finished their actions."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = (await api.call("GET", f"/api/v1/slas/{sla_id}/breaches"))["breaches"]
        return count is None or (len(found) >= count and all(b["actionsDone"] for b in found))

    await eventually(done, timeout, f"{count} breaches of SLA {sla_id}")
    return found


async def sleep_until(epoch_ms: float) -> None:
    await asyncio.sleep(max(0.0, (epoch_ms - time.time() * 1000) / 1000))


async def submit(api: Api, seconds: float, conf: dict[str, str]) -> dict[str, Any]:
    batch: dict[str, Any] = await api.submit("LOCAL", sys.executable, args=[*SLEEPER, str(seconds)], conf=conf)
    return batch


async def test_job_sla_alerts_once_per_breach(start_gateway: Callable[..., Awaitable[Api]],
                                              receiver: Receiver) -> None:
    # The receiver listens on loopback: an address only a host allowed by name may have.
    api = await start_gateway(admin=["admin"], sla_webhook_hosts=["127.0.0.1"])
    alice, bob = api.as_user("alice"), api.as_user("bob")
    await alice.call("POST", "/api/v1/jobs", json=sleeper_job("etl", permissions={"bob": ["READ", "EXECUTE"]}))
    sla = await alice.call("POST", "/api/v1/slas", json={
        "job": "etl", "rule": "finish_within", "duration": "1s", "actions": ["ALERT"], "webhook": receiver.url,
        "description": "etl must be quick"})
    assert sla["rule"] == "FINISH_WITHIN" and sla["durationMs"] == 1000 and sla["duration"] == "1s"
    assert sla["job"] == "etl" and sla["owner"] == "alice" and sla["breaches"] == 0
    slow = [await alice.call("POST", "/api/v1/jobs/etl/runs") for _ in range(2)]
    quick = await alice.call("POST", "/api/v1/jobs/etl/runs", json={"variables": {"sleep": "0"}})

    found = await breaches(alice, sla["id"], 2)
    await asyncio.sleep(2.5)  # the slow runs end now, the quick one ended long ago: nothing more is sent
    assert len(receiver.posts) == 2 and len(set(receiver.deliveries())) == 2, "one alert per breach"
    found = (await alice.call("GET", f"/api/v1/slas/{sla['id']}/breaches"))["breaches"]
    assert len(found) == 2 and {b["runId"] for b in found} == {r["id"] for r in slow}
    assert quick["id"] not in {b["runId"] for b in found}
    for b in found:
        assert b["kind"] == "RUN" and b["rule"] == "FINISH_WITHIN" and b["dueTime"] - b["startTime"] == 1000
        assert 0 <= b["breachTime"] - b["dueTime"] < 1000, "judged within a second of the deadline"
        assert b["results"]["webhook"] == {"status": "delivered", "code": 200, "attempts": 1}
    by_delivery = {h["X-Batchgate-Delivery"]: body for h, body in receiver.posts}
    for b in found:
        body = by_delivery[str(b["id"])]
        assert body["event"] == "sla.breached" and body["breach"]["runId"] == b["runId"]
        assert body["sla"] == {**body["sla"], "id": sla["id"], "rule": "FINISH_WITHIN", "duration": "1s",
                               "job": "etl", "description": "etl must be quick"}
    assert all(r["state"] == "SUCCEEDED" for r in await runs_of(alice, "etl")), "ALERT alone kills nothing"
    assert (await alice.call("GET", f"/api/v1/slas/{sla['id']}"))["breaches"] == 2
    log = (await alice.call("GET", "/api/v1/jobs/etl/log?size=100"))["entries"]
    breached = [e for e in log if e["action"] == "sla_breached"]
    assert len(breached) == 2 and {e["detail"]["run"] for e in breached} == {r["id"] for r in slow}
    assert "sla_created" in {e["action"] for e in log}
    audit = await api.call("GET", f"/api/v1/audit?target={sla['id']}")
    assert [e["action"] for e in audit["entries"]].count("sla_breached") == 2

    # Permissions: READ reads, SCHEDULE creates and deletes.
    assert (await bob.call("GET", f"/api/v1/slas/{sla['id']}"))["id"] == sla["id"]
    assert (await bob.call("GET", "/api/v1/slas?job=etl"))["total"] == 1
    assert (await bob.call("GET", f"/api/v1/slas/{sla['id']}/breaches"))["total"] == 2
    assert (await api.as_user("eve").call("GET", "/api/v1/slas"))["total"] == 0
    assert (await api.as_user("eve").status_of("GET", f"/api/v1/slas/{sla['id']}"))[0] == 403
    status, err = await bob.status_of("POST", "/api/v1/slas", json={"job": "etl", "rule": "START_WITHIN",
                                                                    "duration": "1m"})
    assert status == 403 and "SCHEDULE" in err["message"]
    assert (await bob.status_of("DELETE", f"/api/v1/slas/{sla['id']}"))[0] == 403

    # Bad input names the field and quotes the value.
    for body, message in [
        ({"job": "etl", "rule": "FINISH_WITHIN", "duration": "an hour"}, "duration: 'an hour' is not a duration"),
        ({"job": "etl", "rule": "LATE", "duration": "1m"}, "rule"),
        ({"job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "actions": ["PAGE"]}, "actions"),
        ({"job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "node": "nope"}, "node: job etl has no node 'nope'"),
        ({"job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "webhook": "ftp://x/y"}, "webhook: 'ftp://x/y'"),
        ({"job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "emails": ["not-mail"]}, "emails"),
        ({"rule": "FINISH_WITHIN", "duration": "1m"}, "job: give either job or schedule"),
        ({"job": "etl", "schedule": "x", "rule": "FINISH_WITHIN", "duration": "1m"}, "job: give either"),
        ({"schedule": "not-a-uuid", "rule": "FINISH_WITHIN", "duration": "1m"}, "scheduleId: 'not-a-uuid'"),
    ]:
        status, err = await alice.status_of("POST", "/api/v1/slas", json=body)
        assert status == 400 and message in err["message"], (body, status, err)
    assert (await alice.status_of("POST", "/api/v1/slas", json={"job": "nojob", "rule": "FINISH_WITHIN",
                                                                "duration": "1m"}))[0] == 404
    await alice.call("DELETE", f"/api/v1/slas/{sla['id']}")
    assert (await alice.status_of("GET", f"/api/v1/slas/{sla['id']}"))[0] == 404


async def test_batch_sla_kill_ends_a_slow_batch_as_canceled(api: Api) -> None:
    alice = api.as_user("alice")
    slow = await submit(alice, 30, {"batchgate.sla.finishWithin": "1s", "batchgate.sla.action": "KILL"})
    quick = await submit(alice, 0, {"batchgate.sla.finishWithin": "2s"})
    final = await alice.wait_for(slow["id"], timeout=20)
    assert final["state"] == "CANCELED"
    log = await alice.full_log(slow["id"])
    reason = next(line for line in log if "breached" in line)
    assert "FINISH_WITHIN 1s" in reason and "killing the batch" in reason
    assert any("kill requested by batchgate-sla" in line for line in log)
    [sla] = (await alice.call("GET", f"/api/v1/slas?batch={slow['id']}"))["slas"]
    assert sla["batch"] == slow["id"] and sla["owner"] == "alice" and sla["actions"] == ["KILL"]
    [breach] = await breaches(alice, sla["id"], 1)
    assert breach["kind"] == "BATCH" and breach["batchId"] == slow["id"] and "CANCELED" in breach["results"]["kill"]
    assert (await api.as_user("eve").status_of("GET", f"/api/v1/slas/{sla['id']}"))[0] == 403

    # The quick batch finished in time: its deadline passes without a breach.
    [met] = (await alice.call("GET", f"/api/v1/slas?batch={quick['id']}"))["slas"]
    await sleep_until(met["createTime"] + 2500)
    assert (await alice.call("GET", f"/api/v1/slas/{met['id']}/breaches"))["total"] == 0
    assert (await alice.get(quick["id"]))["state"] == "FINISHED"

    # A bad SLA in conf is a 400 naming the key, and nothing is queued.
    before = (await alice.call("GET", "/api/v1/batches"))["total"]
    for conf, key in [({"batchgate.sla.finishWithin": "soon"}, "conf.batchgate.sla.finishWithin: 'soon'"),
                      ({"batchgate.sla.finishWithin": "1m", "batchgate.sla.action": "REBOOT"},
                       "conf.batchgate.sla.action"),
                      ({"batchgate.sla.finishwithin": "1m"}, "conf.batchgate.sla.finishwithin: unknown")]:
        status, err = await alice.status_of("POST", "/api/v1/batches", json={
            "batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"], "conf": conf})
        assert status == 400 and key in err["message"], err
    assert (await alice.call("GET", "/api/v1/batches"))["total"] == before


async def test_node_and_schedule_slas_kill_what_they_cover(api: Api) -> None:
    await api.call("POST", "/api/v1/jobs", json={
        "name": "pipeline", "nodes": [
            {"id": "first", "request": {"batchType": "LOCAL", "resource": sys.executable, "args": [*SLEEPER, "0"]}},
            {"id": "stuck", "dependsOn": ["first"],
             "request": {"batchType": "LOCAL", "resource": sys.executable, "args": [*SLEEPER, "30"]}}]})
    node_sla = await api.call("POST", "/api/v1/slas", json={
        "job": "pipeline", "node": "stuck", "rule": "FINISH_WITHIN", "duration": "2s", "actions": ["KILL"]})
    run = await api.call("POST", "/api/v1/jobs/pipeline/runs")

    await api.call("POST", "/api/v1/jobs", json=sleeper_job("hourly", "30"))
    start = next_second(1000)
    schedule = await api.call("POST", "/api/v1/schedules", json={"job": "hourly", "every": "1h", "startAt": start})
    tick_sla = await api.call("POST", "/api/v1/slas", json={
        "schedule": schedule["id"], "rule": "SUCCEED_WITHIN", "duration": "1s", "actions": ["KILL", "ALERT"]})
    assert tick_sla["job"] == "hourly" and tick_sla["schedule"] == schedule["id"]

    [node_breach] = await breaches(api, node_sla["id"], 1)
    assert node_breach["node"] == "stuck" and node_breach["runId"] == run["id"] and node_breach["batchId"]
    assert "CANCELED" in node_breach["results"]["kill"]
    batch = await api.wait_for(node_breach["batchId"], timeout=15)
    assert batch["state"] == "CANCELED"
    assert any("breached" in line and "killing the node's batch" in line for line in await api.full_log(batch["id"]))
    final = (await runs_of(api, "pipeline"))[0]
    nodes = {n["id"]: n["state"] for n in final["nodes"]}
    assert nodes["first"] == "SUCCEEDED" and nodes["stuck"] in ("CANCELLED", "FAILED")

    [tick_breach] = await breaches(api, tick_sla["id"], 1)
    assert tick_breach["kind"] == "TICK" and tick_breach["target"] == f"{schedule['id']}@{start}"
    assert tick_breach["startTime"] == start and tick_breach["runId"]
    assert tick_breach["results"]["kill"] == f"run {tick_breach['runId']} canceled"

    async def killed() -> bool:
        runs = await runs_of(api, "hourly")
        return bool(runs) and runs[0]["state"] == "KILLED"

    await eventually(killed, 15, "the scheduled run was canceled")
    log = (await api.call("GET", "/api/v1/jobs/hourly/log?size=100"))["entries"]
    assert {"sla_breached", "run_cancel", "tick_fired", "sla_created", "schedule_created"} <= {e["action"] for e in log}


async def test_webhook_retries_with_backoff_and_a_timeout_never_blocks(
    start_gateway: Callable[..., Awaitable[Api]], receiver: Receiver
) -> None:
    api = await start_gateway(admin=["admin"], sla_webhook_backoff_seconds=0.2, sla_webhook_retries=2,
                              sla_webhook_timeout_seconds=0.6, sla_webhook_hosts=["127.0.0.1"])
    receiver.statuses = [503]
    first = await submit(api, 4, {"batchgate.sla.startWithin": "1s",
                                  "batchgate.sla.finishWithin": "1s", "batchgate.sla.webhook": receiver.url})
    slas = {s["rule"]: s for s in (await api.call("GET", f"/api/v1/slas?batch={first['id']}"))["slas"]}
    assert set(slas) == {"START_WITHIN", "FINISH_WITHIN"}
    [breach] = await breaches(api, slas["FINISH_WITHIN"]["id"], 1)
    assert breach["results"]["webhook"] == {"status": "delivered", "code": 200, "attempts": 2}
    assert receiver.deliveries() == [str(breach["id"])] * 2, "retried with the same delivery id"
    assert (await api.call("GET", f"/api/v1/slas/{slas['START_WITHIN']['id']}/breaches"))["total"] == 0

    receiver.delay = 2.0  # slower than the timeout: every attempt times out
    second = await submit(api, 4, {"batchgate.sla.finishWithin": "1s", "batchgate.sla.webhook": receiver.url})
    [sla] = (await api.call("GET", f"/api/v1/slas?batch={second['id']}"))["slas"]
    await sleep_until(sla["createTime"] + 1300)
    started = time.monotonic()
    await api.get(second["id"])  # the gateway answers while the webhook hangs
    assert time.monotonic() - started < 0.5
    [breach] = await breaches(api, sla["id"], 1)
    assert breach["results"]["webhook"]["status"] == "failed" and breach["results"]["webhook"]["attempts"] == 3
    assert "Timeout" in breach["results"]["webhook"]["error"]


async def test_email_alert_through_smtp(start_gateway: Callable[..., Awaitable[Api]],
                                        smtp: tuple[int, Mailbox]) -> None:
    port, mailbox = smtp
    api = await start_gateway(admin=["admin"], smtp_host="127.0.0.1", smtp_port=port, smtp_from="gw@example.org")
    batch = await submit(api, 3, {"batchgate.sla.succeedWithin": "1s",
                                  "batchgate.sla.emails": "ops@example.org, oncall@example.org"})
    [sla] = (await api.call("GET", f"/api/v1/slas?batch={batch['id']}"))["slas"]
    [breach] = await breaches(api, sla["id"], 1)
    assert breach["results"]["email"] == {"status": "sent", "to": ["ops@example.org", "oncall@example.org"]}
    [message] = mailbox.messages
    assert message["From"] == "gw@example.org" and "ops@example.org" in message["To"]
    assert "SUCCEED_WITHIN 1s" in message["Subject"] and batch["id"] in str(message.get_payload())


async def test_a_deadline_fires_once_across_instances_and_survives_a_restart(
    start_gateway: Callable[..., Awaitable[Api]], receiver: Receiver
) -> None:
    hosts = ["127.0.0.1"]
    one, two = (await start_gateway(admin=["admin"], sla_webhook_hosts=hosts),
                await start_gateway(admin=["admin"], sla_webhook_hosts=hosts))
    conf = {"batchgate.sla.finishWithin": "2s", "batchgate.sla.webhook": receiver.url}
    raced = await submit(one, 6, conf)
    orphan = await submit(two, 6, {**conf, "batchgate.sla.finishWithin": "4s"})
    [raced_sla] = (await one.call("GET", f"/api/v1/slas?batch={raced['id']}"))["slas"]
    [orphan_sla] = (await one.call("GET", f"/api/v1/slas?batch={orphan['id']}"))["slas"]
    [first] = await breaches(one, raced_sla["id"], 1)
    await asyncio.sleep(0.5)
    assert receiver.deliveries() == [str(first["id"])], "two instances, one breach, one alert"

    await one.client.close()  # every instance goes down before the second deadline ...
    await two.client.close()
    await sleep_until(orphan_sla["createTime"] + 4500)
    three = await start_gateway(admin=["admin"], sla_webhook_hosts=hosts)  # ... and a new one judges it, late but by the database's times
    [late] = await breaches(three, orphan_sla["id"], 1)
    assert late["breachTime"] > late["dueTime"] and late["batchId"] == orphan["id"]
    assert sorted(receiver.deliveries()) == sorted([str(first["id"]), str(late["id"])])
    assert (await three.call("GET", f"/api/v1/slas/{raced_sla['id']}/breaches"))["total"] == 1


async def test_webhooks_only_to_allowed_hosts(
    start_gateway: Callable[..., Awaitable[Api]], receiver: Receiver
) -> None:
    # The receiver listens on 127.0.0.1; "localhost" names the same place but is not on the list.
    api = await start_gateway(admin=["admin"], sla_webhook_hosts=["127.0.0.1", "*.hooks.example"])
    elsewhere = receiver.url.replace("127.0.0.1", "localhost")
    status, body = await api.status_of("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "pass"],
        "conf": {"batchgate.sla.finishWithin": "1m", "batchgate.sla.webhook": elsewhere}})
    assert status == 400 and "conf.batchgate.sla.webhook: host 'localhost'" in body["message"]
    await api.call("POST", "/api/v1/jobs", json=sleeper_job("etl"))
    status, body = await api.status_of("POST", "/api/v1/slas", json={
        "job": "etl", "rule": "FINISH_WITHIN", "duration": "1m", "webhook": "http://169.254.169.254/latest"})
    assert status == 400 and "webhook: host '169.254.169.254'" in body["message"]
    batch = await submit(api, 4, {"batchgate.sla.finishWithin": "1s", "batchgate.sla.webhook": receiver.url})
    [sla] = (await api.call("GET", f"/api/v1/slas?batch={batch['id']}"))["slas"]
    [breach] = await breaches(api, sla["id"], 1)
    assert breach["results"]["webhook"]["status"] == "delivered", "an allowed host is reached"


async def test_a_webhook_host_no_longer_allowed_is_not_called() -> None:
    # Checked again when sending: the SLA may predate the operator's list.
    alerter = Alerter(timeout=1, retries=2, backoff=0, smtp_host=None, smtp_port=25, smtp_from="x@y",
                      smtp_timeout=1, webhook_rule=OutboundRule(["hooks.example.com"]))
    try:
        result = await alerter.webhook("http://127.0.0.1:9/x", {"event": "sla_breach"}, "d1")
    finally:
        await alerter.close()
    assert result["status"] == "refused" and result["attempts"] == 0 and "127.0.0.1" in result["error"]
