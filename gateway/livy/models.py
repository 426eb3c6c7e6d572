"""The Livy batch API's contract (docs/livy.md): requests, responses, and how they map onto batches.

A Livy batch is an ordinary SPARK or PYSPARK batch; this module holds Livy's wire shapes and turns Livy's
request into the Kyuubi one (gateway/livy/views.py turns batches into Livy's answers). Its field names are
Livy's (camelCase aliases), and its integer ids are the batch row's sequence number.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from gateway.contract.batches import CONF_PROXY_USERS, MAX_NAME_LENGTH, BatchRequest, BatchState

LivyState = Literal["starting", "running", "success", "dead", "killed"]
LIVY_STATES: dict[BatchState, LivyState] = {
    BatchState.INITIALIZED: "starting",
    BatchState.PENDING: "starting",
    BatchState.RUNNING: "running",
    BatchState.FINISHED: "success",
    BatchState.ERROR: "dead",
    BatchState.CANCELED: "killed",
}
BATCH_LOG_LINES = 10  # lines of log in a Batch, as Livy shows
MAX_ID = 2**63 - 1

# Livy's resource options and the Spark conf keys that spark-submit treats exactly like its flags.
SPARK_CONF = {
    "driver_memory": "spark.driver.memory",
    "executor_memory": "spark.executor.memory",
    "driver_cores": "spark.driver.cores",
    "executor_cores": "spark.executor.cores",
    "num_executors": "spark.executor.instances",
    "queue": "spark.yarn.queue",
    "jars": "spark.jars",
    "py_files": "spark.submit.pyFiles",
    "files": "spark.files",
    "archives": "spark.archives",
}
MEMORY_PATTERN = "^[0-9]{1,12}([kKmMgGtTpP][bB]?|[bB])?$"
QUEUE_PATTERN = "^[A-Za-z0-9_.-]{1,256}$"
_MEMORY = re.compile(MEMORY_PATTERN[1:-1])  # fullmatch: Python's $ would let a trailing newline through
_QUEUE = re.compile(QUEUE_PATTERN[1:-1])
_DIGITS = re.compile(" *[0-9]{1,6} *")


def _has_control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _count(value: Any) -> Any:
    """Livy clients send counts as ints or as strings of digits."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


def _stringify(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Count = Annotated[
    int,
    BeforeValidator(_count),
    Field(ge=1, le=100_000),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100_000},
                              {"type": "string", "pattern": "^ *[0-9]{1,6} *$"}]}),
]
Scalar = {"type": ["string", "number", "boolean"]}
Args = Annotated[list[str], WithJsonSchema({"type": "array", "items": Scalar})]
Conf = Annotated[dict[str, str], WithJsonSchema({"type": "object", "additionalProperties": Scalar})]


class LivyModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class LivyBatchRequest(LivyModel):
    """Livy's CreateBatchRequest. Unknown fields are ignored; unset ones are simply left out."""

    file: str = Field(min_length=1, max_length=4096)
    proxy_user: str | None = Field(default=None, alias="proxyUser", max_length=256)
    class_name: str | None = Field(default=None, alias="className", max_length=1024)
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    driver_memory: str | None = Field(default=None, alias="driverMemory", description="e.g. 512m, 2g",
                                      json_schema_extra={"pattern": MEMORY_PATTERN})
    executor_memory: str | None = Field(default=None, alias="executorMemory", description="e.g. 512m, 2g",
                                        json_schema_extra={"pattern": MEMORY_PATTERN})
    driver_cores: Count | None = Field(default=None, alias="driverCores")
    executor_cores: Count | None = Field(default=None, alias="executorCores")
    num_executors: Count | None = Field(default=None, alias="numExecutors")
    queue: str | None = Field(default=None, description="the YARN queue",
                              json_schema_extra={"pattern": QUEUE_PATTERN})
    args: Args = Field(default_factory=list)
    jars: list[str] = Field(default_factory=list)
    py_files: list[str] = Field(default_factory=list, alias="pyFiles")
    files: list[str] = Field(default_factory=list)
    archives: list[str] = Field(default_factory=list)
    conf: Conf = Field(default_factory=dict)

    @field_validator("file", "proxy_user", "class_name", "name")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and _has_control_chars(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.fullmatch(value):
            raise ValueError(f"{value!r} is not a memory size such as 512m or 2g")
        return value

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str | None) -> str | None:
        if value is not None and not _QUEUE.fullmatch(value):
            raise ValueError(f"{value!r} is not a queue name (letters, digits, '_', '-', '.')")
        return value

    @field_validator("args", "conf", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_stringify(v) for v in value]
        if isinstance(value, dict):
            return {k: _stringify(v) for k, v in value.items()}
        return value

    @field_validator("jars", "py_files", "files", "archives")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for i, item in enumerate(value):
            if not item.strip() or "," in item or _has_control_chars(item):
                raise ValueError(f"entry {i} ({item!r}) must be a non-empty path or URL without commas")
        return value

    @property
    def batch_type(self) -> str:
        path = urlsplit(self.file).path if "://" in self.file else self.file
        return "PYSPARK" if path.lower().endswith(".py") else "SPARK"

    def batch_request_body(self, do_as: str | None) -> dict[str, Any]:
        """The equivalent Kyuubi BatchRequest, as a body for BatchRequest.model_validate."""
        conf = dict(self.conf)
        for field, key in SPARK_CONF.items():
            value = getattr(self, field)
            if isinstance(value, list):
                if value:
                    conf[key] = ",".join(value)
            elif value is not None:
                conf[key] = str(value)
        proxy = do_as or self.proxy_user
        if proxy:
            conf[CONF_PROXY_USERS[0]] = proxy
        return {"batchType": self.batch_type, "resource": self.file, "className": self.class_name,
                "name": self.name, "conf": conf, "args": self.args}


def batch_request(livy: LivyBatchRequest, do_as: str | None) -> BatchRequest:
    return BatchRequest.model_validate(livy.batch_request_body(do_as))


def livy_message(message: str, *, do_as: bool = False) -> str:
    """A gateway message, with the Kyuubi field names it starts with turned into Livy's."""
    proxy = "doAs" if do_as else "proxyUser"
    for kyuubi, livy in (("resource:", "file:"), (f"conf.{CONF_PROXY_USERS[0]}:", f"{proxy}:"),
                         ("batchType:", "file:")):
        if message.startswith(kyuubi):
            return livy + message[len(kyuubi):]
    return message


class LivyAppInfo(LivyModel):
    driver_log_url: str | None = Field(default=None, alias="driverLogUrl")
    spark_ui_url: str | None = Field(default=None, alias="sparkUiUrl")


class LivyBatch(LivyModel):
    """A batch as Livy shows it. Every key is always present; missing values are null."""

    id: int
    name: str | None
    owner: str | None
    proxy_user: str | None = Field(alias="proxyUser")
    state: LivyState
    app_id: str | None = Field(alias="appId")
    app_info: LivyAppInfo = Field(alias="appInfo")
    log: list[str]


class LivyBatchList(LivyModel):
    from_: int = Field(alias="from")
    total: int
    sessions: list[LivyBatch]


class LivyBatchState(LivyModel):
    id: int
    state: LivyState


class LivyBatchLog(LivyModel):
    id: int
    from_: int = Field(alias="from")
    total: int
    log: list[str]


class LivyMessage(LivyModel):
    msg: str
