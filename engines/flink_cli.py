"""Flink launcher command lines: the Flink home, targets, the conf mapping and reading `flink run` output.

Pure functions and small scanners, so that the command built for every target can be tested without
a cluster.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engines.base import InvalidRequest, LaunchSpec

LOCAL = "local"
REMOTE = "remote"
YARN_APPLICATION = "yarn-application"
YARN_SESSION = "yarn-session"
KUBERNETES_APPLICATION = "kubernetes-application"
TARGETS = (LOCAL, REMOTE, YARN_APPLICATION, YARN_SESSION, KUBERNETES_APPLICATION)
SESSION_TARGETS = frozenset({REMOTE, YARN_SESSION})  # a job on a cluster that outlives it
CONF_YARN_APPLICATION_ID = "yarn.application.id"
APPLICATION_TARGETS = frozenset({YARN_APPLICATION, KUBERNETES_APPLICATION})

CONF_TARGET = "execution.target"
CONF_JOBMANAGER = "batchgate.flink.jobmanager"
CONF_FIXED_JOB_ID = "$internal.pipeline.job-id"
# Where a pause's savepoint goes (a gateway key): a directory URI the JobManager can write to.
CONF_SAVEPOINT_DIR = "batchgate.flink.savepoint-dir"
# How often the local mini cluster's REST API refreshes the metrics of running tasks (Flink: 10 s), so
# that a short job's vertex records are seen before the mini cluster goes away with its launcher.
LOCAL_METRICS_INTERVAL_MS = "500"
# Conf keys that speak to the gateway, not to Flink: they are not passed on as -D.
_GATEWAY_KEY = re.compile(r"^(batchgate\.|kyuubi\.|hive\.server2\.proxy\.user$)")
_SECRET_KEY = re.compile(r"password|secret|token|key|credential", re.IGNORECASE)
_CLASS_NAME = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")
# YARN: "Found Web Interface host:port of application 'application_…'."
# Kubernetes: "… successfully, JobManager Web Interface: http://host:port"
WEB_INTERFACE = re.compile(r"Web Interface:?\s+(?:(https?)://)?([\w.\-]+:\d+)")
YARN_APPLICATION_ID = re.compile(r"application_\d+_\d+")
_YARN_APPLICATION_ID_ONLY = re.compile(r"application_\d+_\d+$")

MAX_DIAGNOSTIC = 500


def default_flink_home() -> Path | None:
    """The installed apache-flink package's folder (it holds bin/flink), without importing it."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        return None
    home = Path(next(iter(spec.submodule_search_locations)))
    return home if (home / "bin" / "flink").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    """"host:port" (an http:// prefix is tolerated); InvalidRequest("conf") otherwise."""
    text = value.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRequest("conf", f"{what} must be host:port, not {value!r}")
    return host, int(port)


@dataclass(frozen=True)
class Target:
    """Where a batch runs, and where the gateway reaches the Flink REST API that reports on it."""

    name: str
    rest_url: str | None = None

    @property
    def application(self) -> bool:
        return self.name in APPLICATION_TARGETS

    @property
    def session(self) -> bool:
        return self.name in SESSION_TARGETS


def choose_target(conf: Mapping[str, str], default_target: str, default_jobmanager: str | None) -> Target:
    """The batch's target, from its conf, then the gateway's defaults.

    - conf `execution.target` names it (local, remote, yarn-application, yarn-session,
      kubernetes-application);
    - otherwise a batch that names a cluster (`batchgate.flink.jobmanager` or `rest.address`) is remote;
    - otherwise the gateway's default target.
    A remote target's REST address is `batchgate.flink.jobmanager`, else `rest.address`:`rest.port`
    (8081), else the gateway's default jobmanager. An application target's REST address is
    `batchgate.flink.jobmanager` if given, else it is read from the launcher's output. A yarn-session
    target names its session by `yarn.application.id`; its REST address is `batchgate.flink.jobmanager`
    if given, else the ResourceManager tells it at launch.
    """
    explicit = conf.get(CONF_TARGET, "").strip()
    if explicit:
        name = explicit.lower()
        if name not in TARGETS:
            raise InvalidRequest(
                "conf", f"{CONF_TARGET} {explicit!r} is not supported; use one of {', '.join(TARGETS)}")
    elif CONF_JOBMANAGER in conf or "rest.address" in conf:
        name = REMOTE
    else:
        name = default_target
    if name == LOCAL:
        return Target(LOCAL)
    if name == YARN_SESSION:
        app_id = conf.get(CONF_YARN_APPLICATION_ID, "").strip()
        if not _YARN_APPLICATION_ID_ONLY.match(app_id):
            raise InvalidRequest("conf", f"target {YARN_SESSION} needs {CONF_YARN_APPLICATION_ID}=application_<id> "
                                         "of a running Flink session on YARN")
    if CONF_JOBMANAGER in conf:
        host, port = parse_host_port(conf[CONF_JOBMANAGER], CONF_JOBMANAGER)
        return Target(name, f"http://{host}:{port}")
    if name == REMOTE:
        if "rest.address" in conf:
            port_text = conf.get("rest.port", "8081").strip()
            if not port_text.isdigit():
                raise InvalidRequest("conf", f"rest.port must be a number, not {port_text!r}")
            return Target(REMOTE, f"http://{conf['rest.address'].strip()}:{int(port_text)}")
        if default_jobmanager:
            host, port = parse_host_port(default_jobmanager, "the gateway's Flink jobmanager")
            return Target(REMOTE, f"http://{host}:{port}")
        raise InvalidRequest(
            "conf", f"target remote needs a session cluster: set {CONF_JOBMANAGER}=host:port "
            "(or rest.address and rest.port)")
    return Target(name)


def fixed_job_id(batch_id: str) -> str:
    """The JobID an application-target batch is given in advance: the batch id as 32 hex digits."""
    return uuid.UUID(batch_id).hex


def resource_path(resource: str) -> str:
    """A file:// or plain path made absolute; other URLs (local://, hdfs://, s3://…) as they are."""
    parts = urlsplit(resource)
    if parts.scheme == "file":
        return parts.path
    if parts.scheme:
        return resource
    return os.path.abspath(resource)


def check_resource(spec: LaunchSpec, target: Target) -> None:
    """FLINK needs a .jar and PYFLINK a .py; a file on the gateway must exist."""
    parts = urlsplit(spec.resource)
    name = parts.path if parts.scheme else spec.resource
    want = ".jar" if spec.batch_type == "FLINK" else ".py"
    if not name.lower().endswith(want):
        kind = "a jar" if want == ".jar" else "a Python script"
        raise InvalidRequest("resource", f"{spec.batch_type} needs {kind} ({want}), not {spec.resource!r}")
    if parts.scheme in ("", "file"):
        path = Path(parts.path if parts.scheme else spec.resource)
        if spec.resource_ready and not path.is_file():
            raise InvalidRequest("resource", f"file {str(path)!r} not found")
    elif not target.application:
        raise InvalidRequest(
            "resource", f"{parts.scheme}:// resources need an application target; the {target.name} "
            "target runs a file on the gateway's disk")


def check_request(spec: LaunchSpec) -> None:
    if spec.class_name and not _CLASS_NAME.match(spec.class_name):
        raise InvalidRequest("className", f"{spec.class_name!r} is not a Java class name")
    for key in spec.conf:
        if "=" in key or not key.strip():
            raise InvalidRequest("conf", f"key {key!r} cannot be passed to Flink as -D key=value")


def flink_conf(spec: LaunchSpec, target: Target, python: str, local_rest_port: int | None) -> dict[str, str]:
    """The -D options: the gateway's defaults, then the batch's conf (which wins), then what must hold."""
    tmp = str(spec.workdir / "tmp")
    conf: dict[str, str] = {}
    if spec.name:
        conf["pipeline.name"] = spec.name
    if target.name == LOCAL:
        # The mini cluster lives in the launcher: keep its files in the batch's folder, and give its
        # REST API a known port so that appUrl points at it while the job runs.
        conf.update({"io.tmp.dirs": tmp, "web.upload.dir": tmp,
                     "metrics.fetcher.update-interval": LOCAL_METRICS_INTERVAL_MS})
        if local_rest_port is not None:
            conf.update({"rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
                         "rest.bind-port": str(local_rest_port), "rest.port": str(local_rest_port)})
    if spec.batch_type == "PYFLINK" and not target.application:
        # The client runs here; with local and loopback clusters so do the Python workers.
        conf.update({"python.client.executable": python, "python.executable": python})
    if target.application:
        conf.update({
            CONF_FIXED_JOB_ID: fixed_job_id(spec.batch_id),
            # Keep the JobManager up after the job ends, so that its final state and exceptions can be
            # read; the gateway shuts the cluster down once it has them (DELETE /cluster).
            "execution.shutdown-on-application-finish": "false",
            "execution.submit-failed-job-on-application-error": "true",
        })
        if target.name == YARN_APPLICATION:
            conf["yarn.application.name"] = spec.name or f"batchgate-{spec.batch_id}"
            conf["yarn.tags"] = f"batchgate,batchgate-{spec.batch_id}"
        else:
            conf["kubernetes.cluster-id"] = f"bg-{spec.batch_id}"
    for key, value in spec.conf.items():
        if key != CONF_TARGET and not _GATEWAY_KEY.match(key):
            conf[key] = value
    if target.name == REMOTE and target.rest_url:
        parts = urlsplit(target.rest_url)
        conf["rest.address"] = parts.hostname or ""
        conf["rest.port"] = str(parts.port)
    return conf


def local_rest_url(conf: Mapping[str, str]) -> str | None:
    """The local mini cluster's REST address, when its port is a single known number."""
    port = conf.get("rest.bind-port", conf.get("rest.port", ""))
    if not port.isdigit():
        return None
    return f"http://{conf.get('rest.address', '127.0.0.1')}:{port}"


def build_argv(home: Path, spec: LaunchSpec, target: Target, conf: Mapping[str, str]) -> list[str]:
    """`flink run -t <target> [-d] -D k=v… (-c class jar | -py script) args…` (no shell)."""
    argv = [str(home / "bin" / "flink"), "run", "-t", target.name]
    if target.session:
        argv.append("-d")  # application targets are detached by nature; local must stay attached
    for key, value in conf.items():
        argv += ["-D", f"{key}={value}"]
    resource = resource_path(spec.resource)
    if spec.batch_type == "FLINK":
        if spec.class_name:
            argv += ["-c", spec.class_name]
        argv.append(resource)
    else:
        argv += ["-py", resource]
    return [*argv, *spec.args]


def resume_argv(argv: list[str], savepoint: str) -> list[str]:
    """The same `flink run` command, restoring from a savepoint: `flink run -s <savepoint> …`.

    An earlier `-s` (from an earlier resume) is replaced."""
    if len(argv) < 2 or argv[1] != "run":
        raise ValueError(f"not a flink run command: {argv[:2]}")
    rest = list(argv[2:])
    if rest[:1] == ["-s"]:
        rest = rest[2:]
    return [argv[0], "run", "-s", savepoint, *rest]


def savepoint_dir(conf: Mapping[str, str], workdir: Path) -> str:
    """A pause's savepoint directory: conf `batchgate.flink.savepoint-dir`, else the batch's own folder
    (right when the session cluster shares the gateway's disk, as on one machine)."""
    configured = conf.get(CONF_SAVEPOINT_DIR, "").strip()
    if configured:
        return configured
    return (workdir / "savepoints").resolve().as_uri()


def display_argv(argv: list[str]) -> str:
    """The command line for the batch log, with secret-looking -D values masked."""
    shown: list[str] = []
    for i, word in enumerate(argv):
        if i > 0 and argv[i - 1] == "-D":
            key, _, _value = word.partition("=")
            if _SECRET_KEY.search(key):
                word = f"{key}=********"
        shown.append(word)
    return shlex.join(shown)


def launch_env(spec: LaunchSpec, base: Mapping[str, str]) -> dict[str, str]:
    """Logs and temporary files of the launcher go to the batch's own folder."""
    tmp = spec.workdir / "tmp"
    env = dict(base)
    jvm_args = f"-Djava.io.tmpdir={tmp}"
    env.update(
        FLINK_LOG_DIR=str(spec.workdir / "flink-log"),
        FLINK_IDENT_STRING="batchgate",
        TMPDIR=str(tmp),
        JVM_ARGS=f"{jvm_args} {base['JVM_ARGS']}" if base.get("JVM_ARGS") else jvm_args,
        BATCHGATE_BATCH_ID=spec.batch_id,
        BATCHGATE_USER=spec.user,
    )
    if spec.user != spec.real_user:
        env["HADOOP_PROXY_USER"] = spec.user
    return env


class CauseScanner:
    """Finds the most telling error line in launcher output or a Java stack trace, in bounded memory.

    Preference: the last line of a Python traceback (the user's own exception), then the deepest
    Java `Caused by:`, then the first line that looks like an exception.
    """

    _EXCEPTION = re.compile(r"^(?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b.*")
    _PY_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Exception|Error|Exit|Interrupt|Warning)?(?::.*)?$")
    _WRAPPERS = ("py4j.protocol.Py4JJavaError", "org.apache.flink.client.program.ProgramAbortException")

    def __init__(self) -> None:
        self.python: str | None = None
        self.caused_by: str | None = None
        self.exception: str | None = None
        self._in_traceback = False
        self._py4j = False

    def feed(self, lines: Iterable[str]) -> None:
        for raw in lines:
            line = raw.rstrip()
            if line.endswith("Traceback (most recent call last):"):
                self._in_traceback = True
                continue
            if self._py4j:
                # py4j's "An error occurred while calling o52.select." is followed by the Java exception
                # the program's call raised, as ": org.apache.flink.table.api.ValidationException: …".
                self._py4j = False
                if self.python is None and line.startswith(": ") and self._EXCEPTION.match(line[2:]):
                    self.python = line[2:]
                    continue
            if self._in_traceback:
                if not line or line[0].isspace():
                    continue
                self._in_traceback = False
                if line.startswith(self._WRAPPERS[0]):
                    self._py4j = True
                elif self.python is None and self._PY_EXCEPTION.match(line) and not line.startswith(self._WRAPPERS):
                    self.python = line
                continue
            if line.startswith("Caused by: "):
                self.caused_by = line[len("Caused by: "):]
            elif self.exception is None and self._EXCEPTION.match(line) and not line.startswith(self._WRAPPERS):
                self.exception = line

    def best(self) -> str | None:
        found = self.python or self.caused_by or self.exception
        return found[:MAX_DIAGNOSTIC] if found else None


class OutputScanner:
    """Reads `flink run` output for JobIDs, the JobManager's web address and the cause of a failure."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.web_url: str | None = None
        self.yarn_application: str | None = None
        self.cause = CauseScanner()
        self.last_line: str | None = None

    def feed(self, lines: list[str]) -> list[str]:
        """Returns the JobIDs seen for the first time."""
        new: list[str] = []
        for line in lines:
            for job_id in JOB_ID.findall(line):
                if job_id not in self.job_ids:
                    self.job_ids.append(job_id)
                    new.append(job_id)
            if "Web Interface" in line and self.web_url is None:
                match = WEB_INTERFACE.search(line)
                if match:
                    self.web_url = f"{match.group(1) or 'http'}://{match.group(2)}"
            if self.yarn_application is None and "application_" in line:
                app = YARN_APPLICATION_ID.search(line)
                if app:
                    self.yarn_application = app.group(0)
            if line.strip():
                self.last_line = line.strip()
        self.cause.feed(lines)
        return new

    def diagnostic(self) -> str | None:
        found = self.cause.best() or self.last_line
        return found[:MAX_DIAGNOSTIC] if found else None
