"""The Kyuubi v1 batch API over HTTP: submit, get, list with every filter, paging, idempotency, upload."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.keys import BATCH_REPOSITORY, SETTINGS
from tests.helpers import Api, info

FIELDS = {"id", "user", "batchType", "name", "appStartTime", "appId", "appUrl", "appState", "appDiagnostic",
          "kyuubiInstance", "state", "createTime", "endTime", "batchInfo"}


async def test_submit_returns_batch_with_contract_fields(api: Api, python: str) -> None:
    batch = await api.submit(resource=python, args=["-c", "print(1)"], name="fields",
                             conf={"spark.x": "1", "db.password": "hunter2"})
    assert FIELDS <= set(batch)
    uuid.UUID(batch["id"])
    assert batch["batchType"] == "LOCAL" and batch["user"] == "admin" and batch["name"] == "fields"
    assert batch["state"] in ("INITIALIZED", "PENDING", "RUNNING")
    assert batch["createTime"] > 1.6e12 and batch["endTime"] == 0
    assert info(batch, "conf")["db.password"] == "********", "secret-looking conf must be masked"
    got = await api.get(batch["id"])
    assert got["id"] == batch["id"] and got["createTime"] == batch["createTime"]


async def test_batch_type_is_case_insensitive_and_stored_upper(api: Api, python: str) -> None:
    batch = await api.submit("local", python, args=["-c", "pass"])
    assert batch["batchType"] == "LOCAL"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resource": "x"}, "batchType"),
        ({"batchType": "NOPE", "resource": "x"}, "batchType"),
        ({"batchType": "LOCAL"}, "resource"),
        ({"batchType": "LOCAL", "resource": "/no/such/program"}, "resource"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "args": "notalist"}, "args"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "args": [{"a": 1}]}, "args"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "conf": ["a"]}, "conf"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "conf": {"a": {"b": 1}}}, "conf"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "name": "bad\nname"}, "name"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "name": "x" * 300}, "name"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "conf": {"kyuubi.batch.id": "nope"}}, "kyuubi.batch.id"),
        ({"batchType": "LOCAL", "resource": "/bin/true", "conf": {"kyuubi.batch.priority": "high"}},
         "kyuubi.batch.priority"),
        ({"batchType": 5, "resource": "/bin/true"}, "batchType"),
    ],
)
async def test_bad_submit_is_400_naming_the_field(api: Api, body: dict[str, object], field: str) -> None:
    status, payload = await api.status_of("POST", "/api/v1/batches", json=body)
    assert status == 400, payload
    assert field in payload["message"], payload


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_bodies_are_400(api: Api, raw: bytes) -> None:
    status, payload = await api.status_of(
        "POST", "/api/v1/batches", data=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 400 and payload["message"].startswith("body"), payload


async def test_oversized_body_is_413(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_body_bytes=4096)
    body = {"batchType": "LOCAL", "resource": python, "args": ["x" * 10_000]}
    status, payload = await api.status_of("POST", "/api/v1/batches", json=body)
    assert status == 413 and payload["message"], payload


async def test_disabled_engine_is_400(start_gateway, python: str) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(engines=["SPARK"])
    status, payload = await api.status_of("POST", "/api/v1/batches",
                                          json={"batchType": "LOCAL", "resource": python})
    assert status == 400 and "not enabled" in payload["message"]


async def test_conf_values_of_other_json_types_become_strings(api: Api, python: str) -> None:
    batch = await api.call("POST", "/api/v1/batches", json={
        "batchType": "LOCAL", "resource": python, "args": ["-c", "pass", 7],
        "conf": {"n": 3, "flag": True, "kyuubi.batch.priority": 2},
    })
    assert info(batch, "conf") == {"n": "3", "flag": "true", "kyuubi.batch.priority": "2"}
    assert info(batch, "args")[-1] == "7"
    assert info(batch, "priority") == 2


async def test_get_unknown_and_malformed_ids(api: Api) -> None:
    status, payload = await api.status_of("GET", f"/api/v1/batches/{uuid.uuid4()}")
    assert status == 404 and "not found" in payload["message"]
    status, payload = await api.status_of("GET", "/api/v1/batches/not-a-uuid")
    assert status == 400 and payload["message"]
    for path in (f"/api/v1/batches/{uuid.uuid4()}/localLog", "/api/v1/batches/zzz/localLog"):
        status, payload = await api.status_of("GET", path)
        assert status in (400, 404) and payload["message"]
    status, payload = await api.status_of("DELETE", f"/api/v1/batches/{uuid.uuid4()}")
    assert status == 404


async def test_unknown_route_and_method_are_json_errors(api: Api) -> None:
    status, payload = await api.status_of("GET", "/api/v1/nothing-here")
    assert status == 404 and payload["message"]
    status, payload = await api.status_of("PATCH", "/api/v1/batches")
    assert status == 405 and payload["message"]


async def _finished(api: Api, python: str, n: int, name: str, code: int = 0) -> list[str]:
    ids = [(await api.submit(resource=python, args=["-c", f"raise SystemExit({code})"], name=name))["id"]
           for _ in range(n)]
    for batch_id in ids:
        await api.wait_for(batch_id)
    return ids


async def test_list_filters_and_total(api: Api, python: str) -> None:
    tag = uuid.uuid4().hex[:6]
    good = await _finished(api, python, 4, f"ok-{tag}")
    bad = await _finished(api, python, 2, f"bad-{tag}", code=2)
    other = api.as_user("carol")
    mine = await _finished(other, python, 1, f"ok-{tag}")

    page = await api.call("GET", f"/api/v1/batches?batchName=ok-{tag}&size=2")
    assert page["total"] == 5, "total counts every match, not the page"
    assert len(page["batches"]) == 2 and page["from"] == 0

    page = await api.call("GET", f"/api/v1/batches?batchName=bad-{tag}&batchState=ERROR")
    assert sorted(b["id"] for b in page["batches"]) == sorted(bad)
    page = await api.call("GET", "/api/v1/batches?batchState=FINISHED&batchType=local&size=100")
    assert set(good + mine) <= {b["id"] for b in page["batches"]}
    assert all(b["state"] == "FINISHED" for b in page["batches"])
    page = await api.call("GET", "/api/v1/batches?batchState=error,canceled&size=100")
    assert set(bad) <= {b["id"] for b in page["batches"]}

    page = await api.call("GET", "/api/v1/batches?batchUser=carol")
    assert [b["id"] for b in page["batches"]] == mine

    future = int(time.time() * 1000) + 3_600_000
    page = await api.call("GET", f"/api/v1/batches?createTime={future}")
    assert page == {"from": 0, "total": 0, "batches": []}
    first = await api.get(good[0])
    page = await api.call("GET", f"/api/v1/batches?batchName=ok-{tag}&createTime={first['createTime']}")
    assert page["total"] == 5
    ended = {b: (await api.get(b))["endTime"] for b in good}
    cutoff = sorted(ended.values())[1]
    page = await api.call("GET", f"/api/v1/batches?batchName=ok-{tag}&endTime={cutoff}&batchUser=admin")
    expected = {b for b, end in ended.items() if end <= cutoff}
    assert {b["id"] for b in page["batches"]} == expected and len(expected) < 4, "endTime bounds the end time"
    page = await api.call("GET", "/api/v1/batches?batchType=SPARK")
    assert page["total"] == 0


async def test_list_paging_and_order(api: Api, python: str) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = await _finished(api, python, 5, f"page-{tag}")
    asc = await api.call("GET", f"/api/v1/batches?batchName=page-{tag}&size=100")
    assert [b["id"] for b in asc["batches"]] == ids
    desc = [
        b["id"]
        for start in (0, 2, 4)
        for b in (await api.call(
            "GET", f"/api/v1/batches?batchName=page-{tag}&size=2&from={start}&desc=true"))["batches"]
    ]
    assert desc == list(reversed(ids))
    past = await api.call("GET", f"/api/v1/batches?batchName=page-{tag}&from=50")
    assert past["total"] == 5 and past["batches"] == [] and past["from"] == 50


@pytest.mark.parametrize("query", [
    "batchState=BOGUS", "batchType=HADOOP", "size=-1", "size=0", "size=abc", "size=100000", "from=-5",
    "from=x", "createTime=5&endTime=1", "createTime=-3", "endTime=soon", "desc=maybe",
])
async def test_bad_list_queries_are_400(api: Api, query: str) -> None:
    status, payload = await api.status_of("GET", f"/api/v1/batches?{query}")
    assert status == 400, (query, payload)
    assert query.split("=")[0] in payload["message"] or "endTime" in payload["message"], payload


async def test_idempotent_submit_with_kyuubi_batch_id(api: Api, tmp_path, python: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "runs.txt"
    batch_id = str(uuid.uuid4())
    program = f"open({str(marker)!r}, 'a').write('ran\\n')"
    body = {"batchType": "LOCAL", "resource": python, "args": ["-c", program],
            "conf": {"kyuubi.batch.id": batch_id}}

    async def post() -> dict[str, object]:
        result: dict[str, object] = await api.call("POST", "/api/v1/batches", json=body)
        return result

    results = await asyncio.gather(*(post() for _ in range(12)))
    assert {r["id"] for r in results} == {batch_id}
    duplicated = [r for r in results if r["batchInfo"].get("kyuubi.batch.duplicated") == "true"]  # type: ignore[attr-defined]
    assert len(duplicated) == 11, "exactly one submit creates the batch"
    await api.wait_for(batch_id)
    again = await post()
    assert again["batchInfo"]["kyuubi.batch.duplicated"] == "true"  # type: ignore[index]
    assert again["state"] == "FINISHED"
    assert marker.read_text() == "ran\n", "the program ran exactly once"


async def test_idempotent_id_of_another_user_is_forbidden(api: Api, python: str) -> None:
    batch_id = str(uuid.uuid4())
    body = {"batchType": "LOCAL", "resource": python, "args": ["-c", "pass"], "conf": {"kyuubi.batch.id": batch_id}}
    await api.as_user("alice").call("POST", "/api/v1/batches", json=body)
    status, payload = await api.as_user("bob").status_of("POST", "/api/v1/batches", json=body)
    assert status == 403 and "kyuubi.batch.id" in payload["message"]


async def test_multipart_upload_runs_the_uploaded_file(api: Api) -> None:
    script = b"import sys\nprint('uploaded script says', sys.argv[1])\n"
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL", "args": ["hi"], "name": "up"}',
                   content_type="application/json")
    form.add_field("resourceFile", script, filename="../../etc/evil name.py", content_type="text/x-python")
    batch = await api.call("POST", "/api/v1/batches", data=form)
    assert batch["batchInfo"]["uploadedFile"] == "evil_name.py", "the file name is reduced to a safe base name"
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED", final
    assert "uploaded script says hi" in await api.full_log(batch["id"])


async def test_multipart_without_request_part_is_400(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("resourceFile", b"print(1)", filename="a.py")
    status, payload = await api.status_of("POST", "/api/v1/batches", data=form)
    assert status == 400 and "batchRequest" in payload["message"]
    form = aiohttp.FormData()
    form.add_field("batchRequest", "{}", content_type="application/json")
    form.add_field("surprise", b"x", filename="a.py")
    status, payload = await api.status_of("POST", "/api/v1/batches", data=form)
    assert status == 400


async def test_upload_over_limit_is_413(start_gateway) -> None:  # type: ignore[no-untyped-def]
    api: Api = await start_gateway(max_upload_bytes=2048)
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL"}', content_type="application/json")
    form.add_field("resourceFile", b"#" * 10_000, filename="big.py")
    status, payload = await api.status_of("POST", "/api/v1/batches", data=form)
    assert status == 413 and "resourceFile" in payload["message"]


async def test_totals_follow_submits_state_changes_and_drops(api: Api, python: str) -> None:
    # Totals for user/type/state filters come from batch_counts (maintained by triggers), not count(*).
    dave = api.as_user("dave")
    ok = await _finished(dave, python, 3, "totals")
    bad = await _finished(dave, python, 2, "totals", code=3)
    sleeper = (await dave.submit(resource=python, args=["-c", "import time; time.sleep(60)"]))["id"]
    await api.wait_for(sleeper, ("RUNNING",))

    async def total(query: str) -> int:
        return int((await api.call("GET", f"/api/v1/batches?{query}&size=1"))["total"])

    assert await total("batchUser=dave") == 6
    assert await total("batchUser=dave&batchState=FINISHED") == 3
    assert await total("batchUser=dave&batchState=ERROR,RUNNING&batchType=LOCAL") == 3
    assert await total("batchUser=dave&batchType=SPARK") == 0
    await api.kill(sleeper)
    await api.wait_for(sleeper)
    assert await total("batchUser=dave&batchState=RUNNING") == 0
    assert await total("batchUser=dave&batchState=CANCELED") == 1
    result = await api.call("PUT", "/api/v1/batches/status", json={"action": "DROP", "ids": [ok[0], bad[0]]})
    assert result["succeeded"] == 2
    assert await total("batchUser=dave") == 4
    # Folding the appended +1/-1 rows changes no total.
    await api.app[BATCH_REPOSITORY].compact_counts()
    assert await total("batchUser=dave") == 4 and await total("batchUser=dave&batchState=ERROR") == 1
    assert await total("batchState=FINISHED,ERROR,CANCELED") == (await api.call(
        "GET", "/api/v1/batches?batchState=FINISHED,ERROR,CANCELED&size=1000"))["total"]


@pytest.mark.parametrize("order", ["sort=createTime", "sort=createTime&desc=true", "sort=duration",
                                   "sort=duration&desc=true", "sort=name&desc=true", "batchUser=erin&sort=name"])
async def test_pages_past_the_middle_match_the_whole_list(api: Api, python: str, order: str) -> None:
    # Past the middle the store walks from the other end; the pages must not notice.
    erin = api.as_user("erin")
    ids = await _finished(erin, python, 5, "b")
    ids += await _finished(erin, python, 1, "a")
    ids.append((await erin.submit(resource=python, args=["-c", "import time; time.sleep(60)"]))["id"])
    await api.wait_for(ids[-1], ("RUNNING",))  # no duration yet: the longest, and unnamed: the last name
    whole = [b["id"] for b in (await api.call("GET", f"/api/v1/batches?{order}&size=100"))["batches"]]
    assert sorted(whole) == sorted(ids)
    if "sort=duration" in order or "sort=name" in order:
        assert whole.index(ids[-1]) == (0 if "desc=true" in order else len(ids) - 1), "a missing value is largest"
    for size in (1, 2, 3, 5):
        paged: list[str] = []
        for start in range(0, len(ids), size):
            page = await api.call("GET", f"/api/v1/batches?{order}&size={size}&from={start}")
            assert page["total"] == len(ids) and page["from"] == start
            paged += [b["id"] for b in page["batches"]]
        assert paged == whole, f"size {size}"
    await api.kill(ids[-1])


async def test_deep_pages_of_a_large_unfiltered_list_are_exact(api: Api, database_url: str) -> None:
    # 12,000 batches over 5 hours with many equal create times: deep pages are found through the
    # per-hour and per-minute counts (batch_time_counts), and must match a plain OFFSET exactly.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("""
            insert into batches (id, batch_type, batch_user, real_user, resource, state, create_time)
            select gen_random_uuid(), 'LOCAL', 'u' || (g % 7), 'u', 'true', 'FINISHED',
                   1700000000000 + (g / 3) * 4500
            from generate_series(1, 12000) g""")
        await conn.execute("delete from batches where create_time % 7 = 0")  # gaps, and -n rows to count
        await api.app[BATCH_REPOSITORY].compact_counts()
        await conn.execute("""
            insert into batches (id, batch_type, batch_user, real_user, resource, state, create_time)
            select gen_random_uuid(), 'LOCAL', 'late', 'u', 'true', 'FINISHED', 1700000000000 + g * 997
            from generate_series(1, 500) g""")
        total = await conn.fetchval("select count(*) from batches")
        for offset in (0, 5_001, 6_000, 7_777, total // 2, total - 5_002, total - 150):
            for desc in (False, True):
                order = "desc" if desc else "asc"
                expected = [str(r["id"]) for r in await conn.fetch(
                    f"select id from batches order by create_time {order}, id {order} offset $1 limit 100",
                    offset)]
                page = await api.call("GET", f"/api/v1/batches?from={offset}&size=100&desc={str(desc).lower()}")
                assert page["total"] == total
                assert [b["id"] for b in page["batches"]] == expected, (offset, desc)
    finally:
        await conn.close()


async def test_upload_runs_with_a_relative_data_dir(start_gateway: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's serve command names a relative data dir (./batchgate-data): an uploaded program must
    still be found once it runs inside its own working dir (the path was applied twice: exit code 2)."""
    monkeypatch.chdir(tmp_path)
    api = await start_gateway(data_dir=Path("batchgate-data"))
    assert api.app[SETTINGS].instance.data_dir == tmp_path / "batchgate-data", "resolved once, where settings are built"
    form = aiohttp.FormData()
    form.add_field("batchRequest", '{"batchType": "LOCAL", "args": ["rel"]}', content_type="application/json")
    form.add_field("resourceFile", b"import sys\nprint('relative says', sys.argv[1])\n", filename="job.py")
    batch = await api.call("POST", "/api/v1/batches", data=form)
    final = await api.wait_for(batch["id"])
    assert final["state"] == "FINISHED", (final, await api.full_log(batch["id"]))
    assert "relative says rel" in await api.full_log(batch["id"])
