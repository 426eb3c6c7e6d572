"""`batchgate serve --workers N`: processes sharing one port, each a full instance on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.gateway_process import GatewayProcess, free_port
from tests.helpers import basic

SLEEPER = {"batchType": "LOCAL", "resource": sys.executable, "args": ["-c", "import time; time.sleep(120)"]}


def workers_of(parent: int) -> dict[str, int]:
    """instance id -> pid of the parent's worker processes."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            for item in environ:
                if item.startswith(b"BATCHGATE_INSTANCE_ID="):
                    found[item.split(b"=", 1)[1].decode()] = int(pid)
    return found


async def call(url: str, method: str, path: str, body: Any = None) -> Any:
    # A connection per request: SO_REUSEPORT spreads connections, not requests, over the workers.
    async with aiohttp.ClientSession(headers=basic("admin")) as http, \
            http.request(method, url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def wait_state(url: str, batch_id: str, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        batch: dict[str, Any] = await call(url, "GET", f"/api/v1/batches/{batch_id}")
        if batch["state"] in states or asyncio.get_running_loop().time() > deadline:
            return batch
        await asyncio.sleep(0.1)


async def test_workers_share_a_port_survive_a_kill_and_stop_together(tmp_path: Path) -> None:
    data = tmp_path / "data"
    again: int | None = None
    livy = free_port()
    gateway = await GatewayProcess(data, instance_id="gw", extra_args=[
        "--workers", "2", "--admin", "admin", "--livy-port", str(livy)]).start()
    assert gateway.proc is not None
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(workers_of(gateway.proc.pid)) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        workers = workers_of(gateway.proc.pid)
        assert set(workers) == {"gw/w0", "gw/w1"}, workers
        # Flags reach the workers: both serve the Livy API at the root of --livy-port.
        for _ in range(6):
            livy_list = await call(f"http://127.0.0.1:{livy}", "GET", "/batches")
            assert "sessions" in livy_list and "total" in livy_list, livy_list
        # Submit until both workers own a running batch: both answer on the one port.
        owners: dict[str, str] = {}
        for _ in range(40):
            batch = await call(gateway.url, "POST", "/api/v1/batches", SLEEPER)
            running = await wait_state(gateway.url, batch["id"], ("RUNNING",))
            owners[batch["id"]] = running["kyuubiInstance"]
            if set(owners.values()) == {"gw/w0", "gw/w1"}:
                break
        assert set(owners.values()) == {"gw/w0", "gw/w1"}, owners

        # kill -9 one worker: the parent starts it again under the same instance id, and it re-attaches
        # its batches at once (no lease to wait for).
        os.kill(workers["gw/w0"], signal.SIGKILL)
        while asyncio.get_running_loop().time() < deadline + 60:
            again = workers_of(gateway.proc.pid).get("gw/w0")
            if again is not None and again != workers["gw/w0"]:
                break
            await asyncio.sleep(0.2)
        assert again is not None and again != workers["gw/w0"], "the dead worker was started again"
        for batch_id in owners:
            result = await call(gateway.url, "DELETE", f"/api/v1/batches/{batch_id}")
            assert result["success"], result
        for batch_id in owners:
            assert (await wait_state(gateway.url, batch_id, ("CANCELED",)))["state"] == "CANCELED"
        log = await call(gateway.url, "GET", f"/api/v1/batches/{next(iter(owners))}/localLog?size=1000")
        assert log["rowCount"] > 0
    finally:
        code = await gateway.stop(signal.SIGTERM)
    assert code == 0
    for pid in (workers["gw/w1"], again):
        assert not Path(f"/proc/{pid}").exists(), "every worker stopped with the parent"
    assert not (data / "postgres" / "postmaster.pid").exists(), "the parent stops the embedded Postgres"
    text = gateway.log_path.read_text()
    assert "workers.worker_exited" in text and text.count("gateway.stopped") >= 2


async def test_workers_need_a_fixed_port(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", "0", "--data-dir", str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"workers share their ports" in err


async def test_workers_stop_when_their_parent_is_killed(tmp_path: Path, database_url: str) -> None:
    # An orphan would keep serving the port under an instance id the restarted parent hands out again.
    gateway = await GatewayProcess(tmp_path / "data", database_url=database_url, instance_id="orphan",
                                   extra_args=["--workers", "2"]).start()
    assert gateway.proc is not None
    deadline = asyncio.get_running_loop().time() + 60
    while len(workers_of(gateway.proc.pid)) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    pids = list(workers_of(gateway.proc.pid).values())
    assert len(pids) == 2
    # Both workers serve before the parent dies (the first one answering /healthz is not enough under load).
    while gateway.log_path.read_text().count("gateway.started") < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    gateway.proc.kill()
    await gateway.proc.wait()
    deadline = asyncio.get_running_loop().time() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "no worker outlives its parent"
    text = gateway.log_path.read_text()
    assert text.count("gateway.stopped") == 2 and text.count("workers.parent_gone") == 2, "each stopped cleanly"


async def test_workers_that_cannot_start_make_the_parent_give_up(tmp_path: Path, database_url: str) -> None:
    # The port is taken by a socket without SO_REUSEPORT: every worker start fails at once. The parent
    # waits longer each time (1, 2, 4, 8 s) and then stops with an error instead of looping forever.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "fleet.log"
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", str(port),
                "--data-dir", str(tmp_path / "data"), "--database-url", database_url,
                stdout=out, stderr=out, env={**os.environ, "BATCHGATE_LOG_FORMAT": "json"})
            code = await asyncio.wait_for(proc.wait(), 120)
    text = log.read_text()
    assert code == 1 and "workers.giving_up" in text, text[-2000:]
    assert text.count('"restart_in": 8.0') >= 1 and '"restart_in": 16.0' not in text, "backoff, then give up"
