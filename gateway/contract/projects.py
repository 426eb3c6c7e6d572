"""The projects API contract."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from gateway.contract.batches import ApiModel

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Role(StrEnum):
    READ = "READ"
    EXECUTE = "EXECUTE"
    WRITE = "WRITE"
    SCHEDULE = "SCHEDULE"
    ADMIN = "ADMIN"


class ProjectSpec(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str | None = None
    description: str | None = Field(default=None, max_length=4096)
    members: dict[str, list[Role]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_NAME.match(value):
            raise ValueError(f"project name {value!r} must be 1-128 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: dict[str, list[Role]]) -> dict[str, list[Role]]:
        for user in value:
            if not user or any(ord(c) < 32 for c in user) or len(user) > 256:
                raise ValueError(f"member name {user!r} is empty, too long or has control characters")
        return value


class Project(ApiModel):
    name: str
    description: str | None = None
    owner: str
    members: dict[str, list[str]]
    create_time: int = Field(alias="createTime")
    update_time: int = Field(alias="updateTime")


class ProjectList(ApiModel):
    from_: int = Field(alias="from")
    total: int
    projects: list[Project]


class Artifact(ApiModel):
    project: str
    version: int
    size: int
    digest: str
    files: list[str]
    uploader: str
    create_time: int = Field(alias="createTime")


class ArtifactList(ApiModel):
    artifacts: list[Artifact]


class ProjectLogEntry(ApiModel):
    id: int
    time: int
    actor: str
    action: str
    detail: dict[str, Any]


class ProjectLog(ApiModel):
    from_: int = Field(alias="from")
    total: int
    entries: list[ProjectLogEntry]
