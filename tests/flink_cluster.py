"""A real Flink session cluster on loopback for tests, started from the apache-flink package.

The package's conf/ is copied to a folder of our own (keeping `env.java.opts.all`, which carries the
Java 17 `--add-opens` list), with free ports, a small memory budget and every log, pid and temporary
file under that folder. `stop()` runs the stop script with the same environment and then makes sure
that the daemons it started are gone.

What the real-Flink test modules (test_flink, test_flink_control) share lives here too: the constants,
the start of their endless PyFlink job, and pytest fixtures that each of them imports into its own
namespace (`flink_home`, `cluster`, the autouse `reap_launchers`), so that module-scoped ones are set up
once per importing module, as if the module had defined them itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engines.flink_cli import default_flink_home

START_TIMEOUT = 120.0
HOME = default_flink_home()
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SLOW = 180.0  # a PyFlink job on 2 busy cores: client start, Python workers, the job

# The start of a PyFlink streaming job that never ends: each module adds its own pipeline and execute().
ENDLESS_PRELUDE = """
import time
from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource

def slow(x):
    time.sleep(0.02)
    return x

config = Configuration()
config.set_integer("python.fn-execution.bundle.size", 10)
config.set_integer("python.fn-execution.bundle.time", 100)
env = StreamExecutionEnvironment.get_execution_environment(config)
env.set_parallelism(1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _set(conf: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key in Flink's nested config.yaml, replacing a flat spelling of it if present."""
    conf.pop(dotted, None)
    node = conf
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


class FlinkCluster:
    """One JobManager and one TaskManager, bound to 127.0.0.1."""

    def __init__(self, root: Path, home: Path | None = None, *, slots: int = 4) -> None:
        self.home = home or default_flink_home()
        if self.home is None:
            raise RuntimeError("apache-flink is not installed")
        self.root = root
        self.conf_dir = root / "conf"
        self.log_dir = root / "log"
        self.pid_dir = root / "pid"
        self.tmp_dir = root / "tmp"
        self.rest_port = free_port()
        self.rpc_port = free_port()
        self.slots = slots

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGATE_", "FLINK_"))}
        env.update(
            FLINK_CONF_DIR=str(self.conf_dir), FLINK_LOG_DIR=str(self.log_dir), FLINK_PID_DIR=str(self.pid_dir),
            FLINK_IDENT_STRING="batchgate-test", TMPDIR=str(self.tmp_dir),
            JVM_ARGS=f"-Djava.io.tmpdir={self.tmp_dir}",
        )
        return env

    def write_conf(self) -> None:
        assert self.home is not None
        shutil.copytree(self.home / "conf", self.conf_dir, dirs_exist_ok=True)
        conf = yaml.safe_load((self.conf_dir / "config.yaml").read_text()) or {}
        settings: dict[str, Any] = {
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": self.rest_port,
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": self.slots,
            "jobmanager.memory.process.size": "1g",
            "taskmanager.memory.process.size": "1280m",
            "io.tmp.dirs": str(self.tmp_dir),
            "web.upload.dir": str(self.tmp_dir),
            "blob.server.port": "0",
            "taskmanager.rpc.port": "0",
        }
        for key, value in settings.items():
            _set(conf, key, value)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
        (self.conf_dir / "masters").write_text(f"127.0.0.1:{self.rest_port}\n")
        (self.conf_dir / "workers").write_text("localhost\n")

    def start(self) -> None:
        assert self.home is not None
        for folder in (self.log_dir, self.pid_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_conf()
        subprocess.run(
            [str(self.home / "bin" / "start-cluster.sh")], env=self.env(), check=True, timeout=120,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the REST API answers and a TaskManager with free slots has registered."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                overview = self.get("/overview")
                if overview.get("taskmanagers", 0) >= 1 and overview.get("slots-total", 0) >= 1:
                    return
                last = overview
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
            if not self.daemon_pids():
                break
            time.sleep(0.5)
        raise RuntimeError(f"Flink session cluster not ready after {timeout}s (last: {last}); "
                           f"logs in {self.log_dir}: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = []
        for path in sorted(self.log_dir.glob("*.log")) + sorted(self.log_dir.glob("*.out")):
            content = path.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {path.name}\n" + "\n".join(content))
        return "\n".join(text)

    def daemon_pids(self) -> list[int]:
        pids: list[int] = []
        for path in self.pid_dir.glob("*.pid"):
            for word in path.read_text().split():
                if word.isdigit() and Path(f"/proc/{word}").exists():
                    pids.append(int(word))
        return pids

    def stop(self) -> None:
        """The stop script with the same environment, then SIGKILL for any daemon it left behind."""
        started = self.daemon_pids()
        if self.home is not None and self.conf_dir.exists():
            try:
                subprocess.run(
                    [str(self.home / "bin" / "stop-cluster.sh")], env=self.env(), timeout=60,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in started):
            time.sleep(0.2)
        for pid in started:
            if Path(f"/proc/{pid}").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


FLINK_APP_CLASS = "batchgate.testapp.FlinkJob"
FLINK_APP_SOURCE = """\
package batchgate.testapp;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/** count | sleep | fail: what a FLINK batch test needs from a jar. */
public final class FlinkJob {
  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "count";
    System.out.println("batchgate flink main: " + mode);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    long last = mode.equals("sleep") ? Long.MAX_VALUE : 1000L;
    env.fromSequence(1, last).map(new Step(mode)).print();
    env.execute("batchgate-" + mode);
    System.out.println("batchgate flink main done");
  }

  static final class Step implements MapFunction<Long, Long> {
    private final String mode;

    Step(String mode) {
      this.mode = mode;
    }

    @Override
    public Long map(Long x) throws Exception {
      if (mode.equals("fail") && x == 10) {
        throw new IllegalStateException("batchgate flink failure requested");
      }
      if (mode.equals("sleep")) {
        Thread.sleep(100);
      }
      return x * 2;
    }
  }
}
"""


def build_flink_jar(workdir: Path) -> Path:
    """Compile FLINK_APP_SOURCE against the apache-flink package's jars (it ships no Java examples)."""
    javac, jar = shutil.which("javac"), shutil.which("jar")
    assert javac and jar and HOME, "javac and jar (a JDK) and apache-flink are needed to build the Flink test jar"
    src = workdir / "src" / "batchgate" / "testapp" / "FlinkJob.java"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(FLINK_APP_SOURCE)
    classes = workdir / "classes"
    classes.mkdir(exist_ok=True)
    subprocess.run([javac, "-d", str(classes), "-cp", str(HOME / "lib" / "*"), str(src)], check=True, timeout=120)
    target = workdir / "batchgate-flinkjob.jar"
    subprocess.run([jar, "cf", str(target), "-C", str(classes), "."], check=True, timeout=60)
    return target


def workdir_of(tmp_path: Path, batch_id: str) -> Path:
    return tmp_path / "data" / "batches" / batch_id


# --- fixtures, imported by the test modules that use them --------------------------------------------


@pytest.fixture(scope="module", name="flink_home")
def flink_home_fixture() -> Path:
    if HOME is None:
        pytest.skip("apache-flink is not installed")
    return HOME


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    flink_home: Path) -> Iterator[FlinkCluster]:
    """One session cluster for the module, stopped in teardown whatever happened. Its folder is named
    after the module: flink-cluster for test_flink, flink-control-cluster for test_flink_control."""
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_").replace("_", "-")
    flink = FlinkCluster(tmp_path_factory.mktemp(f"{module}-cluster"), flink_home)
    try:
        flink.start()
        flink.wait_ready()
        yield flink
    finally:
        flink.stop()


@pytest.fixture(autouse=True, name="reap_launchers")
def reap_launchers_fixture(tmp_path: Path) -> Iterator[None]:
    """A test that fails half-way must not leave a Flink launcher running: the gateway's clean shutdown
    leaves applications running on purpose."""
    yield
    for pids_file in (tmp_path / "data" / "batches").glob("*/pids.json"):
        pids = json.loads(pids_file.read_text())
        try:
            runner_cmdline = Path(f"/proc/{pids['runner']}/cmdline").read_bytes()
        except OSError:
            continue
        if str(pids_file.parent).encode() in runner_cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pids["child"], signal.SIGKILL)
