"""Numbers: the integer ids (and UUIDs) that other systems' APIs give jobs, runs, projects and schedules.

batchgate names a job and a project by name and a run and a schedule by UUID. Datameer's and Azkaban's
clients expect integers (file-id, job-execution-id, execid, projectId, scheduleId) and Datameer a file
UUID. A number is made the first time a dialect shows the thing and never reused. A job's and a
project's key holds its creation time too, so that a job deleted and made again under the same name is
a new file with a new number, as it would be on those systems.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from gateway.store.dialects import DialectIdRepository


class Kind(StrEnum):
    JOB = "job"
    RUN = "run"
    PROJECT = "project"
    SCHEDULE = "schedule"


def named_key(name: str, created_at: int) -> str:
    return f"{name}@{created_at}"


def parse_named_key(key: str) -> tuple[str, int]:
    name, _, created = key.rpartition("@")
    return name, int(created)


class Numbers:
    def __init__(self, ids: DialectIdRepository) -> None:
        self._ids = ids

    async def numbers(self, kind: Kind, keys: list[str]) -> dict[str, int]:
        return {k: n for k, (n, _) in (await self._ids.numbers(kind, keys)).items()}

    async def number(self, kind: Kind, key: str) -> int:
        number, _ = (await self._ids.numbers(kind, [key]))[key]
        return number

    async def number_and_uid(self, kind: Kind, key: str) -> tuple[int, uuid.UUID]:
        return (await self._ids.numbers(kind, [key]))[key]

    async def key(self, kind: Kind, number: int) -> str | None:
        return await self._ids.key(kind, number)

    async def key_by_uid(self, kind: Kind, uid: uuid.UUID) -> str | None:
        return await self._ids.key_by_uid(kind, uid)

    async def forget(self, kind: Kind, keys: list[str]) -> None:
        await self._ids.forget(kind, keys)
