"""Test helpers for Spark: a real standalone cluster (master + worker from the pyspark package, on
loopback with free ports), and a small application jar built with javac for SPARK (jar) batches.

pyspark does not ship spark-examples*.jar, so the jar is compiled here against pyspark's own jars.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engines.spark_submit import find_spark_home

TEST_APP_CLASS = "batchgate.testapp.JavaPi"
TEST_APP_SOURCE = """\
package batchgate.testapp;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/** pi | sleep SECONDS | fail: what a SPARK batch test needs from a jar. */
public final class JavaPi {
  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "pi";
    SparkSession spark = SparkSession.builder().appName("BatchgateJavaPi").getOrCreate();
    JavaSparkContext jsc = new JavaSparkContext(spark.sparkContext());
    if (mode.equals("sleep")) {
      System.out.println("sleeping " + args[1] + "s");
      System.out.flush();
      Thread.sleep(Long.parseLong(args[1]) * 1000L);
    } else if (mode.equals("fail")) {
      throw new IllegalStateException("batchgate test failure requested");
    }
    List<Integer> values = new ArrayList<>();
    for (int i = 0; i < 20000; i++) {
      values.add(i);
    }
    long inside = jsc.parallelize(values, 2).filter(i -> {
      double x = Math.random() * 2 - 1;
      double y = Math.random() * 2 - 1;
      return x * x + y * y <= 1;
    }).count();
    System.out.println("Pi is roughly " + 4.0 * inside / 20000);
    spark.stop();
  }
}
"""


def spark_home() -> Path:
    home = find_spark_home(None)
    assert home is not None and (home / "bin" / "spark-submit").is_file(), "pyspark is not installed"
    return home


def pi_py() -> Path:
    path = spark_home() / "examples" / "src" / "main" / "python" / "pi.py"
    assert path.is_file(), path
    return path


def build_test_jar(workdir: Path) -> Path:
    """Compile TEST_APP_SOURCE against pyspark's jars; returns the jar's path."""
    javac, jar = shutil.which("javac"), shutil.which("jar")
    assert javac and jar, "javac and jar (a JDK) are needed to build the test jar"
    src = workdir / "src" / "batchgate" / "testapp" / "JavaPi.java"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(TEST_APP_SOURCE)
    classes = workdir / "classes"
    classes.mkdir(exist_ok=True)
    classpath = str(spark_home() / "jars" / "*")
    subprocess.run([javac, "-d", str(classes), "-cp", classpath, str(src)], check=True, timeout=120)
    target = workdir / "batchgate-testapp.jar"
    subprocess.run([jar, "cf", str(target), "-C", str(classes), "."], check=True, timeout=60)
    return target


def reap_batch_processes(data_dir: Path) -> list[int]:
    """SIGKILL what the batches under data_dir launched and left running (a gateway never kills on
    shutdown, so a test that fails half-way would leave its driver behind). Returns the groups killed."""
    killed: list[int] = []
    for pids_file in data_dir.glob("batches/*/pids.json"):
        workdir = str(pids_file.parent.resolve())
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            continue
        for pid, group in ((pids["child"], True), (pids["runner"], False)):
            try:
                if os.readlink(f"/proc/{pid}/cwd") != workdir and group:
                    continue  # not ours any more (a reused pid)
                if group:
                    os.killpg(pid, signal.SIGKILL)
                    killed.append(pid)
                elif workdir in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue
    return killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class StandaloneCluster:
    master_url: str  # spark://127.0.0.1:port (RPC; client mode and legacy cluster submission)
    rest_url: str  # spark://127.0.0.1:port of the REST submission server (cluster mode)
    rest_port: int
    web_url: str  # the master's web UI (its JSON API is at /json/)
    worker_web_url: str

    def web_urls_setting(self) -> dict[str, str]:
        return {self.master_url: self.web_url, self.rest_url: self.web_url}

    def master_json(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as resp:
            data: dict[str, object] = json.loads(resp.read())
            return data


def _wait_until(check: object, what: str, timeout: float, procs: list[subprocess.Popen[bytes]],
                logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                tails = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
                raise RuntimeError(f"a Spark daemon exited with {proc.returncode} while waiting for {what}:\n{tails}")
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.25)
    tails = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
    raise RuntimeError(f"timed out waiting for {what}:\n{tails}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def standalone_cluster(workdir: Path, *, cores: int = 2, memory: str = "2g") -> Iterator[StandaloneCluster]:
    """A master (with its REST submission server) and one worker, stopped on exit, even on failure.

    Applications running on the cluster (drivers, executors) are children of the worker, so stopping
    the worker's process group stops them too.
    """
    home = spark_home()
    workdir.mkdir(parents=True, exist_ok=True)
    port, web_port, rest_port, worker_web_port = free_port(), free_port(), free_port(), free_port()
    conf = workdir / "spark-master.conf"
    conf.write_text(f"spark.master.rest.enabled true\nspark.master.rest.port {rest_port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGATE_", "SPARK_"))}
    env.update({"SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(workdir / "logs"),
                "PYSPARK_PYTHON": sys.executable})
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(name: str, argv: list[str]) -> None:
        log = workdir / f"{name}.log"
        logs.append(log)
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, cwd=workdir, start_new_session=True))

    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{port}", rest_url=f"spark://127.0.0.1:{rest_port}", rest_port=rest_port,
        web_url=f"http://127.0.0.1:{web_port}", worker_web_url=f"http://127.0.0.1:{worker_web_port}",
    )
    try:
        start("master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                         "--port", str(port), "--webui-port", str(web_port), "--properties-file", str(conf)])
        _wait_until(lambda: cluster.master_json().get("status") == "ALIVE", "the master", 90, procs, logs)
        (workdir / "worker").mkdir(exist_ok=True)
        start("worker", [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                         "--webui-port", str(worker_web_port), "--cores", str(cores), "--memory", memory,
                         "--work-dir", str(workdir / "worker"), cluster.master_url])
        _wait_until(lambda: cluster.master_json().get("aliveworkers") == 1, "the worker", 90, procs, logs)
        yield cluster
    finally:
        for proc in reversed(procs):
            _stop(proc)
