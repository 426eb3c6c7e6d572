"""Runs `batchgate serve` as a real child process, for tests that kill, restart or SIGTERM it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GatewayProcess:
    def __init__(self, data_dir: Path, *, database_url: str | None = None, port: int | None = None,
                 instance_id: str | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str | None] | None = None, python: str = sys.executable,
                 cwd: Path | None = None) -> None:
        """`python` and `cwd` run another installation or source tree (an older or a next release); an
        `env` value None leaves that variable unset."""
        self.data_dir = data_dir
        self.python = python
        self.cwd = cwd
        self.database_url = database_url
        self.port = port or free_port()
        self.instance_id = instance_id
        self.extra_args = extra_args or []
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = data_dir.parent / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60) -> GatewayProcess:
        args = [self.python, "-m", "gateway", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if self.instance_id:
            args += ["--instance-id", self.instance_id]
        merged = {**os.environ, "BATCHGATE_LOG_FORMAT": "json", **self.env}
        env = {k: v for k, v in merged.items() if v is not None}  # None: not set at all
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # handed to the child
        self.proc = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log, env=env, cwd=self.cwd)
        log.close()
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"gateway exited with {self.proc.returncode}: {self.log_path.read_text()}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"gateway not ready after {timeout}s: {self.log_path.read_text()}")

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()
