"""Job control over HTTP with real processes: pause/resume, restart, drop, bulk actions, details, list."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from gateway.keys import SCHEDULER
from tests.helpers import Api, info

COUNTER = "import time\nfor i in range(10000):\n    print(f'count-{i}', flush=True)\n    time.sleep(0.05)\n"


async def _count_lines(api: Api, batch_id: str) -> int:
    return sum(1 for line in await api.full_log(batch_id) if line.startswith("count-"))


async def test_pause_and_resume_a_running_local_batch(api: Api, python: str, tmp_path: Path) -> None:
    script = tmp_path / "counter.py"
    script.write_text("import time\nfor i in range(60):\n    print(f'count-{i}', flush=True)\n    time.sleep(0.05)\n")
    batch = await api.submit(resource=str(script))
    await api.wait_for(batch["id"], ("RUNNING",))
    while await _count_lines(api, batch["id"]) < 5:
        await asyncio.sleep(0.05)
    paused = await api.call("POST", f"/api/v1/batches/{batch['id']}/pause")
    assert paused["state"] == "PAUSED"
    again = await api.call("POST", f"/api/v1/batches/{batch['id']}/pause")
    assert again["state"] == "PAUSED", "pausing twice is a no-op"
    first = await _count_lines(api, batch["id"])
    await asyncio.sleep(1.0)
    assert await _count_lines(api, batch["id"]) == first, "the log stops growing while paused"
    resumed = await api.call("POST", f"/api/v1/batches/{batch['id']}/resume")
    assert resumed["state"] == "RUNNING"
    final = await api.wait_for(batch["id"], timeout=30)
    assert final["state"] == "FINISHED" and await _count_lines(api, batch["id"]) == 60
    log = await api.full_log(batch["id"])
    assert any("pause requested by admin" in line for line in log) and any("resumed" in line for line in log)


async def test_kill_a_paused_batch(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", COUNTER])
    await api.wait_for(batch["id"], ("RUNNING",))
    await api.call("POST", f"/api/v1/batches/{batch['id']}/pause")
    assert (await api.kill(batch["id"]))["success"] is True
    assert (await api.wait_for(batch["id"], timeout=15))["state"] == "CANCELED"


async def test_paused_queued_batch_is_not_claimed_until_resumed(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_running=1, admin=["admin"])
    blocker = await api.submit(resource=python, args=["-c", "import time; time.sleep(1.5)"])
    await api.wait_for(blocker["id"], ("RUNNING",))
    held = await api.submit(resource=python, args=["-c", "print('held one ran')"])
    other = await api.submit(resource=python, args=["-c", "print('other ran')"])
    paused = await api.call("POST", f"/api/v1/batches/{held['id']}/pause")
    assert paused["state"] == "PAUSED"
    assert (await api.wait_for(other["id"], timeout=30))["state"] == "FINISHED"
    await asyncio.sleep(0.5)
    assert (await api.get(held["id"]))["state"] == "PAUSED", "the claimer skipped the held batch"
    await api.app[SCHEDULER].claim_once()
    assert (await api.get(held["id"]))["state"] == "PAUSED"
    resumed = await api.call("POST", f"/api/v1/batches/{held['id']}/resume")
    assert resumed["state"] in ("INITIALIZED", "PENDING", "RUNNING", "FINISHED")
    assert (await api.wait_for(held["id"], timeout=30))["state"] == "FINISHED"


async def test_pause_and_resume_conflicts(api: Api, python: str) -> None:
    done = await api.submit(resource=python, args=["-c", "pass"])
    await api.wait_for(done["id"])
    status, payload = await api.status_of("POST", f"/api/v1/batches/{done['id']}/pause")
    assert status == 409 and "FINISHED" in payload["message"]
    status, payload = await api.status_of("POST", f"/api/v1/batches/{done['id']}/resume")
    assert status == 409 and "not PAUSED" in payload["message"]
    status, payload = await api.status_of("POST", f"/api/v1/batches/{uuid.uuid4()}/pause")
    assert status == 404


async def test_restart_a_failed_batch(api: Api, python: str, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    program = f"import os, sys\nif not os.path.exists({str(flag)!r}):\n    sys.exit('not yet')\nprint('fixed')"
    failed = await api.submit(resource=python, args=["-c", program], name="flaky",
                              conf={"kyuubi.batch.id": str(uuid.uuid4())})
    assert (await api.wait_for(failed["id"]))["state"] == "ERROR"
    flag.write_text("")
    second = await api.call("POST", f"/api/v1/batches/{failed['id']}/restart")
    assert second["id"] != failed["id"]
    assert second["batchInfo"]["restartOf"] == failed["id"] and second["batchInfo"]["attempt"] == "2"
    assert second["name"] == "flaky" and "kyuubi.batch.id" not in info(second, "conf")
    assert (await api.wait_for(second["id"]))["state"] == "FINISHED"
    third = await api.call("POST", f"/api/v1/batches/{second['id']}/restart")
    assert third["batchInfo"]["attempt"] == "3" and third["batchInfo"]["restartRoot"] == failed["id"]
    await api.wait_for(third["id"])
    attempts = await api.call("GET", f"/api/v1/batches?attemptsOf={failed['id']}")
    assert [b["id"] for b in attempts["batches"]] == [failed["id"], second["id"], third["id"]]
    details = await api.call("GET", f"/api/v1/batches/{third['id']}/details")
    assert [a["id"] for a in details["attempts"]] == [failed["id"], second["id"], third["id"]]
    running = await api.submit(resource=python, args=["-c", "import time; time.sleep(30)"])
    status, _payload = await api.status_of("POST", f"/api/v1/batches/{running['id']}/restart")
    assert status == 409
    await api.kill(running["id"])


async def test_drop_removes_batch_and_log_but_keeps_audit(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "for i in range(100): print(i)"])
    running = await api.submit(resource=python, args=["-c", "import time; time.sleep(30)"])
    await api.wait_for(running["id"], ("RUNNING",))
    status, payload = await api.status_of("DELETE", f"/api/v1/batches/{running['id']}/drop")
    assert status == 409 and "kill it" in payload["message"]
    await api.wait_for(batch["id"])
    assert len(await api.full_log(batch["id"])) > 100
    result = await api.call("DELETE", f"/api/v1/batches/{batch['id']}/drop")
    assert result["success"] is True
    status, _ = await api.status_of("GET", f"/api/v1/batches/{batch['id']}")
    assert status == 404
    status, _ = await api.status_of("GET", f"/api/v1/batches/{batch['id']}/localLog")
    assert status == 404
    audit = await api.call("GET", f"/api/v1/audit?target={batch['id']}")
    assert {e["action"] for e in audit["entries"]} >= {"submit", "drop"}
    await api.kill(running["id"])


async def test_bulk_actions_by_filter_touch_only_own_batches(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(admin=["admin"])
    alice, bob = api.as_user("alice"), api.as_user("bob")
    tag = uuid.uuid4().hex[:6]
    sleeper = ["-c", "import time; time.sleep(60)"]
    mine = [(await alice.submit(resource=python, args=sleeper, name=f"nightly-{tag}"))["id"] for _ in range(3)]
    theirs = [(await bob.submit(resource=python, args=sleeper, name=f"nightly-{tag}"))["id"] for _ in range(2)]
    for batch_id in mine + theirs:
        await api.wait_for(batch_id, ("RUNNING",))
    result = await alice.call("PUT", "/api/v1/batches/status",
                              json={"action": "CANCEL", "filter": {"batchName": f"nightly-{tag}"}})
    assert result["matched"] == 3 and result["succeeded"] == 3 and result["failed"] == []
    for batch_id in mine:
        assert (await api.wait_for(batch_id, timeout=15))["state"] == "CANCELED"
    for batch_id in theirs:
        assert (await api.get(batch_id))["state"] == "RUNNING", "alice's filter never touches bob's batches"
    # Explicit ids are authorized one by one.
    result = await alice.call("PUT", "/api/v1/batches/status", json={"action": "CANCEL", "ids": [*theirs, mine[0]]})
    assert result["matched"] == 3 and result["succeeded"] == 0
    reasons = {f["id"]: f["message"] for f in result["failed"]}
    assert "another user" in reasons[theirs[0]] and "already CANCELED" in reasons[mine[0]]
    result = await alice.call("PUT", "/api/v1/batches/status",
                              json={"action": "DROP", "filter": {"batchName": f"nightly-{tag}", "batchState": "CANCELED"}})
    assert result == {"matched": 3, "succeeded": 3, "failed": [], "failuresTruncated": False}
    result = await api.call("PUT", "/api/v1/batches/status",
                            json={"action": "cancel", "filter": {"key": f"nightly-{tag}"}})
    assert result["matched"] == 2 and result["succeeded"] == 2, "an admin's filter reaches everyone"


async def test_bulk_restart_and_pause_resume(api: Api, python: str) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = [(await api.submit(resource=python, args=["-c", "raise SystemExit(1)"], name=f"b-{tag}"))["id"]
           for _ in range(3)]
    for batch_id in ids:
        await api.wait_for(batch_id)
    result = await api.call("PUT", "/api/v1/batches/status",
                            json={"action": "RESTART", "filter": {"batchName": f"b-{tag}"}})
    assert result["matched"] == 3 and result["succeeded"] == 3, "new attempts are not matched again"
    listed = await api.call("GET", f"/api/v1/batches?batchName=b-{tag}")
    assert listed["total"] == 6


async def test_bulk_bad_input(api: Api) -> None:
    for body, text in (({"action": "EXPLODE", "ids": [str(uuid.uuid4())]}, "action"),
                       ({"action": "CANCEL"}, "ids or filter"),
                       ({"action": "CANCEL", "filter": {"batchState": "NOPE"}}, "filter.batchState"),
                       ({"action": "CANCEL", "filter": {"colour": "red"}}, "filter.colour"),
                       ({"action": "CANCEL", "ids": ["not-a-uuid"]}, "batchId"),
                       ({"ids": []}, "action")):
        status, payload = await api.status_of("PUT", "/api/v1/batches/status", json=body)
        assert status == 400 and text in payload["message"], (body, payload)
    status, payload = await api.status_of("PUT", "/api/v1/batches/status", data=b"{nope",
                                          headers={"Content-Type": "application/json"})
    assert status == 400


async def test_details_of_a_local_batch(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "x = bytearray(30_000_000); print(len(x))"])
    await api.wait_for(batch["id"])
    details = await api.call("GET", f"/api/v1/batches/{batch['id']}/details")
    assert details["batch"]["id"] == batch["id"]
    names = [s["name"] for s in details["steps"]]
    assert names == ["queued", "launching", "running"]
    for step in details["steps"]:
        assert step["end"] >= step["start"] and step["duration"] == step["end"] - step["start"]
    counters = details["counters"]
    assert counters["exitCode"] == 0 and counters["peakRssKb"] > 30_000 and counters["cpuSeconds"] >= 0


async def test_list_sort_key_and_state_sets(api: Api, python: str) -> None:
    tag = uuid.uuid4().hex[:6]
    quick = await api.submit(resource=python, args=["-c", "pass"], name=f"Alpha-{tag}-report")
    slow = await api.submit(resource=python, args=["-c", "import time; time.sleep(0.8)"], name=f"beta-{tag}")
    fail = await api.submit(resource=python, args=["-c", "raise SystemExit(2)"], name=f"gamma-{tag}")
    for b in (quick, slow, fail):
        await api.wait_for(b["id"])
    by_duration = await api.call("GET", f"/api/v1/batches?key={tag}&sort=duration&desc=true")
    assert by_duration["batches"][0]["id"] == slow["id"]
    by_name = await api.call("GET", f"/api/v1/batches?key={tag}&sort=name")
    assert [b["name"] for b in by_name["batches"]] == sorted(b["name"] for b in by_name["batches"])
    found = await api.call("GET", f"/api/v1/batches?key=ALPHA-{tag}")
    assert [b["id"] for b in found["batches"]] == [quick["id"]], "key matches name words, any case"
    found = await api.call("GET", "/api/v1/batches?key=report")
    assert quick["id"] in [b["id"] for b in found["batches"]]
    found = await api.call("GET", f"/api/v1/batches?key={slow['id'][:8]}")
    assert slow["id"] in [b["id"] for b in found["batches"]], "key matches an id prefix"
    states = await api.call("GET", f"/api/v1/batches?key={tag}&batchState=FINISHED,ERROR")
    assert states["total"] == 3
    status, payload = await api.status_of("GET", "/api/v1/batches?sort=colour")
    assert status == 400 and "sort" in payload["message"]


async def test_key_finds_numbers_and_hyphenated_words_in_names(api: Api, python: str) -> None:
    # Postgres' text parser would read "-2024" as a signed number and "12e4" as a float.
    run = str(uuid.uuid4().int)[:9]
    named = await api.submit(resource=python, args=["-c", "pass"], name=f"build-{run}-12e4")
    other = await api.submit(resource=python, args=["-c", "pass"], name=f"build{run}_12e4x")
    for key in (run, f"build-{run}", f"{run}-12e4", f"12E4 {run}", f"BUILD {run}"):
        found = await api.call("GET", f"/api/v1/batches?key={key}")
        assert [b["id"] for b in found["batches"]] == [named["id"]], key
    found = await api.call("GET", f"/api/v1/batches?key=build{run}_12e4")
    assert [b["id"] for b in found["batches"]] == [other["id"]], "words are split at underscores, the last a prefix"
    found = await api.call("GET", f"/api/v1/batches?key=buil {run}")
    assert found["batches"] == [], "only the last word is a prefix"
