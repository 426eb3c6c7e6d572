"""`batchgate serve` as a real process: the embedded Postgres default, options, and a clean stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.gateway_process import GatewayProcess
from tests.helpers import basic


async def test_serve_with_only_a_data_dir_runs_batches_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = await GatewayProcess(data, env={"XDG_RUNTIME_DIR": None}).start()
    try:
        async with aiohttp.ClientSession(headers=basic("newcomer")) as http:
            body = {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "print('embedded ok')"]}
            async with http.post(gateway.url + "/api/v1/batches", json=body) as resp:
                assert resp.status == 200
                batch = await resp.json()
            for _ in range(200):
                async with http.get(f"{gateway.url}/api/v1/batches/{batch['id']}") as resp:
                    state = (await resp.json())["state"]
                if state == "FINISHED":
                    break
                await asyncio.sleep(0.05)
            assert state == "FINISHED"
            async with http.get(f"{gateway.url}/api/v1/batches/{batch['id']}/localLog") as resp:
                assert "embedded ok" in (await resp.json())["logRowSet"]
        assert (data / "postgres" / "PG_VERSION").exists(), "the embedded Postgres lives in the data dir"
    finally:
        code = await gateway.stop(signal.SIGTERM)
    assert code == 0
    assert not (data / "postgres" / "postmaster.pid").exists(), "Postgres is stopped with the gateway"
    log = gateway.log_path.read_text()
    assert '"event": "gateway.stopped"' in log and "open_mode" in log
    assert "Warning" not in log, "a start prints no Python warning (pgserver's XDG_RUNTIME_DIR one)"

    # A second start on the same data dir finds the batch again.
    gateway = await GatewayProcess(data, port=gateway.port).start()
    try:
        async with aiohttp.ClientSession(headers=basic("newcomer")) as http:
            async with http.get(f"{gateway.url}/api/v1/batches/{batch['id']}") as resp:
                assert (await resp.json())["state"] == "FINISHED"
    finally:
        await gateway.stop()


async def test_serve_rejects_bad_options(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"loopback" in err
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--engines", "HADOOP", "--data-dir", str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"HADOOP" in err
