"""Schedules over HTTP with a live gateway, real Postgres and real time (ticks every second).

Each run of a scheduled job is counted by a LOCAL node that appends its tick's fire time (the variable
${fireTime}, set by the scheduler) to a file.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.helpers import Api

TERMINAL_RUN = ("SUCCEEDED", "FAILED", "KILLED")


def now_ms() -> int:
    return int(time.time() * 1000)


def next_second(after_ms: float = 1000) -> int:
    """A whole second at least `after_ms` from now."""
    return (now_ms() + int(after_ms) + 999) // 1000 * 1000


def counting_job(name: str, marker: Path, *, sleep: float = 0.0, **extra: Any) -> dict[str, Any]:
    program = (
        "import sys, time\n"
        f"time.sleep({sleep})\n"
        f"open({str(marker)!r}, 'a').write(sys.argv[1] + '\\n')\n"
    )
    return {"name": name, "variables": {"fireTime": "0"}, **extra,
            "nodes": [{"id": "count", "request": {"batchType": "LOCAL", "resource": sys.executable,
                                                  "args": ["-c", program, "${fireTime}"]}}]}


def fired(marker: Path) -> list[int]:
    return [int(x) for x in marker.read_text().split()] if marker.exists() else []


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def ticks(api: Api, schedule_id: str) -> list[dict[str, Any]]:
    body = await api.call("GET", f"/api/v1/schedules/{schedule_id}/ticks?size=1000")
    return sorted(body["ticks"], key=lambda t: t["fireTime"])


async def runs_of(api: Api, job: str) -> list[dict[str, Any]]:
    body = await api.call("GET", f"/api/v1/jobs/{job}/runs?size=1000")
    return sorted(body["runs"], key=lambda r: r["fireTime"] or 0)


async def history(api: Api, job: str) -> list[dict[str, Any]]:
    body = await api.call("GET", f"/api/v1/jobs/{job}/log?size=1000")
    entries: list[dict[str, Any]] = body["entries"]
    return entries


async def all_done(api: Api, job: str, count: int) -> bool:
    runs = await runs_of(api, job)
    return len(runs) >= count and all(r["state"] in TERMINAL_RUN for r in runs)


async def test_every_second_each_tick_makes_one_run_with_its_fire_time(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "fired.txt"
    await api.call("POST", "/api/v1/jobs", json=counting_job("tick", marker))
    start = next_second(1500)
    schedule = await api.call("POST", "/api/v1/schedules", json={
        "job": "tick", "every": "1s", "startAt": start, "endAt": start + 3000, "timezone": "Europe/Berlin"})
    assert schedule["nextFireTimes"] == [start, start + 1000, start + 2000, start + 3000]
    assert schedule["lastFire"] is None and schedule["owner"] == "admin" and schedule["concurrency"] == "SKIP"
    expected = [start + i * 1000 for i in range(4)]

    await eventually(lambda: all_done(api, "tick", 4), 20, "four runs")
    assert fired(marker) == expected, "each tick ran once, with its own fire time"
    runs = await runs_of(api, "tick")
    assert [r["fireTime"] for r in runs] == expected
    for run in runs:
        assert run["trigger"] == "SCHEDULE" and run["scheduleId"] == schedule["id"] and run["state"] == "SUCCEEDED"
        assert run["submitUser"] == "admin" and run["variables"]["fireTime"] == str(run["fireTime"])
        assert 0 <= run["createTime"] - run["fireTime"] < 1000, "fired within a second of its time"
    done = await ticks(api, schedule["id"])
    assert [(t["fireTime"], t["outcome"]) for t in done] == [(t, "FIRED") for t in expected]
    assert {t["runId"] for t in done} == {r["id"] for r in runs}
    final = await api.call("GET", f"/api/v1/schedules/{schedule['id']}")
    assert final["nextFireTimes"] == [] and final["lastFire"]["fireTime"] == expected[-1]
    assert final["lastFire"]["outcome"] == "FIRED" and final["lastFire"]["runId"] == runs[-1]["id"]
    actions = [e["action"] for e in await history(api, "tick")]
    assert actions.count("tick_fired") == 4 and "schedule_created" in actions
    async with api.client.get("/metrics") as resp:
        assert 'batchgate_schedule_events_total{event="fired"} 4.0' in await resp.text()


async def test_crud_validation_permissions_and_history(api: Api, tmp_path: Path) -> None:
    alice, bob, carol, dave = (api.as_user(u) for u in ("alice", "bob", "carol", "dave"))
    await alice.call("POST", "/api/v1/jobs", json=counting_job(
        "nightly", tmp_path / "m.txt", permissions={"bob": ["READ"], "carol": ["SCHEDULE"]}))
    body = {"job": "nightly", "cron": "0 0 2 ? * MON-FRI", "timezone": "America/New_York",
            "variables": {"fireTime": "x"}, "concurrency": "queue", "catchup": "all", "catchupBound": 3}
    created = await carol.call("POST", "/api/v1/schedules", json=body)
    assert created["owner"] == "carol" and created["concurrency"] == "QUEUE" and created["catchup"] == "ALL"
    assert created["catchupBound"] == 3 and created["enabled"] is True and created["lastFire"] is None
    nxt = created["nextFireTimes"]
    assert len(nxt) == 5 and nxt == sorted(nxt) and nxt[0] > now_ms()
    assert all(time.gmtime(t / 1000).tm_hour in (6, 7) for t in nxt), "02:00 in New York is 06:00 or 07:00 UTC"
    sid = created["id"]

    # Reading needs READ (or SCHEDULE), changing SCHEDULE; the owner of the job has everything.
    assert (await bob.call("GET", f"/api/v1/schedules/{sid}"))["id"] == sid
    assert (await carol.call("GET", f"/api/v1/schedules/{sid}"))["id"] == sid
    assert [s["id"] for s in (await bob.call("GET", "/api/v1/schedules"))["schedules"]] == [sid]
    assert (await dave.call("GET", "/api/v1/schedules"))["total"] == 0
    status, err = await dave.status_of("GET", f"/api/v1/schedules/{sid}")
    assert status == 403 and "READ" in err["message"]
    status, err = await bob.status_of("PUT", f"/api/v1/schedules/{sid}", json={**body, "enabled": False})
    assert status == 403 and "SCHEDULE" in err["message"]
    status, err = await bob.status_of("POST", "/api/v1/schedules", json=body)
    assert status == 403 and "SCHEDULE" in err["message"]
    assert (await bob.status_of("DELETE", f"/api/v1/schedules/{sid}"))[0] == 403

    # A change by the job's owner: the schedule now runs as alice; disabled, it has no next fire.
    changed = await alice.call("PUT", f"/api/v1/schedules/{sid}", json={**body, "every": "15m", "cron": None,
                                                                        "enabled": False})
    assert changed["owner"] == "alice" and changed["every"] == "15m" and changed["nextFireTimes"] == []
    enabled = await alice.call("PUT", f"/api/v1/schedules/{sid}", json={**body, "every": "15m", "cron": None})
    gaps = {b - a for a, b in zip(enabled["nextFireTimes"], enabled["nextFireTimes"][1:], strict=False)}
    assert gaps == {900_000} and enabled["nextFireTimes"][0] > now_ms() + 800_000, "a period counts from now"

    # Bad input: a 400 that names the field and quotes what was wrong; never a 500.
    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({"cron": "0 0 12 ? * 9"}, "cron: '0 0 12 ? * 9'"),
        ({"cron": "0 0 12 LW * ?"}, "cron: '0 0 12 LW * ?' is not a valid cron expression"),
        ({"cron": "every day"}, "cron: 'every day' has 2 fields"),
        ({"cron": "0 0 30 2 *"}, "cron: '0 0 30 2 *' never fires"),
        ({"timezone": "Europe/Atlantis"}, "timezone: 'Europe/Atlantis' is not an IANA time zone name"),
        ({"every": "5 minutes", "cron": None}, "every: '5 minutes' is not a period"),
        ({"every": "5m"}, "cron: give either cron or every"),
        ({"cron": None}, "cron: give either cron or every"),
        ({"concurrency": "sometimes"}, "concurrency"),
        ({"catchup": "maybe"}, "catchup"),
        ({"catchupBound": 0}, "catchupBound"),
        ({"variables": {"nope": "1"}}, "variables: unknown variable 'nope'"),
        ({"endAt": 1000}, "endAt: 1000 is in the past"),
        ({"startAt": "tomorrow"}, "startAt: 'tomorrow' is neither epoch milliseconds nor an ISO 8601 time"),
        ({"startAt": now_ms() + 10_000, "endAt": now_ms() + 5_000}, "endAt: must not be before startAt"),
        ({"color": "blue"}, "color"),
        ({"job": None}, "job: required"),
    ]
    for change, message in bad_cases:
        status, err = await alice.status_of("POST", "/api/v1/schedules", json={**body, **change})
        assert status == 400 and message in err["message"], (change, status, err)
    status, err = await alice.status_of("POST", "/api/v1/schedules", json={**body, "job": "missing"})
    assert status == 404
    status, err = await alice.status_of("POST", "/api/v1/schedules", data=b"{not json")
    assert status == 400 and "body" in err["message"]
    status, err = await alice.status_of("PUT", f"/api/v1/schedules/{sid}", json={**body, "job": "other"})
    assert status == 400 and "job" in err["message"]
    assert (await alice.status_of("GET", "/api/v1/schedules/not-a-uuid"))[0] == 400
    assert (await alice.status_of("GET", "/api/v1/schedules/00000000-0000-0000-0000-000000000000"))[0] == 404

    # ISO times without an offset are wall-clock times in the schedule's zone.
    iso = await alice.call("POST", "/api/v1/schedules", json={
        "job": "nightly", "every": "1d", "timezone": "Europe/Berlin", "startAt": "2031-07-01T09:30:00"})
    assert iso["startAt"] == iso["nextFireTimes"][0] == 1940657400000

    await alice.call("DELETE", f"/api/v1/schedules/{sid}")
    assert (await alice.status_of("GET", f"/api/v1/schedules/{sid}"))[0] == 404
    entries = await history(api, "nightly")
    assert [e["action"] for e in entries if e["action"].startswith("schedule_")] == [
        "schedule_deleted", "schedule_created", "schedule_updated", "schedule_updated", "schedule_created"]
    by_action = {e["action"]: e for e in entries}  # newest first: the oldest of each action stays
    assert by_action["schedule_created"]["actor"] == "carol" and by_action["schedule_deleted"]["actor"] == "alice"
    audit = await api.call("GET", f"/api/v1/audit?target={sid}")
    assert {"schedule_create", "schedule_update", "schedule_delete"} <= {e["action"] for e in audit["entries"]}


def overlapping(runs: list[dict[str, Any]]) -> bool:
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


async def test_concurrency_rules_with_a_slow_job(api: Api, tmp_path: Path) -> None:
    start = next_second(2000)
    schedules: dict[str, dict[str, Any]] = {}
    for rule in ("SKIP", "QUEUE", "ALLOW"):
        job = f"slow-{rule.lower()}"
        await api.call("POST", "/api/v1/jobs", json=counting_job(job, tmp_path / f"{job}.txt", sleep=1.6))
        schedules[rule] = await api.call("POST", "/api/v1/schedules", json={
            "job": job, "every": "1s", "startAt": start, "endAt": start + 3000, "concurrency": rule})
    expected = [start + i * 1000 for i in range(4)]

    await eventually(lambda: all_done(api, "slow-queue", 4), 40, "the queued ticks ran one after another")
    await eventually(lambda: all_done(api, "slow-allow", 4), 10, "four overlapping runs")
    await eventually(lambda: all_done(api, "slow-skip", 2), 10, "the skip runs")

    # SKIP: a tick while a run is active is skipped, with the reason; runs never overlap.
    skip_ticks = await ticks(api, schedules["SKIP"]["id"])
    assert [t["fireTime"] for t in skip_ticks] == expected
    outcomes = [t["outcome"] for t in skip_ticks]
    assert outcomes[0] == "FIRED" and "SKIPPED" in outcomes and set(outcomes) == {"FIRED", "SKIPPED"}
    assert all("still active" in t["reason"] or "being started" in t["reason"]
               for t in skip_ticks if t["outcome"] == "SKIPPED")
    skip_runs = await runs_of(api, "slow-skip")
    assert not overlapping(skip_runs) and len(skip_runs) == outcomes.count("FIRED")
    assert fired(tmp_path / "slow-skip.txt") == [t["fireTime"] for t in skip_ticks if t["outcome"] == "FIRED"]
    skipped_history = [e for e in await history(api, "slow-skip") if e["action"] == "tick_skipped"]
    assert len(skipped_history) == outcomes.count("SKIPPED") and all(e["detail"]["reason"] for e in skipped_history)

    # QUEUE: every tick runs, one at a time, in order.
    queue_runs = await runs_of(api, "slow-queue")
    assert [r["fireTime"] for r in queue_runs] == expected and not overlapping(queue_runs)
    assert fired(tmp_path / "slow-queue.txt") == expected
    assert [t["outcome"] for t in await ticks(api, schedules["QUEUE"]["id"])] == ["FIRED"] * 4
    queued_history = [e for e in await history(api, "slow-queue") if e["action"] == "tick_queued"]
    assert len(queued_history) == 3

    # ALLOW: every tick runs at its time, overlapping the ones before.
    allow_runs = await runs_of(api, "slow-allow")
    assert [r["fireTime"] for r in allow_runs] == expected and overlapping(allow_runs)
    assert all(r["createTime"] - r["fireTime"] < 1000 for r in allow_runs)
    assert sorted(fired(tmp_path / "slow-allow.txt")) == expected


async def test_catchup_after_the_only_instance_was_down(
    start_gateway: Callable[..., Awaitable[Api]], tmp_path: Path
) -> None:
    settings = {"admin": ["admin"], "schedule_misfire_seconds": 1.0}
    first = await start_gateway(**settings)
    start = next_second(1000)
    rules = {"NONE": {}, "LAST": {}, "ALL": {"catchupBound": 2}}
    ids: dict[str, str] = {}
    for rule, extra in rules.items():
        job = f"catchup-{rule.lower()}"
        await first.call("POST", "/api/v1/jobs", json=counting_job(job, tmp_path / f"{job}.txt"))
        schedule = await first.call("POST", "/api/v1/schedules", json={
            "job": job, "every": "1s", "startAt": start, "catchup": rule, "concurrency": "ALLOW", **extra})
        ids[rule] = schedule["id"]

    async def fired_once() -> bool:
        return all([await ticks(first, sid) for sid in ids.values()])

    await eventually(fired_once, 10, "every schedule fired before the outage")
    closing_at = now_ms()
    await first.client.close()  # the only instance goes away ...
    await asyncio.sleep(6.0)
    second = await start_gateway(**settings)  # ... and another comes back on the same database
    up_at = now_ms()
    await asyncio.sleep(2.5)

    for rule, caught in (("NONE", 0), ("LAST", 1), ("ALL", 2)):
        sid, job = ids[rule], f"catchup-{rule.lower()}"
        await second.call("PUT", f"/api/v1/schedules/{sid}", json={"job": job, "every": "1s", "enabled": False})
        await eventually(lambda job=job: all_done(second, job, 1), 10, "runs done")  # type: ignore[misc]
        done = await ticks(second, sid)
        times = [t["fireTime"] for t in done]
        assert times == list(range(times[0], times[-1] + 1000, 1000)), "no tick is lost or doubled"
        missed = [t for t in done if "missed" in (t["reason"] or "")]
        assert len(missed) >= 3 and all(closing_at - 1000 < t["fireTime"] < up_at for t in missed), (rule, done)
        caught_up = [t for t in missed if "caught up" in t["reason"]]
        assert len(caught_up) == caught and all(t["outcome"] == "FIRED" for t in caught_up), (rule, done)
        skipped = [t for t in missed if t not in caught_up]
        assert all(t["outcome"] == "SKIPPED" and "missed while no instance was running" in t["reason"]
                   for t in skipped)
        if caught:
            assert missed[-caught:] == caught_up, "the latest missed ones are caught up"
        assert all(t["outcome"] == "FIRED" for t in done if t not in missed), "the others fired on time"
        assert any(t["fireTime"] > up_at for t in done if t not in missed), "on time again after the restart"
        runs = await runs_of(second, job)
        assert sorted(fired(tmp_path / f"{job}.txt")) == [r["fireTime"] for r in runs]
        assert [r["fireTime"] for r in runs] == [t["fireTime"] for t in done if t["outcome"] == "FIRED"]
        summary = [e for e in await history(second, job) if e["action"] == "tick_skipped"]
        assert summary and summary[0]["detail"]["count"] == len(skipped) and rule in summary[0]["detail"]["reason"]


async def test_a_change_on_one_instance_wakes_every_instance(
    start_gateway: Callable[..., Awaitable[Api]], tmp_path: Path
) -> None:
    # Slow heartbeats: housekeeping wakes the timers only every 20 s, so only NOTIFY can wake them sooner.
    settings = {"admin": ["admin"], "heartbeat_seconds": 20.0, "lease_seconds": 60.0}
    one = await start_gateway(**settings)
    two = await start_gateway(**settings)
    marker = tmp_path / "m.txt"
    await one.call("POST", "/api/v1/jobs", json=counting_job("wake", marker))
    schedule = await one.call("POST", "/api/v1/schedules", json={"job": "wake", "every": "1h"})
    await asyncio.sleep(0.5)
    start = next_second(1000)
    body = {"job": "wake", "every": "1s", "startAt": start, "endAt": start + 2000}
    await two.call("PUT", f"/api/v1/schedules/{schedule['id']}", json=body)
    await eventually(lambda: all_done(one, "wake", 3), 15, "three runs")
    runs = await runs_of(one, "wake")
    assert [r["fireTime"] for r in runs] == [start, start + 1000, start + 2000]
    # Woken by NOTIFY, not by the 20 s housekeeping: a bound far below 20 s, with room for a loaded machine.
    assert all(r["createTime"] - r["fireTime"] < 5000 for r in runs), "both instances woke at once"

    # Disabled on one instance: no instance fires it any more. Deleted: gone everywhere.
    start = next_second(1000)
    await one.call("PUT", f"/api/v1/schedules/{schedule['id']}", json={**body, "startAt": start, "endAt": None})
    await eventually(lambda: all_done(one, "wake", 4), 10, "it fires again")
    await two.call("PUT", f"/api/v1/schedules/{schedule['id']}", json={**body, "startAt": start, "endAt": None,
                                                                      "enabled": False})
    count = len(await runs_of(one, "wake"))
    await asyncio.sleep(2.0)
    assert len(await runs_of(one, "wake")) == count
    await one.call("DELETE", f"/api/v1/schedules/{schedule['id']}")
    assert (await two.status_of("GET", f"/api/v1/schedules/{schedule['id']}"))[0] == 404


async def test_a_tick_fails_with_the_reason_when_the_version_may_not_run(api: Api, tmp_path: Path) -> None:
    """alice's schedule runs her job as alice. Once sam, who may change the job but not execute it, has saved a
    version, her ticks would run sam's code: they fail, and say why (docs/security.md, scheduled runs)."""
    owner, writer = api.as_user("alice"), api.as_user("sam")
    marker = tmp_path / "m.txt"
    await owner.call("POST", "/api/v1/jobs", json=counting_job(
        "guarded", marker, permissions={"sam": ["READ", "WRITE"]}))
    start = next_second(1000)
    schedule = await owner.call("POST", "/api/v1/schedules", json={
        "job": "guarded", "every": "1s", "startAt": start, "endAt": start + 1000})

    async def decided(n: int) -> bool:
        return len([t for t in await ticks(owner, schedule["id"]) if t["outcome"] != "PENDING"]) >= n

    await eventually(lambda: decided(1), 10, "the first tick was decided")
    first = (await ticks(owner, schedule["id"]))[0]
    assert first["outcome"] == "FIRED", first
    [run] = await runs_of(owner, "guarded")
    assert run["submitUser"] == "alice"
    await writer.call("PUT", "/api/v1/jobs/guarded", json=counting_job(
        "guarded", marker, permissions={"sam": ["READ", "WRITE"]}, description="sam's version"))
    await eventually(lambda: decided(2), 10, "the second tick was decided")
    second = (await ticks(owner, schedule["id"]))[1]
    assert second["outcome"] == "FAILED" and second["runId"] is None, second
    assert second["reason"] == ("job guarded version 2 was saved by sam, who may not execute it; a schedule of "
                                "alice runs it neither as alice nor as sam"), second
    assert len(await runs_of(owner, "guarded")) == 1
    failed = [e for e in await history(owner, "guarded") if e["action"] == "tick_failed"]
    assert failed and "saved by sam" in failed[0]["detail"]["reason"]


async def test_ticks_left_by_a_dead_instance_fire_once(
    start_gateway: Callable[..., Awaitable[Api]], database_url: str, tmp_path: Path
) -> None:
    """An instance claimed two ticks and died: one before it triggered the run, one after. Another instance
    takes both over once the dead one's lease is gone, and each tick still makes exactly one run."""
    api = await start_gateway(admin=["admin"], heartbeat_seconds=0.5, lease_seconds=2.0)
    marker = tmp_path / "m.txt"
    await api.call("POST", "/api/v1/jobs", json=counting_job("orphans", marker))
    schedule = await api.call("POST", "/api/v1/schedules", json={"job": "orphans", "every": "1h"})
    lost, half_done = next_second(-60_000), next_second(-30_000)
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("select version from jobs where name = 'orphans'")
        existing = uuid.uuid4()
        await conn.execute(
            "insert into runs (id, job, version, trigger, submit_user, real_user, failure_action, schedule_id, "
            "fire_time, state) values ($1, 'orphans', $2, 'SCHEDULE', 'admin', 'admin', 'FINISH_CURRENTLY_RUNNING', "
            "$3, $4, 'SUCCEEDED')", existing, version, uuid.UUID(schedule["id"]), half_done)
        await conn.executemany(
            "insert into schedule_ticks (schedule_id, fire_time, instance, outcome) values ($1, $2, 'ghost', 'PENDING')",
            [(uuid.UUID(schedule["id"]), lost), (uuid.UUID(schedule["id"]), half_done)])
    finally:
        await conn.close()

    async def settled() -> bool:
        return all(t["outcome"] == "FIRED" for t in await ticks(api, schedule["id"]))

    await eventually(settled, 15, "the orphaned ticks were taken over")
    await eventually(lambda: all_done(api, "orphans", 2), 15, "the lost tick's run")
    by_time = {t["fireTime"]: t for t in await ticks(api, schedule["id"])}
    runs = {r["fireTime"]: r for r in await runs_of(api, "orphans")}
    assert sorted(runs) == [lost, half_done] and runs[half_done]["id"] == str(existing), "no second run"
    assert by_time[half_done]["runId"] == str(existing) and by_time[lost]["runId"] == runs[lost]["id"]
    assert fired(marker) == [lost], "the lost tick ran once, with its own fire time"
    entries = [e["detail"] for e in await history(api, "orphans") if e["action"] == "tick_fired"]
    assert {d["fireTime"] for d in entries if d["recovered"]} == {lost, half_done}
