"""The README's examples run as pasted: each shell block marked `<!-- readme-example: NAME -->` runs in
bash (set -e), in a directory whose `.venv` is this test run's, against a live gateway started by the
README's own first command (its data dir relative, as written). Only the port differs: 10099 may be taken."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.gateway_process import free_port

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- readme-example: (\w+)[^>]*-->\n```sh\n(.*?)```", re.S)


def blocks() -> dict[str, str]:
    return {name: body for name, body in MARK.findall((ROOT / "README.md").read_text())}


def test_the_first_command_is_the_serve_command() -> None:
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first and first.group(1).strip().endswith("batchgate serve --data-dir ./batchgate-data")
    assert set(blocks()) == {"curl", "engines"}


async def run_block(name: str, tmp_path: Path, timeout: float) -> str:
    port = free_port()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    script = f"set -euo pipefail\n{blocks()[name]}".replace("127.0.0.1:10099", f"127.0.0.1:{port}")
    serve = await asyncio.create_subprocess_exec(
        str(tmp_path / ".venv" / "bin" / "batchgate"), "serve", "--data-dir", "./batchgate-data", "--port", str(port),
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")})
    try:
        for _ in range(600):
            probe = await asyncio.create_subprocess_exec(
                "curl", "-sf", f"http://127.0.0.1:{port}/healthz", stdout=asyncio.subprocess.DEVNULL)
            if await probe.wait() == 0:
                break
            await asyncio.sleep(0.1)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", script, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")})
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-4000:]
        return text
    finally:
        serve.terminate()
        await asyncio.wait_for(serve.wait(), 60)


@pytest.mark.slow
async def test_the_curl_walk_through(tmp_path: Path) -> None:
    out = await run_block("curl", tmp_path, 120)
    assert out.count("event: log") >= 5 and "data: tick 4" in out and "event: end" in out, out[-3000:]
    assert '"success":true' in out.replace(" ", ""), "the kill of the running batch succeeds"
    assert out.rstrip().endswith("}") and '"batchType":"LOCAL"' in out.replace(" ", "")


@pytest.mark.slow
async def test_the_spark_and_flink_examples(tmp_path: Path) -> None:
    out = await run_block("engines", tmp_path, 900)
    assert "Pi is roughly 3.1" in out, out[-3000:]
    assert "(of,14)" in out, out[-3000:]
    assert out.count("FINISHED in") == 2
