"""SPARK and PYSPARK on a real YARN cluster (tests/yarn_cluster.py: a ResourceManager and a NodeManager
started once per run), through the live gateway, in client and cluster deploy mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api
from tests.spark_cluster import pi_py, reap_batch_processes, spark_home
from tests.yarn_cluster import YarnCluster, spark_home_for

pytestmark = pytest.mark.slow

YARN_TIMEOUT = 150.0
CLUSTER = {"spark.master": "yarn", "spark.submit.deployMode": "cluster"}
CLIENT = {"spark.master": "yarn", "spark.submit.deployMode": "client"}


@pytest.fixture(scope="session")
def yarn_spark(yarn_cluster: YarnCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spark_home_for(yarn_cluster, spark_home(), tmp_path_factory.mktemp("yarn-spark-home"))


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, yarn_cluster: YarnCluster) -> Iterator[None]:
    """Nothing a test started outlives it: its launchers, and its applications on the cluster."""
    yield
    reap_batch_processes(tmp_path / "data")
    yarn_cluster.kill_running_apps()


@pytest.fixture
def gateway(start_gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster,
            yarn_spark: Path) -> Callable[..., Awaitable[Api]]:
    async def start(**overrides: Any) -> Api:
        settings: dict[str, Any] = {"admin": ["admin"], "spark_home": yarn_spark,
                                    "spark_yarn_rm_urls": [yarn_cluster.rm_url], "kill_grace_seconds": 5.0}
        settings.update(overrides)
        return await start_gateway(**settings)

    return start


async def test_pyspark_cluster_mode_runs_on_yarn(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster
) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(pi_py()), name="yarn-pi", args=["2"], conf=CLUSTER)
    bid = batch["id"]
    running = await api.wait_for(bid, ("RUNNING", "FINISHED", "ERROR"), timeout=YARN_TIMEOUT)
    assert running["state"] == "RUNNING" and running["appState"] == "RUNNING", running
    [app] = yarn_cluster.apps_tagged(f"batchgate-{bid}")
    assert running["appId"] == app["id"] and app["name"] == "yarn-pi" and app["applicationType"] == "SPARK"
    final = await api.wait_for(bid, timeout=YARN_TIMEOUT)
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED", final
    app = yarn_cluster.app(app["id"])
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")
    log = await api.full_log(bid)
    assert any(f"Submitted application {app['id']}" in line for line in log), log
