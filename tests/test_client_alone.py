"""The client needs no server: in a fresh venv with only the client's dependencies (the two commands of
docs/client.md), `gateway.client` and the `batchgate` client commands work against a live gateway, and
nothing of the server is imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess
from tests.live_gateway import live_gateway

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# What the client must never load: the server's rooms and the server's own libraries.
SERVER_MODULES = ("asyncpg", "bcrypt", "pydantic_settings", "pgserver", "gateway.store", "gateway.app",
                  "gateway.settings", "gateway.security", "gateway.batches", "gateway.instance", "engines")

SCRIPT = """
import json, sys
from gateway.client import Client

url = sys.argv[1]
with Client(url, user="alice", password="a-pass") as bg:
    batch = bg.submit({"batchType": "LOCAL", "resource": sys.argv[2], "args": ["-c", "print('alone', 6 * 7)"]})
    final = bg.wait(batch.id, timeout=60)
    log = bg.log(batch.id, size=100).log_row_set
try:
    import gateway.app  # the server is in the wheel, but its dependencies are not installed
    server = "importable"
except ImportError as exc:
    server = exc.name
print(json.dumps({"state": final.state, "log": log, "server": server}))
"""


def install_commands() -> list[list[str]]:
    """The client-only install of docs/client.md, as argument lists."""
    text = (ROOT / "docs" / "client.md").read_text()
    block = re.search(r"<!-- client-only-install.*?-->\s*```sh\n(.*?)```", text, re.S)
    assert block, "docs/client.md has no client-only install block"
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    first, second = install_commands()
    assert first[:2] == ["pip", "install"] and second == ["pip", "install", "--no-deps", "batchgate"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(ROOT / ".ci" / "constraints.txt"), *first[2:]], check=True, env=env, timeout=600)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True, env=env, timeout=600)
    return root


@pytest.fixture
async def gateway(tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    async with live_gateway(tmp_path, database_url) as gw:
        yield gw


def run(client_venv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
             and not k.startswith("BATCHGATE_")}
    # Run outside the repository, so that the checkout's gateway/ cannot be imported from the cwd.
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False,
                          env={**clean, **(env or {})}, cwd=client_venv)


async def test_the_client_alone_submits_and_reads_a_batch(client_venv: Path, gateway: GatewayProcess) -> None:
    python = str(client_venv / "bin" / "python")
    installed = run(client_venv, python, "-m", "pip", "list", "--format", "json")
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "batchgate" in names and not names & {"asyncpg", "bcrypt", "pydantic-settings", "pgserver"}

    result = run(client_venv, python, "-c", SCRIPT, gateway.url, sys.executable)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["state"] == "FINISHED" and "alone 42" in found["log"]
    assert found["server"] != "importable", "the venv must lack the server's dependencies"


async def test_the_client_alone_imports_no_server_module(client_venv: Path) -> None:
    probe = ("import sys, gateway.client, gateway.client.cli\n"
             f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_MODULES!r} "
             f"or any(m.startswith(p + '.') for p in {SERVER_MODULES!r}))))")
    result = run(client_venv, str(client_venv / "bin" / "python"), "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


async def test_the_batchgate_command_alone(client_venv: Path, gateway: GatewayProcess) -> None:
    batchgate = str(client_venv / "bin" / "batchgate")
    env = {"BATCHGATE_URL": gateway.url, "BATCHGATE_USER": "alice", "BATCHGATE_PASSWORD": "a-pass",
           "XDG_CONFIG_HOME": str(client_venv / "xdg")}
    followed = run(client_venv, batchgate, "submit", "--type", "LOCAL", "--resource", sys.executable, "--follow",
                   "--", "-c", "print('from the cli')", env=env)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "from the cli" in followed.stdout
    listed_json = run(client_venv, batchgate, "list", "--output", "json", env=env)
    assert listed_json.returncode == 0, listed_json.stderr
    assert [b["state"] for b in json.loads(listed_json.stdout)["batches"]] == ["FINISHED"]

    listed = run(client_venv, batchgate, "--help", env=env)
    assert listed.returncode == 0 and "serve" in listed.stdout
    serve = run(client_venv, batchgate, "serve", env=env)
    assert serve.returncode != 0 and "needs the gateway's server dependencies" in serve.stderr, serve.stderr
