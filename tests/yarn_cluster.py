"""A real Hadoop YARN cluster on loopback for the tests: a ResourceManager and a NodeManager, each a JVM
of its own (as in production), run from Hadoop's Maven artifacts (tests/maven/yarn/pom.xml, fetched by
tests/maven_deps.py into a cache outside the repository), with the configuration written here.

The cluster is sized for a 2-core test machine: the NodeManager offers 8 GiB and 8 vcores (containers
are small JVMs that mostly wait), memory checks are off, and allocations are rounded to 128 MiB. The
CapacityScheduler has two queues, `default` and `etl`, so that tests can see `spark.yarn.queue`
honoured. The containers run as the NodeManager's user (DefaultContainerExecutor), and the
ResourceManager lets that user impersonate anyone (`hadoop.proxyuser.<user>.*`), so that `--proxy-user`
runs an application whose YARN user is the proxied one.

Spark runs on it from a Spark home made for the cluster (`spark_home_for`): pyspark's bin, jars and
python, plus conf/spark-env.sh pointing HADOOP_CONF_DIR at the cluster and a spark-defaults.conf that
ships Spark's jars to the containers as `local:` files (nothing uploaded per submit) with small memory.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from tests import maven_deps
from tests.gateway_process import free_port

QUEUES = ("default", "etl")
NM_MEMORY_MB = 8192
NM_VCORES = 8
RM_MAIN = "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager"
NM_MAIN = "org.apache.hadoop.yarn.server.nodemanager.NodeManager"
# Small, quick-starting daemons: the C1 compiler only and the serial collector.
DAEMON_OPTS = ["-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true"]
LOG4J = """\
log4j.rootLogger=INFO,file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${yarn.log.dir}/${yarn.log.file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity=WARN
"""


def java_home() -> Path:
    """The JDK the tests run on (the NodeManager hands it to containers as JAVA_HOME)."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    assert java, "Java 17 is required for the YARN tests"
    return Path(java).resolve().parent.parent


def site_xml(props: dict[str, str]) -> str:
    rows = "".join(f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
                   for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


@dataclass
class YarnCluster:
    """The cluster's addresses and directories; start() and stop() run its two daemons."""

    base: Path
    user: str = field(default_factory=getpass.getuser)
    ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rm", "rm_scheduler", "rm_tracker", "rm_admin", "rm_web", "nm", "nm_localizer", "nm_web"):
            self.ports.setdefault(name, free_port())

    @property
    def conf_dir(self) -> Path:
        return self.base / "conf"

    @property
    def log_dir(self) -> Path:
        return self.base / "logs"

    @property
    def staging_dir(self) -> Path:
        return self.base / "staging"

    @property
    def rm_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['rm_web']}"

    @property
    def nm_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nm_web']}"

    # --- configuration --------------------------------------------------------------------------

    @property
    def hadoop_client_jars(self) -> list[str]:
        """Hadoop's shaded client (tests/maven/hadoop-client): what a Flink launcher needs on
        HADOOP_CLASSPATH, and what containers get as the Hadoop installation the NodeManager lacks."""
        jars = sorted(maven_deps.artifact_dir("hadoop-client").glob("hadoop-client-*.jar"))
        assert [j.name.split("-3.")[0] for j in jars] == ["hadoop-client-api", "hadoop-client-runtime"], jars
        return [str(j) for j in jars]

    def write_conf(self) -> None:
        for d in (self.conf_dir, self.log_dir, self.staging_dir, self.base / "nm-local", self.base / "nm-logs",
                  self.base / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        p = self.ports
        core = {
            "fs.defaultFS": "file:///",
            "hadoop.tmp.dir": str(self.base / "tmp"),
            "hadoop.security.authentication": "simple",
            f"hadoop.proxyuser.{self.user}.hosts": "*",
            f"hadoop.proxyuser.{self.user}.groups": "*",
            f"hadoop.proxyuser.{self.user}.users": "*",
        }
        yarn = {
            "yarn.resourcemanager.hostname": "127.0.0.1",
            "yarn.resourcemanager.address": f"127.0.0.1:{p['rm']}",
            "yarn.resourcemanager.scheduler.address": f"127.0.0.1:{p['rm_scheduler']}",
            "yarn.resourcemanager.resource-tracker.address": f"127.0.0.1:{p['rm_tracker']}",
            "yarn.resourcemanager.admin.address": f"127.0.0.1:{p['rm_admin']}",
            "yarn.resourcemanager.webapp.address": f"127.0.0.1:{p['rm_web']}",
            "yarn.resourcemanager.scheduler.class":
                "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
            "yarn.resourcemanager.recovery.enabled": "false",
            "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": "250",
            "yarn.resourcemanager.am.max-attempts": "1",  # a failed AM fails the application at once
            "yarn.scheduler.minimum-allocation-mb": "128",
            "yarn.scheduler.maximum-allocation-mb": str(NM_MEMORY_MB),
            "yarn.scheduler.maximum-allocation-vcores": str(NM_VCORES),
            "yarn.nodemanager.hostname": "127.0.0.1",
            "yarn.nodemanager.address": f"127.0.0.1:{p['nm']}",
            "yarn.nodemanager.localizer.address": f"127.0.0.1:{p['nm_localizer']}",
            "yarn.nodemanager.webapp.address": f"127.0.0.1:{p['nm_web']}",
            "yarn.nodemanager.resource.memory-mb": str(NM_MEMORY_MB),
            "yarn.nodemanager.resource.cpu-vcores": str(NM_VCORES),
            "yarn.nodemanager.pmem-check-enabled": "false",
            "yarn.nodemanager.vmem-check-enabled": "false",
            "yarn.nodemanager.local-dirs": str(self.base / "nm-local"),
            "yarn.nodemanager.log-dirs": str(self.base / "nm-logs"),
            "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99.5",
            "yarn.nodemanager.env-whitelist":
                "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,HADOOP_YARN_HOME,PATH,LANG,TZ",
            "yarn.nodemanager.delete.debug-delay-sec": "0",
            "yarn.log-aggregation-enable": "false",
            # No Hadoop installation on this NodeManager: containers that want Hadoop's classes (Flink's
            # JobManager and TaskManagers) get the shaded client. Spark brings its own (the same version).
            "yarn.application.classpath": ",".join([str(self.conf_dir), *self.hadoop_client_jars]),
            "yarn.timeline-service.enabled": "false",
            "yarn.webapp.ui2.enable": "false",
        }
        queues = ",".join(QUEUES)
        capacity = {
            "yarn.scheduler.capacity.root.queues": queues,
            "yarn.scheduler.capacity.root.default.capacity": "60",
            "yarn.scheduler.capacity.root.etl.capacity": "40",
            "yarn.scheduler.capacity.root.default.maximum-capacity": "100",
            "yarn.scheduler.capacity.root.etl.maximum-capacity": "100",
            # AMs are most of what the tests run: let them use the whole cluster.
            "yarn.scheduler.capacity.maximum-am-resource-percent": "1.0",
            "yarn.scheduler.capacity.node-locality-delay": "-1",
        }
        (self.conf_dir / "core-site.xml").write_text(site_xml(core))
        (self.conf_dir / "yarn-site.xml").write_text(site_xml(yarn))
        (self.conf_dir / "capacity-scheduler.xml").write_text(site_xml(capacity))
        (self.conf_dir / "log4j.properties").write_text(LOG4J)

    # --- the daemons ----------------------------------------------------------------------------

    def _start_daemon(self, name: str, main: str, classpath: str) -> None:
        home = java_home()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HADOOP_", "YARN_", "BATCHGATE_"))}
        env.update({"JAVA_HOME": str(home), "HADOOP_CONF_DIR": str(self.conf_dir),
                    "PATH": f"{home / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"})
        argv = [str(home / "bin" / "java"), *DAEMON_OPTS, f"-Dyarn.log.dir={self.log_dir}",
                f"-Dyarn.log.file={name}.log", f"-Dhadoop.log.dir={self.log_dir}",
                f"-Djava.io.tmpdir={self.base / 'tmp'}", "-cp", f"{self.conf_dir}:{classpath}", main]
        out = open(self.log_dir / f"{name}.out", "ab")
        try:
            self._procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                 cwd=self.base, start_new_session=True)
        finally:
            out.close()

    def start(self, timeout: float = 120) -> YarnCluster:
        self.write_conf()
        classpath = maven_deps.classpath("yarn")
        started = time.monotonic()
        self._start_daemon("resourcemanager", RM_MAIN, classpath)
        self._start_daemon("nodemanager", NM_MAIN, classpath)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while True:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"the {name} exited with {proc.returncode}: {self.tail(name)}")
            try:
                nodes = self.get("/ws/v1/cluster/nodes").get("nodes") or {}
                if any(n.get("state") == "RUNNING" for n in nodes.get("node") or []):
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"YARN not ready in time: {self.tail('resourcemanager')}\n"
                                     f"{self.tail('nodemanager')}")
            time.sleep(0.5)

    def stop(self) -> None:
        for name in ("nodemanager", "resourcemanager"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)  # a test cluster has nothing to save: do not wait for a graceful stop
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.kill_containers()

    def pids(self) -> list[int]:
        """The daemons' processes (each JVM is the leader of its own group)."""
        return [p.pid for p in self._procs.values() if p.poll() is None]

    def pause_rm(self) -> None:
        """Freeze the ResourceManager (SIGSTOP): its ports accept connections and nothing answers."""
        os.kill(self._procs["resourcemanager"].pid, signal.SIGSTOP)

    def resume_rm(self) -> None:
        os.kill(self._procs["resourcemanager"].pid, signal.SIGCONT)

    def kill_containers(self) -> None:
        """Containers run in process groups of their own: none may outlive the cluster."""
        marker = str(self.base / "nm-local")
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                cmdline = (proc_dir / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                try:
                    os.kill(int(proc_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        try:
            text += (self.log_dir / f"{name}.out").read_text(errors="replace")
        except OSError:
            pass
        return "\n".join(text.splitlines()[-lines:])

    # --- the REST API, for tests ----------------------------------------------------------------

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.rm_url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def app(self, app_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"/ws/v1/cluster/apps/{app_id}")["app"]
        return data

    def apps_tagged(self, tag: str) -> list[dict[str, Any]]:
        apps = (self.get(f"/ws/v1/cluster/apps?applicationTags={tag.lower()}").get("apps") or {}).get("app")
        return list(apps or [])

    def kill_app(self, app_id: str) -> None:
        req = urllib.request.Request(f"{self.rm_url}/ws/v1/cluster/apps/{app_id}/state", method="PUT",
                                     data=b'{"state": "KILLED"}', headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except urllib.error.HTTPError as exc:
            if exc.code not in (200, 202):
                raise

    def kill_running_apps(self) -> None:
        """Leave the cluster empty for the next test."""
        apps = (self.get("/ws/v1/cluster/apps?states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING")
                .get("apps") or {}).get("app") or []
        for app in apps:
            self.kill_app(app["id"])


def spark_home_for(cluster: YarnCluster, pyspark_home: Path, dest: Path) -> Path:
    """A Spark home for this cluster: pyspark's files, and conf/ as an operator would write it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "jars", "python", "sbin", "examples"):
        if (pyspark_home / name).exists() and not (dest / name).exists():
            (dest / name).symlink_to(pyspark_home / name)
    conf = dest / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "spark-env.sh").write_text(
        f"export HADOOP_CONF_DIR={cluster.conf_dir}\nexport YARN_CONF_DIR={cluster.conf_dir}\n"
        f"export JAVA_HOME={java_home()}\n")
    defaults = {
        # Spark's jars are on the NodeManager's host already: no upload and no localization per submit.
        "spark.yarn.jars": f"local:{(pyspark_home / 'jars').resolve()}/*",
        "spark.yarn.stagingDir": cluster.staging_dir.as_uri(),
        "spark.driver.memory": "512m",
        "spark.executor.memory": "512m",
        "spark.yarn.am.memory": "384m",
        "spark.driver.memoryOverhead": "256m",
        "spark.executor.memoryOverhead": "256m",
        "spark.yarn.am.memoryOverhead": "256m",
        "spark.executor.instances": "1",
        "spark.executor.cores": "1",
        "spark.dynamicAllocation.enabled": "false",
        "spark.yarn.report.interval": "500ms",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "spark.yarn.am.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    (conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in defaults.items()))
    return dest
