"""BatchService: what the API may do with batches, and who may do it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from engines.base import InvalidRequest, LaunchSpec
from engines.registry import EngineRegistry
from gateway.batches.logs import LogStore
from gateway.batches.uploads import (
    INFO_EXTRA_RESOURCES,
    INFO_RESOURCE_FILE,
    Upload,
    match_extra_resources,
    stored_files,
)
from gateway.contract.batches import CONF_BATCH_ID, CONF_PROXY_USERS, TERMINAL_STATES, BatchRequest
from gateway.errors import BadRequest, Forbidden, NotFound, TooManyRequests
from gateway.instance.listener import STATE, Hub
from gateway.instance.metrics import Metrics
from gateway.projects.service import ARTIFACT_PREFIX, ProjectService
from gateway.security.auth import Principal
from gateway.security.policy import Policy
from gateway.store import BatchRecord, ListFilter, Store
from gateway.store.records import AuditRecord, mask_conf
from gateway.store.store import AuditFilter

log = structlog.get_logger("gateway.service")

KILL_WAIT_SECONDS = 3.0
UPLOAD_CHUNK = 1 << 20


class BatchService:
    def __init__(
        self, store: Store, logs: LogStore, engines: EngineRegistry, hub: Hub, policy: Policy,
        *, submit_rate_per_minute: int = 0, metrics: Metrics | None = None,
        roles: Callable[[Principal, BatchRecord], Awaitable[frozenset[str]]] | None = None,
        projects: ProjectService | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._logs = logs
        self._engines = engines
        self._hub = hub
        self._policy = policy
        self._rate = submit_rate_per_minute
        self._roles = roles
        self._projects = projects
        self._on_queued = on_queued
        self._metrics = metrics or Metrics()
        # SLAs from a batch's conf (batchgate.sla.*): validated and registered before the insert (the app sets it).
        self.sla_hook: Callable[[uuid.UUID, str, dict[str, str]], Awaitable[None]] | None = None

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

    async def _check_rate(self, principal: Principal) -> None:
        if not self._rate:
            return
        now = int(time.time() * 1000)
        count, oldest = await self._store.recent_submits(principal.name, now - 60_000)
        if count >= self._rate:
            retry = max(1, int(((oldest or now) + 60_000 - now) / 1000) + 1)
            raise TooManyRequests(
                f"rate limit: {principal.name} submitted {count} batches in the last minute "
                f"(limit {self._rate})", retry_after=retry,
            )

    # --- commands ------------------------------------------------------------------------

    async def submit(
        self, principal: Principal, request: BatchRequest, upload: Upload | None = None,
        extras: dict[str, Upload] | None = None,
    ) -> tuple[BatchRecord, bool]:
        """Queue a batch. Returns (batch, duplicated). `extras` are the extra resource files of a multipart
        submit, by stored name; `request.extraResourcesMap` says which conf key gets which."""
        engine = self._engines.get(request.batch_type)
        if engine is None:
            raise BadRequest(f"batchType: {request.batch_type} is not enabled on this gateway")
        resource = upload.name if upload else request.resource
        if not resource:
            raise BadRequest("resource: required (or upload a resourceFile)")
        self._policy.check_request(request)
        project = request.project_name
        info: dict[str, Any] = {INFO_RESOURCE_FILE: upload.name} if upload else {}
        extras = extras or {}
        extra_resources = match_extra_resources(request.extra_resources, extras, upload.name if upload else None)
        if extra_resources:
            info[INFO_EXTRA_RESOURCES] = extra_resources
        if project and self._projects is not None:
            await self._projects.check_put(principal, project, "batch")
        elif project:
            raise BadRequest("project: projects are not available on this gateway")
        is_artifact = upload is None and resource.startswith(ARTIFACT_PREFIX)
        if is_artifact:
            if self._projects is None:
                raise BadRequest("resource: artifact resources need projects")
            path, version = await self._projects.resolve(project, resource)
            info["artifact"] = {"path": path, "version": version}
        elif upload is None:
            self._policy.check_resource(resource)
        user = self._policy.effective_user(principal, request.proxy_user, f"conf.{CONF_PROXY_USERS[0]}")
        await self._check_rate(principal)
        batch_id = uuid.UUID(request.conf[CONF_BATCH_ID]) if CONF_BATCH_ID in request.conf else uuid.uuid4()
        spec = LaunchSpec(
            batch_id=str(batch_id), batch_type=request.batch_type, user=user, real_user=principal.name,
            name=request.name, resource=str(upload.path) if upload else resource,
            class_name=request.class_name, conf=request.conf, args=request.args, workdir=Path("."),
        )
        try:
            if not is_artifact:  # an artifact's file exists only once it is unpacked at launch
                engine.validate(spec)
        except InvalidRequest as exc:
            raise BadRequest(str(exc)) from None
        fields: dict[str, Any] = dict(
            batch_id=batch_id, batch_type=request.batch_type, user=user, real_user=principal.name,
            name=request.name, resource=resource, class_name=request.class_name, conf=request.conf,
            args=request.args, priority=request.priority, project=project,
            batch_info=info,
            source_ip=principal.source_ip,
        )
        if self.sla_hook is not None:
            await self.sla_hook(batch_id, user, request.conf)
        files = [upload] if upload else []
        files += [extras[name] for name in stored_files({INFO_EXTRA_RESOURCES: extra_resources})]
        if files:
            batch, created = await self._store.insert_batch_with_files(
                [(f.name, _file_chunks(f.path)) for f in files], **fields
            )
        else:
            batch, created = await self._store.insert_batch(**fields)
        if not created and not self._policy.may_read(principal, batch):
            raise Forbidden(f"{CONF_BATCH_ID}: batch {batch_id} belongs to another user")
        if created:
            self._metrics.submitted(request.batch_type)
            self.queued()
        log.info(
            "batch.submitted" if created else "batch.duplicate_submit",
            batch_id=str(batch.id), user=user, real_user=principal.name, engine=request.batch_type,
            conf=mask_conf(request.conf),
        )
        return batch, not created

    def queued(self) -> None:
        """Batches were queued: wake the claimers (here at once, elsewhere by a coalesced NOTIFY)."""
        if self._on_queued is not None:
            self._on_queued()

    async def kill(self, principal: Principal, batch_id: str) -> tuple[bool, str, BatchRecord]:
        batch = await self.modifiable(principal, batch_id)
        if batch.state in TERMINAL_STATES:
            return False, f"batch {batch.id} is already {batch.state}", batch
        await self._store.audit(principal.name, "kill", str(batch.id), source_ip=principal.source_ip,
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
        return await self._store.log_tails([b.id for b in batches], lines)

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

    async def audit_log(self, principal: Principal, flt: AuditFilter) -> tuple[int, list[AuditRecord]]:
        self._policy.check_admin(principal, "read the audit log")
        return await self._store.list_audit(flt)

    async def current(self, batch_id: uuid.UUID) -> BatchRecord | None:
        return await self._store.get_batch(batch_id)


def parse_batch_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest(f"batchId: {value!r} is not a valid batch id (a UUID)") from None


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:  # noqa: ASYNC230 - reads go through a thread below
        while True:
            chunk = await asyncio.to_thread(f.read, UPLOAD_CHUNK)
            if not chunk:
                return
            yield chunk
