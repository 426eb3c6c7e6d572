from __future__ import annotations

from tests.helpers import Api


async def test_local_batch_runs_to_finished(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "print('hi there')"], name="smoke")
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED"
    assert any(line == "hi there" for line in await api.full_log(batch["id"]))
