"""BatchService: what the API may do with batches, and who may do it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from gateway.batches.admission import Admission
from gateway.batches.logs import LogStore
from gateway.batches.uploads import Upload
from gateway.contract.batches import TERMINAL_STATES, BatchRequest
from gateway.errors import BadRequest, NotFound
from gateway.instance.listener import STATE, Hub
from gateway.instance.metrics import Metrics
from gateway.projects.service import ProjectService
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.security.policy import Policy
from gateway.store import BatchRecord, BatchRepository, ListFilter

log = structlog.get_logger("gateway.service")

KILL_WAIT_SECONDS = 3.0

__all__ = ["BatchService", "Upload", "parse_batch_id"]


class BatchService:
    def __init__(
        self, store: BatchRepository, logs: LogStore, hub: Hub, policy: Policy, admission: Admission,
        audit: AuditService, *,
        roles: Callable[[Principal, BatchRecord], Awaitable[frozenset[str]]] | None = None,
        projects: ProjectService | None = None, metrics: Metrics | None = None,
    ) -> None:
        self._audit = audit
        self._store = store
        self._logs = logs
        self._hub = hub
        self._policy = policy
        self._admission = admission
        self._roles = roles
        self._projects = projects
        self._metrics = metrics or Metrics()

    async def _find(self, batch_id: str) -> BatchRecord:
        batch = await self._store.get_batch(parse_batch_id(batch_id))
        if batch is None:
            raise NotFound(f"batch {batch_id} not found")
        return batch

    async def roles(self, principal: Principal, batch: BatchRecord) -> frozenset[str]:
        """What the caller holds on a batch through its job or project (nothing for plain batches)."""
        if self._roles is None or principal.is_admin or principal.name in (batch.batch_user, batch.real_user):
            return frozenset()
        return await self._roles(principal, batch)

    async def readable(self, principal: Principal, batch_id: str) -> BatchRecord:
        batch = await self._find(batch_id)
        self._policy.check_read(principal, batch, await self.roles(principal, batch))
        return batch

    async def modifiable(self, principal: Principal, batch_id: str) -> BatchRecord:
        batch = await self._find(batch_id)
        self._policy.check_modify(principal, batch, await self.roles(principal, batch))
        return batch

    # --- commands ------------------------------------------------------------------------

    async def submit(
        self, principal: Principal, request: BatchRequest, upload: Upload | None = None,
        extras: dict[str, Upload] | None = None,
    ) -> tuple[BatchRecord, bool]:
        """Queue a batch through the admission step. Returns (batch, duplicated). `extras` are the extra
        resource files of a multipart submit, by stored name; `request.extraResourcesMap` says which conf
        key gets which."""
        batch, created = await self._admission.submit(principal, request, upload, extras)
        return batch, not created

    def queued(self) -> None:
        """Batches were queued: wake the claimers (here at once, elsewhere by a coalesced NOTIFY)."""
        self._admission.queued()

    async def kill(self, principal: Principal, batch_id: str) -> tuple[bool, str, BatchRecord]:
        batch = await self.modifiable(principal, batch_id)
        if batch.state in TERMINAL_STATES:
            return False, f"batch {batch.id} is already {batch.state}", batch
        await self._audit.record(principal.name, "kill", str(batch.id), source_ip=principal.source_ip,
                                 detail={"state": batch.state})
        canceled = await self._store.cancel_queued(batch.id)
        if canceled is not None:
            self._metrics.ended(canceled)
            await self._logs.note(batch.id, f"canceled by {principal.name} before launch")
            log.info("batch.canceled", batch_id=str(batch.id), user=principal.name)
            return True, f"batch {batch.id} canceled", canceled
        with self._hub.subscribe(STATE, str(batch.id)) as changed:
            requested = await self._store.request_kill(batch.id)
            if requested is None:
                # It left the active states between the read and the kill: report what it is now.
                current = await self._store.get_batch(batch.id)
                assert current is not None
                if current.state in TERMINAL_STATES:
                    return False, f"batch {batch.id} is already {current.state}", current
                return await self.kill(principal, batch_id)
            await self._logs.note(batch.id, f"kill requested by {principal.name}")
            log.info("batch.kill_requested", batch_id=str(batch.id), user=principal.name)
            # Kyuubi clients expect the batch to be gone when DELETE returns; give it a moment.
            final = await self._wait_terminal(batch.id, changed, KILL_WAIT_SECONDS)
        return True, f"kill requested for batch {batch.id}", final

    async def _wait_terminal(self, batch_id: uuid.UUID, changed: asyncio.Event, seconds: float) -> BatchRecord:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            changed.clear()
            batch = await self._store.get_batch(batch_id)
            assert batch is not None
            remaining = deadline - loop.time()
            if batch.state in TERMINAL_STATES or remaining <= 0:
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # --- queries -------------------------------------------------------------------------

    async def get(self, principal: Principal, batch_id: str) -> BatchRecord:
        return await self.readable(principal, batch_id)

    async def get_by_seq(self, principal: Principal, seq: int) -> BatchRecord:
        """A batch by its sequence number, the Livy API's id (Livy's wording when it is unknown)."""
        batch = await self._store.get_batch_by_seq(seq) if 0 <= seq < 2**63 else None
        if batch is None:
            raise NotFound(f"Session '{seq}' not found.")
        self._policy.check_read(principal, batch)
        return batch

    async def log_tails(self, batches: list[BatchRecord], lines: int) -> dict[uuid.UUID, list[str]]:
        """The last lines of the logs of batches the caller already read (through get or list)."""
        return await self._logs.tails([b.id for b in batches], lines)

    async def list_batches(self, principal: Principal, flt: ListFilter) -> tuple[int, list[BatchRecord]]:
        return await self._store.list_batches(await self.scoped(principal, flt))

    async def count(self, principal: Principal, flt: ListFilter) -> int:
        """How many batches match the list filters (Kyuubi's admin batch count): admins only."""
        self._policy.check_admin(principal, "count batches")
        total, _ = await self._store.list_batches(dataclasses.replace(flt, offset=0, size=0))
        return total

    async def scoped(self, principal: Principal, flt: ListFilter) -> ListFilter:
        """A list filter limited to what the caller may see: own batches, and those of their projects."""
        if principal.is_admin:
            return flt
        shared: tuple[str, ...] = ()
        if self._projects is not None:
            shared = await self._projects.readable_projects(principal)
        if flt.project and flt.project not in shared:
            return dataclasses.replace(flt, user=self._policy.list_user(principal, flt.user))
        if flt.user and flt.user != principal.name and not flt.project:
            self._policy.list_user(principal, flt.user)  # another user's batches: only within a project
        return dataclasses.replace(flt, reader=principal.name, reader_projects=shared)

    async def read_log(self, principal: Principal, batch_id: str, start: int, size: int) -> list[str]:
        batch = await self.readable(principal, batch_id)
        return await self._logs.read(batch.id, start, size)

    async def follow_log(
        self, principal: Principal, batch_id: str, start: int
    ) -> tuple[BatchRecord, AsyncIterator[tuple[int, list[str]]]]:
        batch = await self.readable(principal, batch_id)
        return batch, self._logs.follow(batch.id, start)

    async def current(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._store.get_batch(batch_id)


def parse_batch_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest(f"batchId: {value!r} is not a valid batch id (a UUID)") from None
