"""The queue: claims by priority then age, limits that hold across instances, kill from any instance."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from gateway.keys import RETENTION, SCHEDULER
from tests.helpers import Api

SLEEPER = "import time; time.sleep({})"


async def _states(api: Api, ids: list[str]) -> list[str]:
    return [(await api.get(i))["state"] for i in ids]


async def test_global_limit_holds_and_log_says_why(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_running=2)
    ids = [(await api.submit(resource=python, args=["-c", SLEEPER.format(1.5)]))["id"] for _ in range(4)]
    await asyncio.sleep(0.8)
    states = await _states(api, ids)
    assert states.count("RUNNING") + states.count("PENDING") == 2 and states.count("INITIALIZED") == 2
    waiting = [i for i, s in zip(ids, states, strict=True) if s == "INITIALIZED"]
    log = await api.full_log(waiting[0])
    assert any("global limit of 2 running batches" in line for line in log), log
    assert (await api.get(waiting[0]))["batchInfo"]["waitReason"].startswith("waiting")
    for batch_id in ids:
        assert (await api.wait_for(batch_id, timeout=30))["state"] == "FINISHED"
    assert sum(1 for line in await api.full_log(waiting[0]) if "limit" in line) == 1, "the reason is logged once"


async def test_per_user_and_per_type_limits(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_running_per_user=1, max_running_per_type={"LOCAL": 3}, admin=["admin"])
    alice, bob, carol, dave = (api.as_user(u) for u in ("alice", "bob", "carol", "dave"))
    a = [(await alice.submit(resource=python, args=["-c", SLEEPER.format(2)]))["id"] for _ in range(2)]
    b = (await bob.submit(resource=python, args=["-c", SLEEPER.format(2)]))["id"]
    c = (await carol.submit(resource=python, args=["-c", SLEEPER.format(2)]))["id"]
    d = (await dave.submit(resource=python, args=["-c", SLEEPER.format(2)]))["id"]
    await asyncio.sleep(1.0)
    assert (await _states(api, a)).count("INITIALIZED") == 1, "alice runs one batch at a time"
    active = [s for s in await _states(api, [*a, b, c, d]) if s in ("PENDING", "RUNNING")]
    assert len(active) == 3, "the LOCAL type limit caps the total at 3"
    waiting_alice = next(i for i, s in zip(a, await _states(api, a), strict=True) if s == "INITIALIZED")
    assert any("per-user limit" in line for line in await api.full_log(waiting_alice))
    for batch_id in [*a, b, c, d]:
        assert (await api.wait_for(batch_id, timeout=40))["state"] == "FINISHED"


async def test_priority_then_age(start_gateway, python: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_running=1)
    order = tmp_path / "order.txt"
    blocker = await api.submit(resource=python, args=["-c", SLEEPER.format(1.0)])
    await api.wait_for(blocker["id"], ("RUNNING",))
    program = f"import os; open({str(order)!r}, 'a').write(os.environ['BATCHGATE_BATCH_ID'] + '\\n')"
    low1 = await api.submit(resource=python, args=["-c", program], conf={"kyuubi.batch.priority": "1"})
    low2 = await api.submit(resource=python, args=["-c", program], conf={"kyuubi.batch.priority": "1"})
    high = await api.submit(resource=python, args=["-c", program], conf={"kyuubi.batch.priority": "9"})
    for batch in (low1, low2, high):
        await api.wait_for(batch["id"], timeout=30)
    assert order.read_text().split() == [high["id"], low1["id"], low2["id"]]


async def test_many_instances_claim_each_batch_exactly_once(start_gateway, python: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gateways: list[Api] = [await start_gateway(instance_id=f"i{n}") for n in range(3)]
    marker = tmp_path / "runs.txt"
    program = f"import os; open({str(marker)!r}, 'a').write(os.environ['BATCHGATE_BATCH_ID'] + '\\n')"
    ids = await asyncio.gather(*(
        gateways[n % 3].submit(resource=python, args=["-c", program]) for n in range(60)
    ))
    owners = collections.Counter()
    for batch in ids:
        final = await gateways[0].wait_for(batch["id"], timeout=60)
        assert final["state"] == "FINISHED"
        owners[final["kyuubiInstance"]] += 1
    counts = collections.Counter(marker.read_text().split())
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert sum(owners.values()) == 60


async def test_kill_through_another_instance(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    first: Api = await start_gateway(instance_id="first")
    second: Api = await start_gateway(instance_id="second")
    await second.app[SCHEDULER].stop()  # only "first" runs batches
    batch = await first.submit(resource=python, args=["-c", SLEEPER.format(60)])
    running = await second.wait_for(batch["id"], ("RUNNING",), timeout=20)
    assert running["kyuubiInstance"] == "first"
    result = await second.kill(batch["id"])
    assert result["success"] is True
    final = await second.wait_for(batch["id"], timeout=10)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED"


async def test_retention_purges_old_terminal_batches_and_logs(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(retention_days=1)
    old = await api.submit(resource=python, args=["-c", "for i in range(5000): print(i)"])
    await api.wait_for(old["id"])
    running = await api.submit(resource=python, args=["-c", SLEEPER.format(30)])
    await api.wait_for(running["id"], ("RUNNING",))
    retention = api.app[RETENTION]
    assert await retention.purge_once() == 0, "nothing is old enough yet"
    later = (await api.get(old["id"]))["endTime"] + 2 * 86_400_000
    assert await retention.purge_once(now_ms=later) == 1
    status, _ = await api.status_of("GET", f"/api/v1/batches/{old['id']}")
    assert status == 404
    assert (await api.get(running["id"]))["state"] == "RUNNING", "active batches are never purged"
    await api.kill(running["id"])
