"""Admission: the one step every new batch passes, whatever creates it.

Kyuubi JSON and multipart submits, Livy, the nodes of a job run (after variable substitution, whether the
run was triggered through the API or by a schedule tick), restarts and bulk restarts, artifact resources,
and every dialect added later create batches only through this module. For the principal and the request
as it will run, it decides, in this order:

1. that the engine is enabled, and that there is a resource;
2. the request's limits and the conf rules (no whitespace or control characters in keys, the deny-list);
3. the effective user, by the impersonation rules (a proxy user in the conf, or the user a restart or a
   run keeps, is honoured only when the principal may act as that user);
4. the project (the principal may put batches into it), and an artifact resource (resolved and pinned);
5. the resource policy (allowed dirs and schemes) and the engine's own validation, which for LOCAL checks
   the allow-list against the program that actually executes: the resource, or the interpreter of a .py
   or .sh resource, whether it is a path, an uploaded file or an artifact;
6. the rate limit, which counts what a principal starts directly (submits, triggers, restarts), never the
   nodes of a run already admitted;
7. the SLA terms in the conf (batchgate.sla.*).

A schedule's runs have a principal of their own (`scheduled_principal`): the schedule's owner when the owner
or an admin saved the job version that runs, else that version's author, if the author may execute the job.

A refusal is a GatewayError with the same status and message on every route. Routes that answer at once
(submits, restarts, triggers) answer with it; a node refused when its run reaches it is written as an
ERROR batch whose diagnostic is that message, and nothing is launched. The batch, its audit row and its
SLA rows are written in one transaction.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from engines.base import InvalidRequest, LaunchSpec
from engines.registry import EngineRegistry
from gateway.batches.logs import gateway_line
from gateway.batches.slaterms import batch_slas
from gateway.batches.uploads import (
    INFO_EXTRA_RESOURCES,
    INFO_RESOURCE_FILE,
    UPLOAD_DIR,
    Upload,
    conf_with_extra_resources,
    match_extra_resources,
    stored_files,
)
from gateway.contract.batches import CONF_BATCH_ID, CONF_PROXY_USERS, BatchRequest, validation_message
from gateway.errors import BadRequest, Forbidden, GatewayError, TooManyRequests
from gateway.instance.metrics import Metrics
from gateway.instance.spool import read_chunks
from gateway.projects.service import ARTIFACT_PREFIX, ArtifactLookup, ProjectService
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.security.outbound import OutboundRule
from gateway.security.policy import Policy
from gateway.store import BatchRecord, BatchRepository
from gateway.store.records import NewBatch, mask_conf, mask_text

log = structlog.get_logger("gateway.admission")

PROXY_FIELD = f"conf.{CONF_PROXY_USERS[0]}"
# Where an artifact resource lies in the batch's working dir once unpacked (ProjectService.materialize).
ARTIFACT_DIR = "artifact"


class Route(StrEnum):
    """Who creates a batch. Only what a principal starts directly counts toward the rate limit."""

    SUBMIT = "submit"  # a client's submit: Kyuubi JSON or multipart, Livy, any dialect
    RESTART = "restart"  # a restart, single or bulk
    NODE = "node"  # a node of a job run, triggered through the API or by a schedule tick


COUNTED = frozenset({Route.SUBMIT, Route.RESTART})


class Admission:
    def __init__(
        self, store: BatchRepository, policy: Policy, engines: EngineRegistry, audit: AuditService, *,
        projects: ProjectService | None, webhooks: OutboundRule, principal: Callable[[str], Principal],
        rate_per_minute: int = 0,
        metrics: Metrics | None = None, on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._audit = audit
        self._store = store
        self._principal = principal
        self._policy = policy
        self._engines = engines
        self._projects = projects
        self._webhooks = webhooks
        self._rate = rate_per_minute
        self._metrics = metrics or Metrics()
        self._on_queued = on_queued

    @property
    def batch_types(self) -> tuple[str, ...]:
        """Every batch type an installed engine offers (a request naming another is refused as unknown)."""
        return self._engines.batch_types

    # --- the decision --------------------------------------------------------------------

    async def decide(
        self, who: Principal, request: BatchRequest, *, route: Route, upload: str | None = None,
        extras: dict[str, Upload] | None = None, extra_resources: dict[str, list[str]] | None = None,
        user: str | None = None, project: str | None = None, check_project: bool = True,
        artifact_version: int | None = None, artifacts: ArtifactLookup | None = None,
        info: dict[str, Any] | None = None, batch_id: uuid.UUID | None = None,
    ) -> NewBatch:
        """The batch as it will be written, or a GatewayError saying why not.

        `upload`: the name of a file stored with the batch (a multipart upload, or a restart's copy);
        `extras`: the extra resource files of a multipart submit, by stored name; `extra_resources`: a
        restart's, {conf key: stored names}, as its original stored them;
        `user`: the user the batch is to run as when it is not the request's proxy user (a restart keeps
        its original's, a run's node its run's); `project`: a project set by the creator (a run's job);
        `check_project`: whether the principal must be allowed to put batches into it (a run's nodes were
        authorized by the job's roles instead); `artifact_version`: the artifact version to pin (a restart
        keeps its original's); `artifacts`: how to read an artifact row (inside a run's transaction)."""
        engine = self._engines.get(request.batch_type)
        if engine is None:
            raise BadRequest(f"batchType: {request.batch_type} is not enabled on this gateway")
        resource = upload or request.resource
        if not resource:
            raise BadRequest("resource: required (or upload a resourceFile)")
        self._policy.check_request(request)
        effective = self._policy.effective_user(who, request.proxy_user or user, PROXY_FIELD)
        project = project if project is not None else request.project_name
        batch_info: dict[str, Any] = dict(info or {})
        if project and self._projects is None:
            raise BadRequest("project: projects are not available on this gateway")
        if project and check_project and self._projects is not None:
            await self._projects.check_put(who, project, "batch")
        if extra_resources is None:
            extra_resources = match_extra_resources(request.extra_resources, extras or {}, upload)
        for key in extra_resources:  # the files' paths are written into these keys at launch
            self._policy.check_conf_key(key)
        if extra_resources:
            batch_info[INFO_EXTRA_RESOURCES] = extra_resources
        as_run, ready = resource, True
        if upload is not None:
            batch_info[INFO_RESOURCE_FILE] = upload
            as_run, ready = f"{UPLOAD_DIR}/{upload}", False
        else:
            self._policy.check_resource(resource)
            if resource.startswith(ARTIFACT_PREFIX):
                if self._projects is None:
                    raise BadRequest("resource: artifact resources need projects")
                path, version = await self._projects.resolve(project, resource, version=artifact_version,
                                                             lookup=artifacts)
                batch_info["artifact"] = {"path": path, "version": version}
                as_run, ready = f"{ARTIFACT_DIR}/{path}", False
        batch_id = batch_id or (uuid.UUID(request.conf[CONF_BATCH_ID]) if CONF_BATCH_ID in request.conf
                                else uuid.uuid4())
        spec = LaunchSpec(
            batch_id=str(batch_id), batch_type=request.batch_type, user=effective, real_user=who.name,
            name=request.name, resource=as_run, class_name=request.class_name,
            conf=conf_with_extra_resources(request.conf, batch_info, Path(".")), args=request.args,
            workdir=Path("."), resource_ready=ready,
        )
        try:
            engine.validate(spec)
        except InvalidRequest as exc:
            # The engine saw the file where it will lie at launch; the refusal names it as the client did.
            raise BadRequest(str(exc).replace(repr(as_run), repr(resource))) from None
        if route in COUNTED:
            await self.check_rate(who)
        slas = batch_slas(batch_id, request.conf, self._webhooks)
        return NewBatch(
            id=batch_id, batch_type=request.batch_type, user=effective, real_user=who.name, name=request.name,
            resource=resource, class_name=request.class_name, conf=request.conf, args=request.args,
            priority=request.priority, project=project, info=batch_info, source_ip=who.source_ip, slas=slas,
        )

    async def check_rate(self, who: Principal) -> None:
        """What a principal starts directly (submits, restarts, API triggers), per minute, on all instances."""
        if not self._rate:
            return
        now = int(time.time() * 1000)
        count, oldest = await self._audit.recent_starts(who.name, now - 60_000)
        if count >= self._rate:
            retry = max(1, int(((oldest or now) + 60_000 - now) / 1000) + 1)
            raise TooManyRequests(
                f"rate limit: {who.name} started {count} batches or runs in the last minute "
                f"(limit {self._rate})", retry_after=retry,
            )

    async def check_node(
        self, who: Principal, node_id: str, request: BatchRequest, *, project: str | None,
        user: str | None = None,
    ) -> None:
        """Refuse a job's node early (at save, schedule and trigger), with the node named."""
        try:
            await self.decide(who, request, route=Route.NODE, project=project or "", check_project=False,
                              user=user, batch_id=uuid.UUID(int=0))
        except GatewayError as exc:
            raise type(exc)(f"nodes[{node_id}].request.{exc.message}") from None

    async def scheduled_principal(
        self, owner: Principal, author: str, may_execute: Callable[[Principal], Awaitable[bool]], what: str
    ) -> Principal:
        """Who a schedule's run of a job version runs as: no one runs code under another user's name.

        The schedule's owner, when the owner or an admin saved the version; otherwise the version's author,
        and only if the author may execute the job. `what` names the version in the refusal. (The schedule's
        variables are among those the version declares: its author chose what a scheduler may set.)"""
        if author == owner.name:
            return owner
        saver = self._principal(author)
        if saver.is_admin:
            return owner
        if not await may_execute(saver):
            raise Forbidden(f"{what} was saved by {author}, who may not execute it; a schedule of {owner.name} "
                            f"runs it neither as {owner.name} nor as {author}")
        return saver

    # --- the routes ----------------------------------------------------------------------

    async def submit(
        self, who: Principal, request: BatchRequest, upload: Upload | None = None,
        extras: dict[str, Upload] | None = None, *, route: Route = Route.SUBMIT,
    ) -> tuple[BatchRecord, bool]:
        """A client's submit, in any dialect, with its uploaded files. Returns (batch, created)."""
        new = await self.decide(who, request, route=route, upload=upload.name if upload else None, extras=extras)
        uploads = {**(extras or {}), **({upload.name: upload} if upload else {})}
        files = [(name, read_chunks(uploads[name].path)) for name in stored_files(new.info)]
        batch, created = await self._store.insert_new_batch(new, files)
        if not created and not self._policy.may_read(who, batch):
            raise Forbidden(f"{CONF_BATCH_ID}: batch {new.id} belongs to another user")
        if created:
            self._admitted(new, route)
        else:
            log.info("batch.duplicate_submit", batch_id=str(batch.id), user=new.user, real_user=who.name)
        return batch, created

    async def restart(self, who: Principal, batch: BatchRecord, info: dict[str, Any]) -> BatchRecord:
        """A new attempt of a finished batch: its request and user, admitted again as `who` starts it now,
        so that a rule tightened since the first submit applies."""
        conf = {k: v for k, v in batch.conf.items() if k != CONF_BATCH_ID}
        try:
            request = BatchRequest.model_validate({
                "batchType": batch.batch_type, "resource": batch.resource, "className": batch.class_name,
                "name": batch.name, "conf": conf, "args": batch.args,
            })
        except ValidationError as exc:
            raise BadRequest(validation_message(exc)) from None
        upload = batch.batch_info.get(INFO_RESOURCE_FILE)
        pinned = batch.batch_info.get("artifact", {}).get("version") if upload is None else None
        new = await self.decide(
            who, request, route=Route.RESTART, upload=str(upload) if upload else None,
            extra_resources=dict(batch.batch_info.get(INFO_EXTRA_RESOURCES) or {}), user=batch.batch_user,
            project=batch.project or "", artifact_version=int(pinned) if pinned else None, info=info,
        )
        # The files are copied with the row, in its transaction.
        new = dataclasses.replace(new, copy_files_from=batch.id if stored_files(batch.batch_info) else None)
        record, _ = await self._store.insert_new_batch(new)
        # The caller rings the queue once its note is written: a claimer woken while the note's update
        # held the row would skip it.
        self._admitted(new, Route.RESTART, ring=False)
        return record

    async def node(
        self, who: Principal, node_id: str, raw: dict[str, Any], request: BatchRequest | GatewayError, *,
        user: str, project: str | None, info: dict[str, Any], name: str, artifacts: ArtifactLookup,
    ) -> NewBatch:
        """A node of a run, as its run reaches it: admitted, or written as an ERROR batch with the refusal
        as its diagnostic. `request` is the node's request after substitution, or why it has none."""
        batch_id = uuid.uuid4()
        try:
            if isinstance(request, GatewayError):
                raise request
            new = await self.decide(who, request, route=Route.NODE, user=user, project=project or "",
                                    check_project=False, artifacts=artifacts, info=info, batch_id=batch_id)
            return dataclasses.replace(new, name=request.name or name)
        except GatewayError as exc:
            refusal = exc.message
        log.info("batch.refused", batch_id=str(batch_id), node=node_id, user=who.name, reason=refusal)
        valid = request if isinstance(request, BatchRequest) else None
        return NewBatch(
            id=batch_id, batch_type=valid.batch_type if valid else _raw_type(raw), user=user, real_user=who.name,
            name=(valid.name if valid else None) or name, resource=(valid.resource if valid else None) or "",
            class_name=valid.class_name if valid else None, conf=valid.conf if valid else {},
            args=valid.args if valid else [], priority=valid.priority if valid else 0, project=project,
            info=info, refusal=refusal, note=gateway_line(mask_text(f"not launched: {refusal}")),
        )

    def admitted_nodes(self, batches: list[NewBatch]) -> None:
        """Nodes written by their run's transaction: count them (the run's commit rings the queue)."""
        for new in batches:
            if new.refusal is None:
                self._metrics.submitted(new.batch_type)

    def queued(self) -> None:
        """Batches were queued: wake the claimers (here at once, elsewhere by a coalesced NOTIFY)."""
        if self._on_queued is not None:
            self._on_queued()

    def _admitted(self, new: NewBatch, route: Route, *, ring: bool = True) -> None:
        self._metrics.submitted(new.batch_type)
        if ring:
            self.queued()
        log.info("batch.submitted", batch_id=str(new.id), user=new.user, real_user=new.real_user,
                 engine=new.batch_type, route=route.value, conf=mask_conf(new.conf))


def _raw_type(raw: dict[str, Any]) -> str:
    value = raw.get("batchType")
    return str(value).strip().upper()[:32] if isinstance(value, str) and value.strip() else "UNKNOWN"


