"""Readiness: whether this instance should get traffic. Postgres answers, its schema is the one this
release knows, and the instance holds its lease (so its claims and writes count)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.errors import Unavailable
from gateway.instance.heartbeat import Heartbeat
from gateway.store import Store
from gateway.store.store import SCHEMA_VERSION

CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Readiness:
    store: Store
    heartbeat: Heartbeat

    async def check(self) -> dict[str, bool]:
        """{"database": ..., "schema": ..., "lease": ...}: which conditions hold now."""
        try:
            version = await asyncio.wait_for(self.store.schema_version(), CHECK_SECONDS)
            reachable = True
        except (Unavailable, TimeoutError):
            version, reachable = None, False
        return {
            "database": reachable,
            "schema": version == SCHEMA_VERSION,
            "lease": reachable and self.heartbeat.healthy,
        }
