"""Rows as the rest of the gateway sees them. The store never hands out asyncpg Records."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.contract.batches import Batch, BatchState

_SECRET_KEY = re.compile(r"password|secret|token|key|credential", re.IGNORECASE)
_NOT_SECRET_KEYS = frozenset({"kyuubi.batch.id"})
MASK = "********"


def mask_conf(conf: dict[str, str]) -> dict[str, str]:
    """Hide values whose keys look like secrets, for responses and log lines."""
    return {
        k: (MASK if _SECRET_KEY.search(k) and k not in _NOT_SECRET_KEYS else v) for k, v in conf.items()
    }


def mask_text(text: str) -> str:
    """Hide secret-looking `key=value` pairs inside free text, such as a logged command line."""
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={MASK}", text)


_SECRET_PAIR = re.compile(r"([\w.\-]*(?:password|secret|token|key|credential)[\w.\-]*)=(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class BatchSla:
    """An SLA a batch asks for in its conf, registered with the batch (batchgate.sla.*)."""

    id: uuid.UUID
    rule: str
    duration_ms: int
    actions: list[str]
    webhook: str | None
    emails: list[str]


@dataclass(frozen=True)
class NewBatch:
    """A batch the admission step decided on, as it is written: queued, or refused (state ERROR, the
    refusal its diagnostic, never launched). Written with its audit row and its SLA rows in one
    transaction."""

    id: uuid.UUID
    batch_type: str
    user: str
    real_user: str
    name: str | None
    resource: str
    class_name: str | None
    conf: dict[str, str]
    args: list[str]
    priority: int
    project: str | None
    info: dict[str, Any]
    source_ip: str | None = None
    slas: tuple[BatchSla, ...] = ()
    refusal: str | None = None
    note: str | None = None  # the refused batch's one log line
    copy_files_from: uuid.UUID | None = None  # a restart: the original's stored files


class AuditRecord(BaseModel):
    id: int
    at: int
    actor: str
    action: str
    target: str | None
    allowed: bool
    source_ip: str | None
    detail: dict[str, Any] = Field(default_factory=dict)


class BatchRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    seq: int
    batch_type: str
    batch_user: str
    real_user: str
    name: str | None
    resource: str
    class_name: str | None
    conf: dict[str, str]
    args: list[str]
    priority: int
    project: str | None
    state: BatchState
    app_id: str | None
    app_url: str | None
    app_state: str | None
    app_diagnostic: str | None
    app_start_time: int
    instance: str | None
    create_time: int
    claim_time: int
    launch_time: int
    end_time: int
    update_time: int
    kill_requested: bool
    handle: dict[str, Any] | None
    batch_info: dict[str, Any] = Field(default_factory=dict)
    wait_reason: str | None
    log_lines: int
    log_offset: int = 0
    control: str | None = None
    paused_from: BatchState | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    duration: int | None = None

    def to_api(self) -> Batch:
        info: dict[str, Any] = dict(self.batch_info)
        info.setdefault("realUser", self.real_user)
        info.setdefault("resource", self.resource)
        info.setdefault("className", self.class_name)
        info.setdefault("args", self.args)
        info.setdefault("conf", mask_conf(self.conf))
        info.setdefault("priority", self.priority)
        info.setdefault("logLines", self.log_lines)
        info.setdefault("livyId", self.seq)
        if self.wait_reason and self.state is BatchState.INITIALIZED:
            info["waitReason"] = self.wait_reason
        return Batch(
            id=str(self.id),
            user=self.batch_user,
            batch_type=self.batch_type,
            name=self.name,
            app_start_time=self.app_start_time,
            app_id=self.app_id,
            app_url=self.app_url,
            app_state=self.app_state,
            app_diagnostic=self.app_diagnostic,
            kyuubi_instance=self.instance,
            state=self.state,
            create_time=self.create_time,
            end_time=self.end_time,
            batch_info=wire_info(info),
        )


def batch_record(row: Mapping[str, Any]) -> BatchRecord:
    """A batches row (an asyncpg record) as a BatchRecord."""
    return BatchRecord.model_validate(dict(row))


def wire_info(info: dict[str, Any]) -> dict[str, str | None]:
    """batchInfo as Kyuubi's contract has it, a map of strings (its Java client reads Map<String, String>
    and fails on anything else): text stays text, any other value is its compact JSON."""
    return {key: value if value is None or isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            for key, value in info.items()}
