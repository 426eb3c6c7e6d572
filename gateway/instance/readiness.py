"""Readiness: whether this instance should get traffic. Postgres answers, its schema is one this release
can use (its own version, or a newer one whose floor it meets), and the instance holds its lease (so its
claims and writes count)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.errors import Unavailable
from gateway.instance.heartbeat import Heartbeat
from gateway.store.instances import InstanceRepository
from gateway.store.migrate import SCHEMA_VERSION, usable

CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Readiness:
    instances: InstanceRepository
    heartbeat: Heartbeat

    async def check(self) -> dict[str, bool]:
        """{"database": ..., "schema": ..., "lease": ...}: which conditions hold now."""
        try:
            version, floor = await asyncio.wait_for(self.instances.schema_marks(), CHECK_SECONDS)
            reachable = True
        except (Unavailable, TimeoutError):
            version, floor, reachable = 0, 0, False
        return {
            "database": reachable,
            "schema": reachable and usable(version, floor, SCHEMA_VERSION),
            "lease": reachable and self.heartbeat.healthy,
        }
