"""No 500 from input: what a hostile or broken client sends is a 4xx with a message, and a client that
leaves a stream is a 499 at info level, never an error."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway_process import GatewayProcess
from tests.helpers import Api, basic
from tests.test_auth import htpasswd

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.fixture
async def gate(start_gateway, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    users = htpasswd(tmp_path / "users", {"root": "r-pass", "alice": "a-pass"})
    api: Api = await start_gateway(users_file=users, admin=["root"], engines=["LOCAL", "SPARK", "PYSPARK"])
    return api.as_user("root", "r-pass")


async def test_a_password_longer_than_bcrypt_reads_is_401(gate: Api) -> None:
    for password in ("x" * 73, "é" * 40, "a-pass" + "!" * 200):
        for path in ("/api/v1/batches", "/livy/batches"):
            async with gate.client.get(path, headers=basic("alice", password)) as resp:
                assert resp.status == 401, (path, await resp.text())
        async with gate.client.post("/api/v1/sessions", headers=basic("alice", password)) as resp:
            assert resp.status == 401
    assert (await gate.as_user("alice", "a-pass").call("GET", "/api/v1/batches"))["total"] == 0


def _json_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                out.append((method.upper(), path))
    return out


async def test_deep_json_is_400_on_every_json_endpoint(gate: Api) -> None:
    spec = await gate.call("GET", "/openapi.json")
    operations = _json_operations(spec)
    assert len(operations) >= 10, operations
    batch = str(uuid.uuid4())
    filled = {"batch_id": batch, "batchId": batch, "name": "job", "run_id": batch, "runId": batch,
              "schedule_id": batch, "scheduleId": batch, "sla_id": batch, "slaId": batch, "project": "p",
              "id": "1", "node_id": "n", "nodeId": "n"}
    for method, template in operations:
        path = template.format_map(filled)
        for body in (DEEP, DEEP_OBJECT):
            status, payload = await gate.status_of(method, path, data=body,
                                                   headers={"Content-Type": "application/json"})
            assert status == 400, (method, template, status, payload)
            message = payload.get("message") or payload.get("msg") or payload.get("msg_text") \
                if isinstance(payload, dict) else payload
            assert "nested deeper" in json.dumps(payload), (method, template, message)
    # The multipart submit's batchRequest part too.
    form = aiohttp.FormData()
    form.add_field("batchRequest", DEEP_OBJECT, content_type="application/json")
    status, payload = await gate.status_of("POST", "/api/v1/batches", data=form)
    assert status == 400 and "batchRequest: JSON nested deeper" in payload["message"], payload


async def _raw(gate: Api, body: bytes, content_type: str) -> tuple[int, Any]:
    headers = {**gate.headers, "Content-Type": content_type}
    async with gate.client.post("/api/v1/batches", data=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith("{") else text)


@pytest.mark.parametrize(("body", "boundary"), [
    (b"no boundary anywhere in here", "xyz"),
    (b"--xyz\r\nContent-Disposition: form-data; name=\"batchRequest\"\r\n\r\n{}", "xyz"),  # never closed
    (b"--xyz\r\n\r\n\r\n--xyz--\r\n", "xyz"),  # a part without a name
    (b"--xyz\r\nContent-Disposition: form-data; name=\"resourceFile\"; filename=\"a.py\"\r\n"
     b"Content-Transfer-Encoding: gibberish\r\n\r\nprint(1)\r\n--xyz--\r\n", "xyz"),
    (b"--abc\r\nContent-Disposition: form-data; name=\"batchRequest\"\r\n\r\n{}\r\n--abc--\r\n", "xyz"),
    (b"--xyz\r\nthis is not a header line\r\n\r\n{}\r\n--xyz--\r\n", "xyz"),
    (b"--xyz\r\nContent-Disposition: form-data; name=\"batchRequest\"\r\n"
     b"Content-Transfer-Encoding: gibberish\r\n\r\n{}\r\n--xyz--\r\n", "xyz"),
    (b"", "xyz"),
])
async def test_a_broken_multipart_body_is_400(gate: Api, body: bytes, boundary: str) -> None:
    status, payload = await _raw(gate, body, f"multipart/form-data; boundary={boundary}")
    assert status == 400 and isinstance(payload, dict) and payload["message"], (status, payload)
    status, _ = await _raw(gate, b"x", "multipart/form-data")  # no boundary parameter at all
    assert status == 400


@pytest.mark.parametrize("value", ["99999999999999999999999", "-5", "abc", "1e9", "4611686018427387905"])
async def test_a_last_event_id_out_of_range_is_400_before_any_stream(gate: Api, python: str, value: str) -> None:
    batch = await gate.submit(resource=python, args=["-c", "print(1)"])
    await gate.call("POST", "/api/v1/jobs", json={"name": "j", "nodes": [
        {"id": "n", "request": {"batchType": "LOCAL", "resource": python, "args": ["-c", "pass"]}}]})
    run = await gate.call("POST", "/api/v1/jobs/j/runs", json={})
    for path in (f"/api/v1/batches/{batch['id']}/log/follow", f"/api/v1/runs/{run['id']}/events"):
        async with gate.client.get(path, headers={**gate.headers, "Last-Event-ID": value}) as resp:
            body = await resp.text()
            assert resp.status == 400, (path, value, resp.status, body)
            assert resp.headers["Content-Type"].startswith("application/json"), body
            assert json.loads(body)["message"].startswith("Last-Event-ID: "), body


async def test_a_client_leaving_a_stream_is_a_499_at_info(tmp_path: Path, database_url: str, python: str) -> None:
    """In a real `batchgate serve` (the in-process test server cancels the handler instead): the client
    goes away while the gateway writes to its stream."""
    gateway = await GatewayProcess(tmp_path / "data", database_url=database_url).start()
    try:
        async with aiohttp.ClientSession(gateway.url, headers=basic("alice")) as session:
            async with session.post("/api/v1/batches", json={"batchType": "LOCAL", "resource": python, "args": [
                    "-c", "import time\nfor i in range(3000):\n    print('x' * 200, flush=True); time.sleep(0.01)"]}) as r:
                batch = await r.json()
            for _ in range(3):
                async with session.get(f"/api/v1/batches/{batch['id']}/log/follow") as resp:
                    assert resp.status == 200
                    await resp.content.readany()
                    assert resp.connection is not None
                    resp.connection.transport.abort()  # type: ignore[union-attr]  # gone, mid-stream
            await asyncio.sleep(2)  # the gateway notices at its next write
            async with session.delete(f"/api/v1/batches/{batch['id']}") as resp:
                assert resp.status == 200
            async with session.get("/metrics") as resp:
                metrics = await resp.text()
    finally:
        await gateway.stop()
    assert 'status="499"' in metrics and 'status="500"' not in metrics, metrics
    events = [json.loads(line) for line in gateway.log_path.read_text().splitlines() if line.startswith("{")]
    left = [e for e in events if e.get("event") == "api.client_left"]
    assert len(left) == 3 and all(e["level"] == "info" and e["status"] == 499 for e in left), left
    assert not [e for e in events if e.get("level") in ("error", "critical")], events


async def test_malformed_basic_credentials_are_401(gate: Api) -> None:
    for header in ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic !!!", "Basic " + "A" * 10000,
                   "Basic " + base64.b64encode(b"nocolon").decode()):
        async with gate.client.get("/api/v1/batches", headers={"Authorization": header}) as resp:
            assert resp.status in (400, 401), (header[:40], resp.status)
