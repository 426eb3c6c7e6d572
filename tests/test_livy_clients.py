"""Real Livy clients against a live gateway running PySpark's pi.py on local[2]:

- the `livy` Python client (pylivy): LivyBatch.create, wait, state, log, and kill on a second batch;
- Airflow's LivyHook (apache-airflow-providers-apache-livy): post_batch, get_batch_state, dump_batch_logs,
  delete_batch. Airflow cannot share the project's venv (its pins clash with pyspark's and flink's), so
  the test builds a venv of its own once (cached under the temp dir, or BATCHGATE_AIRFLOW_VENV) and runs
  the hook there as a subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from livy import LivyBatch, SessionState

from tests.helpers import Api
from tests.spark_cluster import pi_py

pytestmark = pytest.mark.slow

AIRFLOW_PINS = ["apache-airflow==3.3.2", "apache-airflow-providers-apache-livy==4.6.4"]
SPARK_TIMEOUT = 240
AUTH = ("admin", "any")  # open mode: the user name counts, the password is not checked

SLEEPER = """\
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("livy-sleeper").getOrCreate()
print("sleeper up", flush=True)
time.sleep(300)
"""


async def livy_gateway(start_gateway: Callable[..., Awaitable[Api]]) -> tuple[Api, str]:
    api = await start_gateway(admin=["admin"], spark_master="local[2]", engines=["SPARK", "PYSPARK"])
    return api, str(api.client.make_url("/livy")).rstrip("/")


async def test_pylivy_runs_pi_and_kills_a_second_batch(start_gateway: Callable[..., Awaitable[Api]],
                                                      tmp_path: Path) -> None:
    api, url = await livy_gateway(start_gateway)
    sleeper_py = tmp_path / "sleeper.py"
    sleeper_py.write_text(SLEEPER)

    pi = await asyncio.to_thread(LivyBatch.create, url, file=str(pi_py()), args=["2"], name="pylivy-pi",
                                 driver_memory="512m", auth=AUTH)
    sleeper = await asyncio.to_thread(LivyBatch.create, url, file=str(sleeper_py), name="pylivy-sleeper",
                                      auth=AUTH)
    assert isinstance(pi.batch_id, int) and sleeper.batch_id == pi.batch_id + 1

    final = await asyncio.wait_for(asyncio.to_thread(pi.wait), SPARK_TIMEOUT)
    tail = await asyncio.to_thread(pi.log)
    everything = await asyncio.to_thread(pi.log, 0, -1)
    assert final == SessionState.SUCCESS, everything[-40:]
    assert await asyncio.to_thread(lambda: pi.state) == SessionState.SUCCESS
    assert tail == everything[-100:] and tail[-1].endswith("state FINISHED")
    assert any(line.startswith("Pi is roughly 3.1") for line in everything), everything[-40:]
    assert any("--conf spark.driver.memory=512m" in line for line in everything), "driverMemory reached spark-submit"
    view = await api.call("GET", f"/livy/batches/{pi.batch_id}")
    assert view["appId"].startswith("local-") and view["appInfo"]["sparkUiUrl"].startswith("http://")

    deadline = time.monotonic() + SPARK_TIMEOUT
    while (state := await asyncio.to_thread(lambda: sleeper.state)) != SessionState.RUNNING:
        assert state == SessionState.STARTING and time.monotonic() < deadline, state
        await asyncio.sleep(0.5)
    await asyncio.to_thread(sleeper.kill)
    while (state := await asyncio.to_thread(lambda: sleeper.state)) != SessionState.KILLED:
        assert state == SessionState.RUNNING and time.monotonic() < deadline, state
        await asyncio.sleep(0.2)
    batch = await api.call("GET", f"/livy/batches/{sleeper.batch_id}")
    assert batch["state"] == "killed" and batch["appId"].startswith("local-")


# --- Airflow ---------------------------------------------------------------------------------------

HOOK_SCRIPT = """\
import json, sys, time
from airflow.providers.apache.livy.hooks.livy import LivyHook

hook = LivyHook(livy_conn_id="batchgate", endpoint_prefix="/livy")
pi = sys.argv[1]
batch_id = hook.post_batch(file=pi, args=["2"], name="airflow-pi", driver_memory="512m", num_executors="1")
states = []
deadline = time.time() + float(sys.argv[2])
while True:
    state = hook.get_batch_state(batch_id)
    if not states or states[-1] != state.value:
        states.append(state.value)
    if state in hook.TERMINAL_STATES or time.time() > deadline:
        break
    time.sleep(0.5)
hook.dump_batch_logs(batch_id)
batch = hook.get_batch(batch_id)
second = hook.post_batch(file=pi, args=["2"], name="airflow-deleted")
deleted = hook.delete_batch(second)
while (after := hook.get_batch_state(second)) not in hook.TERMINAL_STATES and time.time() < deadline:
    time.sleep(0.2)
print("RESULT " + json.dumps({"id": batch_id, "states": states, "appId": batch["appId"], "second": second,
                              "deleted": deleted, "after": after.value}), flush=True)
"""


def _airflow_python() -> Path:
    """A venv with Airflow's Livy provider, built once and reused while its pins stay the same."""
    digest = hashlib.sha256(" ".join(AIRFLOW_PINS).encode()).hexdigest()[:12]
    root = Path(os.environ.get("BATCHGATE_AIRFLOW_VENV") or Path(tempfile.gettempdir()) / f"batchgate-airflow-{digest}")
    python = root / "bin" / "python"
    marker = root / ".batchgate-installed"
    if marker.is_file() and marker.read_text() == digest and python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *AIRFLOW_PINS],
                   check=True, timeout=1200)
    marker.write_text(digest)
    return python


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    return _airflow_python()


async def test_airflow_livy_hook(airflow_python: Path, start_gateway: Callable[..., Awaitable[Api]],
                                 tmp_path: Path) -> None:
    api, _ = await livy_gateway(start_gateway)
    port = api.client.make_url("/").port
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    connection = {"conn_type": "livy", "host": "127.0.0.1", "port": port, "schema": "http",
                  "login": AUTH[0], "password": AUTH[1]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BATCHGATE_"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW_CONN_BATCHGATE": json.dumps(connection),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})
    proc = await asyncio.create_subprocess_exec(
        str(airflow_python), str(script), str(pi_py()), str(SPARK_TIMEOUT), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), SPARK_TIMEOUT + 120)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-5000:]
    result: dict[str, Any] = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    assert result["states"][-1] == "success" and set(result["states"]) <= {"starting", "running", "success"}, result
    assert result["appId"].startswith("local-")
    assert "Pi is roughly 3.1" in text, "dump_batch_logs wrote the application's output"
    assert result["deleted"] == {"msg": "deleted"} and result["after"] == "killed", result
    log = await api.call("GET", f"/livy/batches/{result['id']}/log?from=0&size=-1")
    conf_line = next(line for line in log["log"] if "launching: " in line)
    assert "spark.driver.memory=512m" in conf_line and "spark.executor.instances=1" in conf_line
