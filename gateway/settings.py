"""Gateway settings, in groups: each group is a pydantic-settings model, and every field is also read
from BATCHGATE_<NAME> (the field's own name, whatever its group, so the documented variables stay).
Each engine plug-in brings its own model, read from BATCHGATE_<ENGINE>_<FIELD>.

`Settings(**flat)` takes the flat names too (the CLI flags and the tests use them) and hands each to its
group; `settings.instance.port`, `settings.security.max_body_bytes`, ... read them.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.base import EnginePlugin
from engines.registry import discover
from gateway.contract.sessions import MAX_SESSION_SECONDS


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# Conf keys refused in every batch unless an operator lifts them one by one (conf_deny_lift): they inject
# code, options or environment into the JVMs and containers a batch starts. Matched case-insensitively on
# trimmed keys; "*" matches anything, anywhere. docs/security.md lists them.
BUILTIN_CONF_DENY = (
    # Spark: JVM options and class or library paths of the driver, executors and the YARN AM ...
    "*.extraJavaOptions",
    "*.defaultJavaOptions",
    "*.extraClassPath",
    "*.extraLibraryPath",
    # ... and the environment of executors, the YARN AM, the standalone/Mesos/Kubernetes driver.
    "*.executorEnv.*",
    "*.appMasterEnv.*",
    "*.driverEnv.*",
    # Flink: JVM options of every process, and the environment of its containers and pods.
    "env.java.opts*",
    "env.java.default-opts*",
    "containerized.master.env.*",
    "containerized.taskmanager.env.*",
    "kubernetes.jobmanager.entrypoint.args",
    "kubernetes.taskmanager.entrypoint.args",
)


class _Group(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATCHGATE_", extra="ignore")


class InstanceSettings(_Group):
    """This instance: where it listens, its files, its name, its lease, its workers and its logs."""

    host: str = "127.0.0.1"
    port: int = Field(default=10099, ge=0, le=65535)
    data_dir: Path = Path("./batchgate-data")
    instance_id: str | None = None

    # Leases: an instance that misses heartbeats for lease_seconds loses its batches to another.
    heartbeat_seconds: float = Field(default=3.0, gt=0)
    lease_seconds: float = Field(default=15.0, gt=0)

    # Livy and operations (docs/livy.md, docs/operations.md). The Livy API is always served under /livy;
    # livy_port also serves it at the root of a port of its own (8998 is Livy's), so that
    # http://host:8998 works as a Livy URL. /metrics reads batch counts from Postgres at most every
    # metrics_state_seconds.
    livy_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_state_seconds: float = Field(default=5.0, ge=0)

    # Several gateway processes on one port (SO_REUSEPORT): one Python process uses one core. Each
    # worker is a full instance on the same database (instance id <id>/w<n>), so max_local_batches is
    # per worker. reuse_port is set for the workers by their parent (gateway/instance/workers.py).
    workers: int = Field(default=1, ge=1, le=64)
    reuse_port: bool = False
    parent_pid: int | None = None  # a worker stops when this process (its parent) is gone

    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = "info"

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Resolved once, here, against the directory serve was started in: batches' working dirs, uploads
        # and engine temp dirs are built from it, and a relative one would be applied again inside each
        # batch's own working dir.
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _check(self) -> InstanceSettings:
        if self.lease_seconds <= self.heartbeat_seconds:
            raise ValueError("lease_seconds must be longer than heartbeat_seconds")
        if self.workers > 1 and (self.port == 0 or self.livy_port == 0):
            raise ValueError("workers share their ports: give port (and livy_port) a number, not 0")
        if self.livy_port and self.livy_port == self.port:
            raise ValueError("livy_port must differ from port (the Livy API is under /livy on port already)")
        return self


class DatabaseSettings(_Group):
    """Postgres: a URL, or (without one) an embedded Postgres under the data dir."""

    database_url: str | None = None
    # Apply pending schema migrations at start (docs/operations.md, Upgrades). False: refuse to start on a
    # database that lacks this release's migrations, and leave them to `batchgate db upgrade`.
    migrate: bool = True


class QueueSettings(_Group):
    """The queue's limits (0 means unlimited) and how long ended batches are kept."""

    max_running: int = Field(default=0, ge=0)
    max_running_per_user: int = Field(default=0, ge=0)
    max_running_per_type: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    max_local_batches: int = Field(default=2000, ge=1)

    # Retention: terminal batches and their logs are purged after this many days (0 keeps them forever).
    retention_days: float = Field(default=30.0, ge=0)
    retention_check_seconds: float = Field(default=600.0, gt=0)

    @field_validator("max_running_per_type", mode="before")
    @classmethod
    def _type_limits(cls, value: object) -> object:
        # "SPARK=4,LOCAL=100" from the environment or the command line.
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            return {k.strip().upper(): int(v) for k, v in pairs}
        return value


class SecuritySettings(_Group):
    """Who may call, and what a request may hold: users, admins, input limits, rules and rates
    (docs/security.md)."""

    users_file: Path | None = None
    admin: Annotated[list[str], NoDecode] = Field(default_factory=list)

    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=256 << 20, ge=1024)
    # Kyuubi's extra resources: how many files one submit may carry besides the resourceFile, and the
    # bytes of all its files together (each file is also held to max_upload_bytes).
    max_extra_resources: int = Field(default=32, ge=0)
    max_upload_total_bytes: int = Field(default=512 << 20, ge=1024)
    max_args: int = Field(default=1000, ge=0)
    max_conf_entries: int = Field(default=500, ge=0)
    max_conf_bytes: int = Field(default=64 * 1024, ge=0)
    # Conf keys refused in batches, besides the built-in ones (BUILTIN_CONF_DENY): patterns where "*"
    # matches anything, matched case-insensitively on trimmed keys. conf_deny_lift names built-in entries
    # (exactly as they are listed) that this gateway allows after all.
    conf_deny: Annotated[list[str], NoDecode] = Field(default_factory=list)
    conf_deny_lift: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Local resource paths must lie under one of these dirs (empty: any path) ...
    resource_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # ... and URL resources must use one of these schemes.
    resource_schemes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [
        "local", "file", "hdfs", "viewfs", "s3", "s3a", "gs", "abfs", "abfss", "oss", "http", "https", "artifact",
    ])
    # Who may act as whom, like Hadoop's proxyuser rules: {"svc-airflow": ["*"], "alice": ["bob", "@etl"]}.
    impersonation: dict[str, list[str]] = Field(default_factory=dict)
    # Groups for impersonation rules: {"etl": ["bob", "carol"]}.
    groups: dict[str, list[str]] = Field(default_factory=dict)
    # Project artifacts (zip bundles): size (compressed and uncompressed) and number of entries.
    max_artifact_bytes: int = Field(default=512 << 20, ge=1024)
    max_artifact_files: int = Field(default=10_000, ge=1)
    # Submits per user per minute, across all instances (0: unlimited).
    submit_rate_per_minute: int = Field(default=0, ge=0)
    # Login sessions (POST /api/v1/sessions): the lifetime when the login names none, and the longest
    # one a login may ask for.
    session_seconds: int = Field(default=12 * 3600, ge=60)
    session_max_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=MAX_SESSION_SECONDS)

    @field_validator("admin", "conf_deny", "conf_deny_lift", "resource_dirs", "resource_schemes", mode="before")
    @classmethod
    def _csv_list(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("conf_deny_lift")
    @classmethod
    def _lift_builtin_only(cls, value: list[str]) -> list[str]:
        known = {p.lower(): p for p in BUILTIN_CONF_DENY}
        unknown = [v for v in value if v.strip().lower() not in known]
        if unknown:
            raise ValueError(f"conf_deny_lift names {unknown}, which are not built-in deny entries; "
                             f"those are {list(BUILTIN_CONF_DENY)}")
        return [known[v.strip().lower()] for v in value]

    @property
    def conf_deny_patterns(self) -> list[str]:
        """Every conf key pattern refused: the built-in ones not lifted, then the operator's own."""
        lifted = set(self.conf_deny_lift)
        return [p for p in BUILTIN_CONF_DENY if p not in lifted] + [p for p in self.conf_deny if p.strip()]

    @model_validator(mode="after")
    def _check(self) -> SecuritySettings:
        if self.session_seconds > self.session_max_seconds:
            raise ValueError("session_seconds must not be longer than session_max_seconds")
        return self

    @property
    def open_mode(self) -> bool:
        return self.users_file is None


class ScheduleSettings(_Group):
    """Schedules and SLAs (docs/schedules.md).

    A tick found later than schedule_misfire_seconds after its time was missed (the gateway was down) and
    follows the schedule's catchup rule; catchup ALL fires at most schedule_catchup_bound missed ticks
    unless the schedule says otherwise; a QUEUE schedule keeps at most schedule_queue_limit waiting ticks.
    SLA alerts: a webhook POST times out after sla_webhook_timeout_seconds and is retried
    sla_webhook_retries times with doubling backoff from sla_webhook_backoff_seconds; e-mail goes through
    smtp_host:smtp_port (none: no e-mail) from smtp_from.
    """

    schedule_misfire_seconds: float = Field(default=60.0, gt=0)
    schedule_catchup_bound: int = Field(default=10, ge=1, le=1000)
    schedule_queue_limit: int = Field(default=100, ge=1, le=100_000)
    sla_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    sla_webhook_retries: int = Field(default=3, ge=0, le=20)
    sla_webhook_backoff_seconds: float = Field(default=1.0, ge=0, le=600)
    # The hosts SLA webhooks may be sent to, wherever they resolve: exact names, or "*.example.com" for any
    # subdomain. Empty: hosts whose addresses are all public, nothing internal (gateway/security/outbound.py).
    sla_webhook_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "batchgate@localhost"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("sla_webhook_hosts", mode="before")
    @classmethod
    def _csv_list(cls, value: object) -> object:
        return _split_csv(value)


class EngineSettings(_Group):
    """Which batch types run here, and what every engine shares. Each engine's own settings are its
    plug-in's model, read from BATCHGATE_<ENGINE>_<FIELD> (docs/engines/plugins.md)."""

    engines: Annotated[list[str] | None, NoDecode] = None
    kill_grace_seconds: float = Field(default=10.0, ge=0)

    @field_validator("engines", mode="before")
    @classmethod
    def _csv_engines(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [str(v).upper() for v in value]
        return value


class Settings(BaseModel):
    """Everything `batchgate serve` can be told, by flag or by environment variable, in groups; plus the
    settings of each installed engine plug-in (`engine_settings`, by engine name)."""

    GROUPS: ClassVar[dict[str, type[_Group]]] = {
        "instance": InstanceSettings, "database": DatabaseSettings, "queue": QueueSettings,
        "security": SecuritySettings, "schedules": ScheduleSettings, "engines": EngineSettings,
    }

    instance: InstanceSettings
    database: DatabaseSettings
    queue: QueueSettings
    security: SecuritySettings
    schedules: ScheduleSettings
    engines: EngineSettings
    engine_settings: dict[str, Any]
    _plugins: list[EnginePlugin] = PrivateAttr(default_factory=list)

    def __init__(self, **values: Any) -> None:
        """Flat names (`port=...`, `max_running=...`, `spark_master=...`) go to their group or engine; each
        reads the rest of its fields from the environment. A group given whole is taken as is."""
        groups: dict[str, Any] = {}
        for name, group in self.GROUPS.items():
            given = values.get(name)
            if isinstance(given, group):
                groups[name] = given
            else:
                groups[name] = group(**{k: v for k, v in values.items() if k in group.model_fields})
        plugins = discover()
        known = list(_batch_types(plugins))
        unknown = sorted(set(groups["engines"].engines or ()) - set(known))
        if unknown:
            raise _error("engines", groups["engines"].engines,
                         f"unknown batch types {unknown}; known: {known}")
        engine_settings = {plugin.name: _engine_settings(plugin, values) for plugin in plugins}
        super().__init__(**groups, engine_settings=engine_settings)
        self._plugins = plugins

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.security.users_file is None and not _is_loopback(self.instance.host):
            raise ValueError(
                f"open mode (no users file) is only allowed on loopback, not on host {self.instance.host!r}; "
                "pass --users-file"
            )
        return self

    @property
    def open_mode(self) -> bool:
        return self.security.open_mode

    @property
    def plugins(self) -> list[EnginePlugin]:
        """The installed engine plug-ins."""
        return list(self._plugins)

    @property
    def batch_types(self) -> tuple[str, ...]:
        """Every batch type an installed engine offers, enabled here or not."""
        return _batch_types(self._plugins)

    @property
    def enabled_engines(self) -> frozenset[str]:
        if self.engines.engines is not None:
            return frozenset(self.engines.engines)
        return frozenset(t for plugin in self._plugins if self.open_mode or plugin.enabled_with_users
                         for t in plugin.batch_types)


def _batch_types(plugins: list[EnginePlugin]) -> tuple[str, ...]:
    """By engine name, and within an engine SPARK before PYSPARK (a type's Python flavour after it)."""
    return tuple(t for plugin in sorted(plugins, key=lambda p: p.name)
                 for t in sorted(plugin.batch_types, key=lambda t: (t.startswith("PY"), t)))


def _engine_settings(plugin: EnginePlugin, values: dict[str, Any]) -> Any:
    """The plug-in's settings from BATCHGATE_<NAME>_<FIELD> and the flat names <name>_<field>; an error
    names the flat field (spark_rest_port), as the flags and the variables spell it."""
    prefix = f"{plugin.name}_"
    given = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    try:
        return plugin.settings(_env_prefix=f"BATCHGATE_{plugin.name.upper()}_", **given)
    except ValidationError as exc:
        errors = [{**e, "loc": (f"{prefix}{e['loc'][0]}", *e["loc"][1:]) if e["loc"] else e["loc"]}
                  for e in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]


def _error(field: str, value: object, message: str) -> ValidationError:
    return ValidationError.from_exception_data("Settings", [
        {"type": "value_error", "loc": (field,), "input": value, "ctx": {"error": ValueError(message)}},
    ])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
