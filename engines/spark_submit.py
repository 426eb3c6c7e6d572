"""spark-submit for SPARK and PYSPARK batches: masters, validation, the command line and its environment
(what its output tells about the application: engines/spark_output.py).

Nothing here does I/O beyond checking that local files exist, so that all of it can be tested directly.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from engines.base import InvalidRequest, LaunchSpec
from engines.process import clean_env

SPARK_TYPES = frozenset({"SPARK", "PYSPARK"})

# Tags that let recovery find an application by batch id, whatever the cluster manager.
TAG_CONF = "spark.batchgate.batch.id"
YARN_TAGS_CONF = "spark.yarn.tags"
YARN_TAG_PREFIX = "batchgate-"
K8S_LABEL = "batchgate-batch-id"
K8S_LABEL_CONF = f"spark.kubernetes.driver.label.{K8S_LABEL}"

MASTER_CONF = "spark.master"
DEPLOY_MODE_CONF = "spark.submit.deployMode"
REST_ENABLED_CONF = "spark.master.rest.enabled"
WAIT_APP_CONF = "spark.yarn.submit.waitAppCompletion"
DRIVER_PYTHON_CONF = "spark.pyspark.driver.python"
PYTHON_CONF = "spark.pyspark.python"

# Conf keys the gateway itself reads (idempotency, priority, impersonation, its own settings).
GATEWAY_CONF_PREFIXES = ("kyuubi.", "batchgate.", "hive.server2.proxy.user")
# Conf keys a batch may not set: the gateway sets them.
RESERVED_CONF_PREFIXES = ("spark.batchgate.", K8S_LABEL_CONF)

_SECRET_KEY = re.compile(r"password|secret|token|key|credential", re.IGNORECASE)
_CLASS_NAME = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
_USER_NAME = re.compile(r"[A-Za-z0-9_.@][A-Za-z0-9_.@$-]{0,255}")
_LOCAL_MASTER = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]")
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

MasterKind = Literal["local", "standalone", "yarn", "k8s"]


@dataclass(frozen=True)
class Master:
    """A parsed --master value."""

    url: str
    kind: MasterKind
    hosts: tuple[tuple[str, int], ...] = ()  # standalone: every master of an HA list
    api_url: str | None = None  # k8s: the API server, which is what the master URL names


def parse_master(url: str) -> Master:
    """Parse a master URL; raises ValueError with a message for anything spark-submit would not take."""
    url = url.strip()
    if _LOCAL_MASTER.fullmatch(url):
        return Master(url, "local")
    if url == "yarn":
        return Master(url, "yarn")
    if url.startswith("spark://"):
        hosts: list[tuple[str, int]] = []
        for part in url[len("spark://"):].split(","):
            match = _HOST_PORT.fullmatch(part.strip())
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{url!r} is not a standalone master URL (spark://host:port[,host:port])")
            hosts.append((match.group(1).strip("[]"), int(match.group(2))))
        return Master(url, "standalone", hosts=tuple(hosts))
    if url.startswith("k8s://"):
        api = url[len("k8s://"):]
        if not api.startswith(("http://", "https://")):
            api = "https://" + api
        parts = urlsplit(api)
        if not parts.hostname:
            raise ValueError(f"{url!r} is not a Kubernetes master URL (k8s://https://host:port)")
        return Master(url, "k8s", api_url=api.rstrip("/"))
    raise ValueError(f"{url!r} is not a master spark-submit accepts: local[*], spark://host:port, yarn, k8s://…")


def find_spark_home(configured: Path | None) -> Path | None:
    """The configured Spark home, or the installed pyspark package (which ships bin/spark-submit)."""
    if configured is not None:
        return configured
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_spark_defaults(spark_home: Path, env: dict[str, str]) -> dict[str, str]:
    """spark-defaults.conf of the installation (SPARK_CONF_DIR or SPARK_HOME/conf), which the operator owns."""
    conf_dir = Path(env["SPARK_CONF_DIR"]) if env.get("SPARK_CONF_DIR") else spark_home / "conf"
    try:
        text = (conf_dir / "spark-defaults.conf").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, *rest = re.split(r"\s*[=:\s]\s*", line, maxsplit=1)
        out[key] = rest[0] if rest else ""
    return out


def mask_value(key: str, value: str) -> str:
    return "********" if _SECRET_KEY.search(key) else value


def is_remote(resource: str) -> bool:
    """A URL that the cluster fetches (hdfs://, s3a://, https://, local: on every node), not a local file."""
    if resource.startswith("local:"):
        return True
    return bool(_URL_SCHEME.match(resource)) and not resource.startswith("file:")


def local_path(resource: str) -> Path:
    if resource.startswith("file://"):
        return Path(urlsplit(resource).path)
    if resource.startswith("file:"):
        return Path(resource[len("file:"):])
    return Path(resource)


@dataclass(frozen=True)
class SubmitConfig:
    """What the operator decided about Spark (from the gateway's settings)."""

    spark_home: Path | None = None
    default_master: str = "local[*]"
    allowed_masters: tuple[str, ...] = ()  # prefixes; empty allows every master
    python: str = ""
    # The gateway follows YARN applications through the ResourceManager, so a cluster-mode spark-submit
    # need not wait for its application (one JVM per running application otherwise).
    yarn_followed: bool = False


@dataclass(frozen=True)
class SubmitPlan:
    """One spark-submit invocation."""

    argv: list[str]
    env: dict[str, str]
    master: Master
    deploy_mode: str
    display: str  # the command line with secret values masked, for the batch log
    ignored_conf: list[str] = field(default_factory=list)
    make_dirs: list[Path] = field(default_factory=list)
    launcher_waits: bool = True  # spark-submit runs until the application ends (else: until it is submitted)
    # The same submission, structured (for a launcher that is not the spark-submit command):
    options: list[tuple[str, str]] = field(default_factory=list)  # --name, --class, --proxy-user
    conf: dict[str, str] = field(default_factory=dict)  # every --conf
    resource: str = ""
    app_args: list[str] = field(default_factory=list)

    @property
    def cluster_mode(self) -> bool:
        return self.deploy_mode == "cluster"


class SparkSubmit:
    """Validates SPARK/PYSPARK requests and builds their spark-submit command lines."""

    def __init__(self, config: SubmitConfig) -> None:
        self.config = config
        self.spark_home = find_spark_home(config.spark_home)

    @property
    def submit_script(self) -> Path | None:
        if self.spark_home is None:
            return None
        return self.spark_home / "bin" / "spark-submit"

    def master_of(self, spec: LaunchSpec) -> str:
        return spec.conf.get(MASTER_CONF, "").strip() or self.config.default_master

    def deploy_mode_of(self, spec: LaunchSpec) -> str:
        return spec.conf.get(DEPLOY_MODE_CONF, "client").strip().lower() or "client"

    # --- validation ------------------------------------------------------------------------

    def validate(self, spec: LaunchSpec) -> Master:
        script = self.submit_script
        if script is None or not script.is_file():
            where = f"{self.spark_home}/bin/spark-submit" if self.spark_home else "no Spark home"
            raise InvalidRequest(
                "batchType",
                f"{spec.batch_type} is not available: {where} not found "
                "(set --spark-home / BATCHGATE_SPARK_HOME, or install pyspark)",
            )
        self._validate_resource(spec)
        master = self._validate_master(spec)
        deploy_mode = self.deploy_mode_of(spec)
        if deploy_mode not in ("client", "cluster"):
            raise InvalidRequest("conf", f"{DEPLOY_MODE_CONF} must be client or cluster, not {deploy_mode!r}")
        if deploy_mode == "cluster" and master.kind == "local":
            raise InvalidRequest("conf", f"{DEPLOY_MODE_CONF}=cluster needs a cluster master, not {master.url!r}")
        if deploy_mode == "cluster" and master.kind == "standalone" and spec.batch_type == "PYSPARK":
            raise InvalidRequest(
                "conf", "standalone masters run PYSPARK in client mode only (Spark has no Python cluster "
                        f"mode on standalone); remove {DEPLOY_MODE_CONF}=cluster")
        self._validate_conf(spec, deploy_mode)
        if spec.user != spec.real_user and not _USER_NAME.fullmatch(spec.user):
            raise InvalidRequest("conf", f"proxy user {spec.user!r} is not a valid user name for --proxy-user")
        return master

    def _validate_resource(self, spec: LaunchSpec) -> None:
        resource = spec.resource
        if resource.startswith("-"):
            raise InvalidRequest("resource", f"{resource!r} must be a file or URL, not an option")
        path_part = urlsplit(resource).path if _URL_SCHEME.match(resource) else resource
        if spec.batch_type == "SPARK":
            if not spec.class_name:
                raise InvalidRequest("className", "required for batchType SPARK: the main class in the jar")
            if not _CLASS_NAME.fullmatch(spec.class_name):
                raise InvalidRequest("className", f"{spec.class_name!r} is not a Java class name")
            if not path_part.endswith(".jar"):
                raise InvalidRequest("resource", f"batchType SPARK runs a jar; {resource!r} is not a .jar")
        elif not path_part.endswith(".py"):
            raise InvalidRequest("resource", f"batchType PYSPARK runs a .py file; {resource!r} is not one")
        if spec.resource_ready and not is_remote(resource) and not local_path(resource).is_file():
            raise InvalidRequest("resource", f"{resource!r} does not exist on the gateway")

    def _validate_master(self, spec: LaunchSpec) -> Master:
        url = self.master_of(spec)
        try:
            master = parse_master(url)
        except ValueError as exc:
            raise InvalidRequest("conf", f"{MASTER_CONF}: {exc}") from None
        chosen = spec.conf.get(MASTER_CONF, "").strip()
        allowed = self.config.allowed_masters
        if chosen and chosen != self.config.default_master and allowed and not any(
            chosen.startswith(prefix) for prefix in allowed
        ):
            raise InvalidRequest(
                "conf", f"{MASTER_CONF}={chosen!r} is not allowed on this gateway (allowed: {', '.join(allowed)})"
            )
        return master

    def _validate_conf(self, spec: LaunchSpec, deploy_mode: str) -> None:
        for key, value in spec.conf.items():
            if "\x00" in value:
                raise InvalidRequest("conf", f"{key}: the value contains a NUL byte")
            if not key.startswith("spark."):
                continue
            if "=" in key or any(c.isspace() for c in key):
                raise InvalidRequest("conf", f"{key!r} is not a Spark conf key")
            if key.startswith(RESERVED_CONF_PREFIXES):
                raise InvalidRequest("conf", f"{key} is set by the gateway (it tags the application)")
            if key == DRIVER_PYTHON_CONF and deploy_mode == "client":
                raise InvalidRequest(
                    "conf", f"{key}: in client mode the driver runs on the gateway, with the gateway's Python")

    # --- the command line ------------------------------------------------------------------

    def plan(self, spec: LaunchSpec) -> SubmitPlan:
        """The spark-submit command for a validated request."""
        master = self.validate(spec)
        assert self.spark_home is not None
        deploy_mode = self.deploy_mode_of(spec)
        workdir = spec.workdir.resolve()
        home = self.spark_home.resolve()
        python = self.config.python
        tmp = workdir / "tmp"
        env_extra = {
            "SPARK_HOME": str(home),
            "TMPDIR": str(tmp),
            "BATCHGATE_BATCH_ID": spec.batch_id,
            "BATCHGATE_USER": spec.user,
        }
        env = clean_env(env_extra)
        submit_opts = env.get("SPARK_SUBMIT_OPTS", "")
        env["SPARK_SUBMIT_OPTS"] = (submit_opts + " " if submit_opts else "") + f"-Djava.io.tmpdir={tmp}"
        if spec.batch_type == "PYSPARK":
            env["PYSPARK_PYTHON"] = python
            env["PYSPARK_DRIVER_PYTHON"] = python
        defaults = read_spark_defaults(home, env)

        options: list[tuple[str, str]] = []
        if spec.name:
            options.append(("--name", spec.name))
        if spec.batch_type == "SPARK" and spec.class_name:
            options.append(("--class", spec.class_name))
        if spec.user != spec.real_user:
            options.append(("--proxy-user", spec.user))
        argv = [str(home / "bin" / "spark-submit"), "--master", master.url, "--deploy-mode", deploy_mode]
        for option in options:
            argv += option

        conf: dict[str, str] = {}
        ignored: list[str] = []
        for key, value in spec.conf.items():
            if not key.startswith("spark."):
                if not key.startswith(GATEWAY_CONF_PREFIXES):
                    ignored.append(key)
                continue
            if key in (MASTER_CONF, DEPLOY_MODE_CONF):
                continue
            conf[key] = value

        make_dirs = [tmp]
        if deploy_mode == "client":
            # The driver runs here: its scratch space and event log belong to the batch, not to the
            # installation or the gateway's cwd, unless the user or the operator chose otherwise.
            def unset(*keys: str) -> bool:
                return not any(k in conf or k in defaults for k in keys)

            if master.kind != "k8s" and unset("spark.local.dir"):
                conf["spark.local.dir"] = str(workdir / "local")
                make_dirs.append(workdir / "local")
            if unset("spark.eventLog.enabled", "spark.eventLog.dir"):
                conf["spark.eventLog.enabled"] = "true"
                conf["spark.eventLog.dir"] = (workdir / "eventlog").as_uri()
                make_dirs.append(workdir / "eventlog")
                if unset("spark.eventLog.compress"):
                    # Plain JSON lines: the gateway reads them for the batch's details once the driver ends
                    # (Spark 4 compresses with zstd by default, which Python only reads with an extra module).
                    conf["spark.eventLog.compress"] = "false"
            if spec.batch_type == "PYSPARK" and PYTHON_CONF in conf:
                # The executors' Python may differ, but the driver stays the gateway's.
                conf[DRIVER_PYTHON_CONF] = python

        launcher_waits = True
        if master.kind == "yarn" and deploy_mode == "cluster":
            if self.config.yarn_followed and WAIT_APP_CONF not in conf and WAIT_APP_CONF not in defaults:
                conf[WAIT_APP_CONF] = "false"
            launcher_waits = conf.get(WAIT_APP_CONF, defaults.get(WAIT_APP_CONF, "true")).strip().lower() != "false"
        conf[TAG_CONF] = spec.batch_id
        if master.kind == "yarn":
            tags = [t for t in conf.get(YARN_TAGS_CONF, "").split(",") if t.strip()]
            conf[YARN_TAGS_CONF] = ",".join([*tags, yarn_tag(spec.batch_id)])
        if master.kind == "k8s":
            conf[K8S_LABEL_CONF] = spec.batch_id

        display = list(argv)
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
            display += ["--conf", f"{key}={mask_value(key, value)}"]
        resource = spec.resource if is_remote(spec.resource) else str(local_path(spec.resource).resolve())
        argv += [resource, *spec.args]
        display += [resource, *spec.args]
        return SubmitPlan(
            argv=argv, env=env, master=master, deploy_mode=deploy_mode, display=shlex.join(display),
            ignored_conf=ignored, make_dirs=make_dirs, launcher_waits=launcher_waits, options=options, conf=conf,
            resource=resource, app_args=list(spec.args),
        )


def yarn_tag(batch_id: str) -> str:
    return f"{YARN_TAG_PREFIX}{batch_id}".lower()
