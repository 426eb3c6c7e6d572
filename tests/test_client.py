"""gateway.client against a live gateway process: Client (blocking) and AsyncClient, batches, logs with
follow, job control, sessions, errors with the server's status and message, and 503 retries while
Postgres is stopped."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.client import (
    AsyncClient,
    BadRequest,
    Batch,
    Client,
    Conflict,
    Forbidden,
    GatewayUnreachable,
    NotFound,
    Unauthorized,
    Unavailable,
)
from gateway.contract.batches import CONF_BATCH_ID
from tests.gateway_process import GatewayProcess, free_port
from tests.live_gateway import in_thread, live_gateway
from tests.pg_control import DedicatedPostgres

PY = sys.executable


def ticker(n: int, pause: float = 0.05) -> list[str]:
    return ["-c", f"import time\nfor i in range({n}):\n    print(f'tick {{i}}', flush=True)\n    time.sleep({pause})"]


def sleeper(seconds: float = 60) -> list[str]:
    return ["-c", f"import time; print('sleeping', flush=True); time.sleep({seconds})"]


@pytest.fixture
async def gateway(tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    async with live_gateway(tmp_path, database_url) as gw:
        yield gw


async def test_sync_client_batches_logs_and_errors(gateway: GatewayProcess, tmp_path: Path) -> None:
    program = tmp_path / "hello.py"
    program.write_text("import sys\nprint('uploaded', sys.argv[1:])\n")

    def scenario() -> None:
        with Client(gateway.url, user="alice", password="a-pass") as bg:
            batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ticker(20), "name": "ticks"})
            assert isinstance(batch, Batch) and batch.user == "alice" and batch.name == "ticks"
            with bg.follow_log(batch.id) as stream:
                lines = list(stream)
            assert stream.batch is not None and stream.batch.state == "FINISHED"
            assert [ln.number for ln in lines] == list(range(len(lines))), "numbers are absolute and contiguous"
            assert [ln.text for ln in lines if ln.text.startswith("tick")] == [f"tick {i}" for i in range(20)]

            window = bg.log(batch.id, start=3, size=4)
            assert window.log_row_set == [ln.text for ln in lines[3:7]] and window.row_count == 4
            assert bg.log(batch.id, start=-1, size=2).log_row_set == [ln.text for ln in lines[-2:]]
            later = bg.follow_log(batch.id, start=len(lines) - 3)
            assert [ln.number for ln in later] == [len(lines) - 3, len(lines) - 2, len(lines) - 1]

            key = str(uuid.uuid4())
            first = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "conf": {CONF_BATCH_ID: key}})
            second = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ["-c", "pass"], "conf": {CONF_BATCH_ID: key}})
            assert first.id == second.id == key and second.batch_info["kyuubi.batch.duplicated"] == "true"
            bg.wait(key, timeout=30)

            uploaded = bg.submit({"batchType": "LOCAL", "args": ["x"]}, resource_file=program)
            assert bg.wait(uploaded.id, timeout=30).state == "FINISHED"
            assert any("uploaded ['x']" in line for line in bg.log(uploaded.id, size=50).log_row_set)

            asleep = bg.submit({"batchType": "LOCAL", "resource": PY, "args": sleeper(), "name": "nap"})
            seen: list[str] = []
            killed = bg.kill(asleep.id)
            assert killed.success is True
            final = bg.wait(asleep.id, timeout=30, on_change=lambda b: seen.append(b.state))
            assert final.state == "CANCELED" and seen[-1] == "CANCELED"
            assert bg.kill(asleep.id).success is False

            page = bg.batches(state=["FINISHED", "CANCELED"], batch_type="LOCAL", size=2, desc=True)
            assert page.total == 4 and len(page.batches) == 2 and page.batches[0].id == asleep.id
            assert bg.batches(name="ticks").total == 1
            assert [b.id for b in bg.iter_batches(page_size=1)] == [batch.id, key, uploaded.id, asleep.id]

            with pytest.raises(NotFound) as missing:
                bg.batch(str(uuid.uuid4()))
            assert missing.value.status == 404 and "not found" in missing.value.message
            with pytest.raises(BadRequest) as bad:
                bg.submit({"batchType": "LOCAL", "args": []})
            assert bad.value.status == 400 and bad.value.message.startswith("resource:")
            with pytest.raises(Conflict):
                bg.pause(batch.id)

        with Client(gateway.url, user="bob", password="b-pass") as bob, pytest.raises(Forbidden) as denied:
            bob.batch(batch.id)
        assert denied.value.status == 403
        with Client(gateway.url, user="alice", password="wrong") as wrong, pytest.raises(Unauthorized) as unauth:
            wrong.batches()
        assert unauth.value.status == 401 and unauth.value.message
        with Client(f"http://127.0.0.1:{free_port()}") as nowhere, pytest.raises(GatewayUnreachable) as down:
            nowhere.batches()
        assert "connection refused" in str(down.value)

    await in_thread(scenario)


async def test_sessions_through_the_client(gateway: GatewayProcess) -> None:
    def scenario() -> None:
        with Client(gateway.url, user="alice", password="a-pass") as bg:
            session = bg.login(expires_in=600)
            assert bg.token == session.token and session.user == "alice"
            assert bg.session().user == "alice"
            with Client(gateway.url, token=session.token) as by_token:
                assert by_token.batches().total == 0
                assert by_token.logout().success is True and by_token.token is None
            with Client(gateway.url, token=session.token) as stale, pytest.raises(Unauthorized) as ended:
                stale.batches()
            assert "revoked" in ended.value.message

    await in_thread(scenario)


async def test_async_client_follow_wait_and_job_control(gateway: GatewayProcess) -> None:
    async with AsyncClient(gateway.url, user="alice", password="a-pass") as bg:
        batch = await bg.submit({"batchType": "LOCAL", "resource": PY, "args": ticker(10), "name": "async"})
        numbers: list[int] = []
        texts: list[str] = []
        follow = bg.follow_log(batch.id)
        async for line in follow:
            numbers.append(line.number)
            texts.append(line.text)
        assert follow.batch is not None and follow.batch.state == "FINISHED"
        assert numbers == list(range(len(numbers))) and [t for t in texts if t.startswith("tick")][-1] == "tick 9"

        states: list[str] = []
        running = await bg.submit({"batchType": "LOCAL", "resource": PY, "args": sleeper()})
        deadline = time.monotonic() + 20
        while (await bg.batch(running.id)).state != "RUNNING":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        paused = await bg.pause(running.id)
        assert paused.state == "PAUSED"
        assert (await bg.resume(running.id)).state == "RUNNING"
        result = await bg.bulk("cancel", ids=[running.id])
        assert result.matched == 1 and result.succeeded == 1 and result.failed == []
        final = await bg.wait(running.id, timeout=30, on_change=lambda b: states.append(b.state))
        assert final.state == "CANCELED" and states[-1] == "CANCELED"

        again = await bg.restart(batch.id)
        assert again.id != batch.id and again.batch_info["restartOf"] == batch.id
        assert (await bg.wait(again.id, timeout=30)).state == "FINISHED"
        details = await bg.details(again.id)
        assert details.counters["exitCode"] == 0
        assert {a.id for a in details.attempts} == {batch.id, again.id}
        assert [s.name for s in details.steps][:3] == ["queued", "launching", "running"]
        attempts = await bg.batches(attempts_of=batch.id)
        assert attempts.total == 2

        dropped = await bg.drop(again.id)
        assert dropped.success is True
        with pytest.raises(NotFound):
            await bg.batch(again.id)
        ids = [b.id async for b in bg.iter_batches(page_size=2)]
        assert ids == [batch.id, running.id]


@pytest.mark.slow
async def test_503_is_retried_and_a_follow_survives_a_database_outage(tmp_path: Path) -> None:
    pg = DedicatedPostgres()
    gateway = await GatewayProcess(tmp_path / "g", database_url=pg.url, instance_id="g").start()
    try:
        retries: list[tuple[int, float, str]] = []
        lines: list[int] = []

        def scenario() -> None:
            with Client(gateway.url, user="alice", on_retry=lambda *a: retries.append(a), max_retry_wait=2) as bg, \
                    Client(gateway.url, user="alice", retries=0) as impatient:
                batch = bg.submit({"batchType": "LOCAL", "resource": PY, "args": ticker(60, 0.1)})
                stream = bg.follow_log(batch.id)
                restarted = threading.Event()
                for line in stream:
                    lines.append(line.number)
                    if line.text == "tick 5" and not restarted.is_set():
                        restarted.set()
                        pg.stop()
                        with pytest.raises(Unavailable) as away:
                            impatient.batch(batch.id)
                        assert away.value.status == 503 and away.value.retry_after is not None
                        assert "database unavailable" in away.value.message
                        threading.Timer(2.5, pg.start).start()
                        assert bg.batch(batch.id).id == batch.id, "retried until Postgres was back"
                assert stream.batch is not None and stream.batch.state == "FINISHED"

        await in_thread(scenario)
        assert retries and all("database unavailable" in message for _, _, message in retries)
        assert all(delay <= 2 for _, delay, _ in retries), "Retry-After is honored, capped by max_retry_wait"
        assert lines == list(range(len(lines))), "no line lost or repeated across the outage"
        assert len(lines) >= 62
    finally:
        await gateway.stop()
        pg.close()


def dag_node(node_id: str, deps: list[str], code: str = "pass") -> dict[str, object]:
    program = f"print('node {node_id}', flush=True)\n{code}"
    return {"id": node_id, "dependsOn": deps, "request": {"batchType": "LOCAL", "resource": PY, "args": ["-c", program]}}


async def test_jobs_and_schedules_sync(gateway: GatewayProcess) -> None:
    def scenario() -> None:
        with Client(gateway.url, user="alice", password="a-pass") as bg:
            nodes = [dag_node("a", []), dag_node("b", ["a"]), dag_node("c", ["a"]), dag_node("d", ["b", "c"])]
            job = bg.create_job({"name": "diamond", "nodes": nodes, "variables": {"day": "today"}})
            assert job.version == 1 and job.owner == "alice"
            assert {n.id: (n.in_, n.out) for n in job.nodes}["a"] == ([], ["b", "c"])
            assert bg.update_job("diamond", {"nodes": nodes, "description": "v2", "variables": {"day": "x"}}).version == 2
            assert bg.job("diamond").description == "v2" and bg.jobs().total == 1
            assert [e.action for e in bg.job_history("diamond").entries][:2] in (["updated", "created"],
                                                                                 ["created", "updated"])
            with pytest.raises(BadRequest) as cycle:
                bg.create_job({"name": "loop", "nodes": [dag_node("x", ["y"]), dag_node("y", ["x"])]})
            assert "cycle" in cycle.value.message

            run = bg.trigger("diamond", variables={"day": "monday"})
            assert run.job == "diamond" and run.version == 2 and run.variables["day"] == "monday"
            with bg.run_events(run.id) as events:
                seen = [(e.node, e.state) for e in events]
            assert events.run is not None and events.run.state == "SUCCEEDED"
            assert {("d", "SUCCEEDED"), ("a", "SUCCEEDED"), (None, "SUCCEEDED")} <= set(seen)
            assert seen.index(("a", "SUCCEEDED")) < seen.index(("d", "SUCCEEDED"))
            assert "node b" in bg.node_log(run.id, "b", 0, 100).log_row_set
            assert bg.runs(job="diamond").total == 1 and bg.runs(state=["FAILED"]).total == 0
            changed = bg.run(run.id, updated_since=events.run.update_time + 1)
            assert changed.nodes == [], "only nodes changed after the given time"

            schedule = bg.create_schedule({"job": "diamond", "cron": "*/5 * * * *", "variables": {"day": "x"}})
            assert len(schedule.next_fire_times) == 5 and schedule.enabled
            assert all(t % 300_000 == 0 for t in schedule.next_fire_times)
            assert bg.schedules(job="diamond").total == 1
            off = bg.update_schedule(schedule.id, {"job": "diamond", "every": "1h", "enabled": False})
            assert off.enabled is False and off.every == "1h" and off.cron is None
            assert bg.schedule_ticks(schedule.id).total == 0
            with pytest.raises(BadRequest) as bad_cron:
                bg.create_schedule({"job": "diamond", "cron": "61 * * * *"})
            assert "61 * * * *" in bad_cron.value.message, "the message quotes the expression"
            assert bg.delete_schedule(schedule.id).success
            with pytest.raises(NotFound):
                bg.schedule(schedule.id)
            assert bg.delete_job("diamond").success
            with pytest.raises(NotFound):
                bg.job("diamond")

    await in_thread(scenario)


async def test_run_control_async(gateway: GatewayProcess, tmp_path: Path) -> None:
    flag = tmp_path / "second-time"
    flaky = f"import os, sys\nif not os.path.exists({str(flag)!r}):\n    open({str(flag)!r}, 'w').close(); sys.exit(2)"
    async with AsyncClient(gateway.url, user="alice", password="a-pass") as bg:
        await bg.create_job({"name": "flaky", "nodes": [dag_node("first", []), dag_node("second", ["first"], flaky),
                                                         dag_node("third", ["second"])]})
        run = await bg.trigger("flaky")
        states: list[str] = []
        failed = await bg.wait_run(run.id, timeout=60, on_change=lambda r: states.append(r.state))
        assert failed.state == "FAILED" and {n.id: n.state for n in failed.nodes}["third"] in ("CANCELLED", "READY")
        retried = await bg.retry_run(run.id)
        assert retried.attempt == 2
        done = await bg.wait_run(run.id, timeout=60)
        assert done.state == "SUCCEEDED" and {n.id: n.attempt for n in done.nodes}["second"] == 2

        await bg.create_job({"name": "slow", "nodes": [dag_node("nap", [], "import time; time.sleep(60)"),
                                                        dag_node("after", ["nap"])]})
        slow = await bg.trigger("slow")
        paused = await bg.pause_run(slow.id)
        assert paused.state == "PAUSED"
        assert (await bg.resume_run(slow.id)).state in ("RUNNING", "PREPARING")
        await bg.cancel_run(slow.id)
        assert (await bg.wait_run(slow.id, timeout=60)).state == "KILLED"
        listed = await bg.runs(state="KILLED")
        assert [r.id for r in listed.runs] == [slow.id]
