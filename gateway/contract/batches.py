"""The API contract as pydantic models. Field aliases live here and only here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

# The validation context key under which the server passes the batch types its engines offer: with it,
# BatchRequest refuses any other type; without it (the client), it only normalizes the case.
BATCH_TYPES = "batch_types"

CONF_BATCH_ID = "kyuubi.batch.id"
CONF_PRIORITY = "kyuubi.batch.priority"
CONF_PROJECT = "batchgate.project"
CONF_PROXY_USERS = ("kyuubi.session.proxy.user", "hive.server2.proxy.user")
MAX_NAME_LENGTH = 256
MAX_EXTRA_RESOURCE_KEYS = 64


class BatchState(StrEnum):
    INITIALIZED = "INITIALIZED"
    PAUSED = "PAUSED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    CANCELED = "CANCELED"


class AppState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN = "UNKNOWN"


TERMINAL_STATES = frozenset({BatchState.FINISHED, BatchState.ERROR, BatchState.CANCELED})
ACTIVE_STATES = frozenset({BatchState.PENDING, BatchState.RUNNING})


def _has_control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class BatchRequest(ApiModel):
    """What a client POSTs. Unknown fields are ignored, as Kyuubi does."""

    batch_type: str = Field(alias="batchType")
    resource: str | None = None
    class_name: str | None = Field(default=None, alias="className")
    name: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list)
    project: str | None = Field(default=None, max_length=128)
    # Kyuubi's extra resources: {conf key: "a.zip,b.py"}, each file a multipart part named by its file name.
    extra_resources_map: dict[str, str] = Field(default_factory=dict, alias="extraResourcesMap")

    @field_validator("batch_type")
    @classmethod
    def _batch_type(cls, value: str, info: ValidationInfo) -> str:
        upper = value.strip().upper()
        known = (info.context or {}).get(BATCH_TYPES)
        if known is not None and upper not in known:
            raise ValueError(f"must be one of {', '.join(known)}, not {value!r}")
        if not upper:
            raise ValueError("must not be empty")
        return upper

    @field_validator("resource", "class_name")
    @classmethod
    def _no_blank(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.strip():
                return None
            if _has_control_chars(value):
                raise ValueError("must not contain control characters")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _has_control_chars(value):
            raise ValueError("must not contain control characters")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
        return value

    @field_validator("conf", mode="before")
    @classmethod
    def _conf(cls, value: Any) -> Any:
        # Kyuubi's Java client sends strings, but hand-written clients send numbers and booleans.
        if value is None:
            return {}
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(item, bool):
                    out[key] = "true" if item else "false"
                elif isinstance(item, int | float):
                    out[key] = str(item)
                else:
                    out[key] = item
            return out
        return value

    @field_validator("conf")
    @classmethod
    def _conf_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key.strip() or _has_control_chars(key):
                raise ValueError(f"key {key!r} is empty or has control characters")
            if "\x00" in item:
                raise ValueError(f"value of {key!r} contains a NUL byte")
        batch_id = value.get(CONF_BATCH_ID)
        if batch_id is not None:
            try:
                uuid.UUID(batch_id)
            except ValueError:
                raise ValueError(f"{CONF_BATCH_ID} must be a UUID, not {batch_id!r}") from None
        priority = value.get(CONF_PRIORITY)
        if priority is not None:
            try:
                int(priority)
            except ValueError:
                raise ValueError(f"{CONF_PRIORITY} must be an integer, not {priority!r}") from None
        return value

    @field_validator("extra_resources_map", mode="before")
    @classmethod
    def _extra_resources(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("extra_resources_map")
    @classmethod
    def _extra_resources_size(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_EXTRA_RESOURCE_KEYS:
            raise ValueError(f"at most {MAX_EXTRA_RESOURCE_KEYS} conf keys, not {len(value)}")
        for key in value:
            if _has_control_chars(key):
                raise ValueError(f"key {key!r} has control characters")
        return value

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("args")
    @classmethod
    def _args_nul(cls, value: list[str]) -> list[str]:
        for i, arg in enumerate(value):
            if "\x00" in arg:
                raise ValueError(f"argument {i} contains a NUL byte")
        return value

    @property
    def proxy_user(self) -> str | None:
        for key in CONF_PROXY_USERS:
            if self.conf.get(key):
                return self.conf[key]
        return None

    @property
    def extra_resources(self) -> dict[str, list[str]]:
        """The extra resource files each conf key asks for, blank keys and names left out (as Kyuubi does)."""
        wanted: dict[str, list[str]] = {}
        for key, names in self.extra_resources_map.items():
            listed = [n.strip() for n in names.split(",") if n.strip()]
            if key.strip() and listed:
                wanted[key.strip()] = listed
        return wanted

    @property
    def priority(self) -> int:
        return int(self.conf.get(CONF_PRIORITY, "0"))

    @property
    def project_name(self) -> str | None:
        """The request field `project`, or conf `batchgate.project` for Kyuubi clients."""
        return self.project or self.conf.get(CONF_PROJECT) or None


class Batch(ApiModel):
    """A batch as Kyuubi's REST API shows it."""

    id: str
    user: str
    batch_type: str = Field(alias="batchType")
    name: str | None = None
    app_start_time: int = Field(default=0, alias="appStartTime")
    app_id: str | None = Field(default=None, alias="appId")
    app_url: str | None = Field(default=None, alias="appUrl")
    app_state: str | None = Field(default=None, alias="appState")
    app_diagnostic: str | None = Field(default=None, alias="appDiagnostic")
    kyuubi_instance: str | None = Field(default=None, alias="kyuubiInstance")
    state: BatchState
    create_time: int = Field(alias="createTime")
    end_time: int = Field(default=0, alias="endTime")
    # Kyuubi's Map<String, String>: values that are not text travel as their JSON (gateway/store/records.py).
    batch_info: dict[str, str | None] = Field(default_factory=dict, alias="batchInfo")


class BatchList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    batches: list[Batch]


class BatchSnapshot(ApiModel):
    """The `snapshot` event of GET /api/v1/batches/events: the batches named, or the caller's queued,
    paused and running ones; `batch` events then carry one Batch each."""

    batches: list[Batch]


class LocalLog(ApiModel):
    log_row_set: list[str] = Field(alias="logRowSet")
    row_count: int = Field(alias="rowCount")


class CloseBatchResponse(ApiModel):
    success: bool
    msg: str


class ReassignBatchRequest(ApiModel):
    """Kyuubi's manual takeover: move a dead instance's batches to the instance that answers."""

    kyuubi_instance: str = Field(alias="kyuubiInstance", min_length=1, max_length=512)

    @field_validator("kyuubi_instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not value.strip() or _has_control_chars(value):
            raise ValueError("must be an instance name (as batches show it in kyuubiInstance)")
        return value.strip()


class ReassignBatchResponse(ApiModel):
    batch_ids: list[str] = Field(alias="batchIds")
    original_kyuubi_instance: str = Field(alias="originalKyuubiInstance")
    new_kyuubi_instance: str = Field(alias="newKyuubiInstance")


class Count(ApiModel):
    count: int


class ErrorBody(ApiModel):
    message: str


class AuditEntry(ApiModel):
    id: int
    time: int
    actor: str
    action: str
    target: str | None = None
    allowed: bool
    source_ip: str | None = Field(default=None, alias="sourceIp")
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    entries: list[AuditEntry]


class Health(ApiModel):
    status: str


class BatchSort(StrEnum):
    """The keys the batch list sorts by (its `sort` parameter); the store maps each to its column."""

    CREATE_TIME = "createTime"
    END_TIME = "endTime"
    NAME = "name"
    DURATION = "duration"


@dataclass(frozen=True)
class BatchQuery:
    """The batch list's query as the wire gives it (GET /api/v1/batches, the admin count, a bulk action's
    filter; a dialect's list in its own terms), already validated. The domain turns it into the store's
    filter; an empty field filters nothing."""

    batch_type: str | None = None
    states: tuple[BatchState, ...] = ()
    user: str | None = None
    name: str | None = None
    key: str | None = None
    project: str | None = None
    attempts_of: str | None = None  # a batch id: the attempts of that batch
    create_time: int = 0  # created at or after (epoch ms)
    end_time: int = 0  # ended at or before (epoch ms)
    offset: int = 0
    size: int = 100
    sort: BatchSort = BatchSort.CREATE_TIME
    desc: bool = False


class BulkFilter(ApiModel):
    """The list filters, as a bulk action's body carries them."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    batch_type: str | None = Field(default=None, alias="batchType")
    batch_state: str | None = Field(default=None, alias="batchState")
    batch_user: str | None = Field(default=None, alias="batchUser")
    batch_name: str | None = Field(default=None, alias="batchName")
    create_time: int | None = Field(default=None, alias="createTime", ge=0)
    end_time: int | None = Field(default=None, alias="endTime", ge=0)
    key: str | None = None
    project: str | None = None


class BulkRequest(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    action: str
    ids: list[str] | None = Field(default=None, max_length=100_000)
    filter: BulkFilter | None = None
    project: str | None = Field(default=None, description="every batch of this project (as Kylin 5 does)")


class BulkFailure(ApiModel):
    id: str
    message: str


class BulkResponse(ApiModel):
    matched: int
    succeeded: int
    failed: list[BulkFailure]
    failures_truncated: bool = Field(default=False, alias="failuresTruncated")


class Step(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    name: str
    kind: str
    start: int | None = None
    end: int | None = None
    duration: int | None = None


class BatchDetails(ApiModel):
    batch: Batch
    steps: list[Step]
    counters: dict[str, Any]
    attempts: list[Batch]


class DropResponse(ApiModel):
    success: bool
    msg: str


def validation_message(exc: ValidationError) -> str:
    """The first error of a pydantic validation, as 'field: what is wrong'."""
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
