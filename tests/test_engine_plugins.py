"""Engines are plug-ins (docs/engines/plugins.md): the built-in ones are found through the
`batchgate.engines` entry points, their settings come from BATCHGATE_<ENGINE>_*, the gateway tells which
batch types it accepts (GET /api/v1/engines, /openapi.json) and refuses the others; and the ECHO example
of the docs, installed into a throwaway venv, runs batches through a gateway with nothing else changed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sysconfig
import venv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from engines.registry import PluginError, check, discover
from gateway.settings import Settings
from tests.gateway_process import GatewayProcess
from tests.helpers import Api, basic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "engines" / "example"


def test_the_built_in_engines_are_plug_ins() -> None:
    plugins = {p.name: p for p in discover()}
    assert {"spark", "flink", "local"} <= set(plugins)
    assert plugins["spark"].batch_types == {"SPARK", "PYSPARK"}
    assert plugins["flink"].batch_types == {"FLINK", "PYFLINK"}
    assert plugins["local"].batch_types == {"LOCAL"} and not plugins["local"].enabled_with_users
    settings = Settings()
    assert settings.batch_types == ("FLINK", "PYFLINK", "LOCAL", "SPARK", "PYSPARK")
    assert "ECHO" not in settings.batch_types, "the example engine is not installed here"


class _Plugin:
    def __init__(self, name: str, *types: str) -> None:
        self.name, self.batch_types = name, frozenset(types)


@pytest.mark.parametrize(("plugins", "message"), [
    ([_Plugin("a", "X"), _Plugin("b", "X")], "batch type X is offered by both a and b"),
    ([_Plugin("a", "X"), _Plugin("a", "Y")], "two engines are named 'a'"),
    ([_Plugin("Big", "X")], "lower-case"),
    ([_Plugin("a", "x")], "must be upper case"),
])
def test_plug_ins_that_do_not_fit_are_refused(plugins: list[Any], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        check(plugins)


def test_engine_settings_come_from_their_prefix_and_flat_names(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("BATCHGATE_SPARK_HOME", str(tmp_path))
    monkeypatch.setenv("BATCHGATE_FLINK_TARGET", "remote")
    monkeypatch.setenv("BATCHGATE_LOCAL_PROGRAMS", "/bin/echo, /bin/true")
    monkeypatch.setenv("BATCHGATE_SPARK_MASTER", "yarn")
    settings = Settings(spark_master="local[2]", flink_poll_max_seconds=3.0)
    spark, flink, local = (settings.engine_settings[n] for n in ("spark", "flink", "local"))
    assert spark.home == tmp_path and spark.master == "local[2]", "a flat name beats the environment"
    assert flink.target == "remote" and flink.poll_max_seconds == 3.0
    assert local.programs == ["/bin/echo", "/bin/true"]
    with pytest.raises(ValidationError) as bad:
        Settings(spark_rest_port=0)
    assert [e["loc"] for e in bad.value.errors()] == [("spark_rest_port",)], "errors name the flat field"
    with pytest.raises(ValidationError, match=r"unknown batch types \['NOPE'\]"):
        Settings(engines=["spark", "nope"])


async def test_the_gateway_says_which_batch_types_it_accepts(start_gateway: Any) -> None:
    api: Api = await start_gateway(engines=["SPARK", "LOCAL"])
    found = await api.call("GET", "/api/v1/engines")
    assert found["batchTypes"] == ["LOCAL", "SPARK"]
    assert {e["name"]: (e["batchTypes"], e["enabled"]) for e in found["engines"]} == {
        "flink": (["FLINK", "PYFLINK"], []), "local": (["LOCAL"], ["LOCAL"]),
        "spark": (["SPARK", "PYSPARK"], ["SPARK"]),
    }
    spec = await api.call("GET", "/openapi.json")
    assert "/api/v1/engines" in spec["paths"]
    list_params = {p["name"]: p for p in spec["paths"]["/api/v1/batches"]["get"]["parameters"]}
    assert list_params["batchType"]["schema"]["enum"] == ["FLINK", "PYFLINK", "LOCAL", "SPARK", "PYSPARK", ""]

    unknown = await api.call("POST", "/api/v1/batches", expect=400, json={"batchType": "echo", "resource": "x"})
    assert unknown["message"] == ("batchType: must be one of FLINK, PYFLINK, LOCAL, SPARK, PYSPARK, "
                                  "not 'echo'")
    disabled = await api.call("POST", "/api/v1/batches", expect=400, json={"batchType": "flink", "resource": "x"})
    assert disabled["message"] == "batchType: FLINK is not enabled on this gateway"
    listed = await api.call("GET", "/api/v1/batches", expect=400, params={"batchType": "ECHO"})
    assert listed["message"].startswith("batchType: must be one of FLINK")
    job = {"name": "j", "nodes": [{"id": "a", "request": {"batchType": "ECHO", "resource": "x"}}]}
    bad_job = await api.call("POST", "/api/v1/jobs", expect=400, json=job)
    assert bad_job["message"].startswith("nodes[a].request.batchType: must be one of FLINK")


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway venv that sees this one's packages (batchgate and its dependencies) and has the ECHO
    example installed on top, as an operator would install an engine next to batchgate."""
    root = tmp_path_factory.mktemp("plugin-venv")
    venv.create(root, with_pip=True)
    purelib = subprocess.run([str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "batchgate-base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", str(EXAMPLE)], check=True, env=env, timeout=600)
    return root


@pytest.fixture
async def echo_gateway(plugin_venv: Path, tmp_path: Path, database_url: str) -> AsyncIterator[GatewayProcess]:
    gateway = GatewayProcess(tmp_path / "data", database_url=database_url, python=str(plugin_venv / "bin" / "python"),
                             extra_args=["--engines", "ECHO,LOCAL"], env={"BATCHGATE_ECHO_GREETING": "hi"})
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


@pytest.mark.slow
async def test_the_example_engine_runs_batches_once_installed(echo_gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession(echo_gateway.url, headers=basic("alice")) as http:
        async with http.get("/api/v1/engines") as resp:
            found = await resp.json()
        assert found["batchTypes"] == ["ECHO", "LOCAL"]
        assert {"name": "echo", "batchTypes": ["ECHO"], "enabled": ["ECHO"]} in found["engines"]
        async with http.get("/openapi.json") as resp:
            spec = await resp.json()
        list_params = {p["name"]: p for p in spec["paths"]["/api/v1/batches"]["get"]["parameters"]}
        assert "ECHO" in list_params["batchType"]["schema"]["enum"]

        request = {"batchType": "echo", "resource": "greeting", "args": ["one", "two"]}
        async with http.post("/api/v1/batches", json=request) as resp:
            assert resp.status == 200, await resp.text()
            batch = await resp.json()
        assert batch["batchType"] == "ECHO"
        for _ in range(300):
            async with http.get(f"/api/v1/batches/{batch['id']}") as resp:
                batch = await resp.json()
            if batch["state"] in ("FINISHED", "ERROR", "CANCELED"):
                break
            await asyncio.sleep(0.1)
        assert batch["state"] == "FINISHED" and batch["appId"].startswith("echo-")
        async with http.get(f"/api/v1/batches/{batch['id']}/localLog", params={"size": "100"}) as resp:
            lines = (await resp.json())["logRowSet"]
        start = lines.index("hi from alice")
        assert lines[start:start + 3] == ["hi from alice", "one", "two"], json.dumps(lines)

        too_many = {"batchType": "ECHO", "resource": "greeting", "args": [str(i) for i in range(101)]}
        async with http.post("/api/v1/batches", json=too_many) as resp:
            assert resp.status == 400
            assert (await resp.json())["message"] == "args: an ECHO batch echoes at most 100 arguments"
