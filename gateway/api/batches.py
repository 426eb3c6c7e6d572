"""Handlers for /api/v1/batches (the Kyuubi v1 batch API) and log follow."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web

from gateway.api.bodies import multipart_framing, parse_body, parse_json, part_chunks
from gateway.api.middleware import open_stream, principal
from gateway.api.params import LAST_EVENT_ID, MAX_PAGE, batch_query, int_param
from gateway.api.responses import model_response
from gateway.batches.uploads import Upload, safe_file_name
from gateway.contract.batches import (
    BATCH_TYPES,
    BatchRequest,
    CloseBatchResponse,
    Count,
    ReassignBatchRequest,
)
from gateway.errors import BadRequest, TooLarge
from gateway.instance.spool import bounded, write_chunks
from gateway.keys import BATCH_VIEWS, BATCHES, SETTINGS, TAKEOVER
from gateway.settings import Settings

routes = web.RouteTableDef()

@dataclass
class _Form:
    """A multipart submit, its files spooled to disk: batchRequest, resourceFile, extra resource files."""

    request: BatchRequest | None = None
    resource_file: Upload | None = None
    extras: dict[str, Upload] = field(default_factory=dict)
    total_bytes: int = 0


async def _spool(part: BodyPartReader, target: Path, label: str, form: _Form, settings: Settings) -> None:
    limits = settings.security

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            form.total_bytes += len(chunk)
            if form.total_bytes > limits.max_upload_total_bytes:
                raise TooLarge(f"multipart: the files are larger than {limits.max_upload_total_bytes} bytes together")
            yield chunk

    too_large = f"{label}: larger than {limits.max_upload_bytes} bytes"
    file_bound = bounded(part_chunks(part), limits.max_upload_bytes, too_large)
    await write_chunks(counted(file_bound), target)  # each file's bound first, then all files' together


async def _read_multipart(request: web.Request, spool: Path) -> _Form:
    """The parts in any order (Kyuubi's Java client sends them in hash order). Extra resource files are
    parts named by their file name; which of them a conf key wants is checked by the service."""
    settings = request.app[SETTINGS]
    try:
        reader = await request.multipart()
    except ValueError as exc:
        raise BadRequest(f"multipart: {exc}") from None
    form = _Form()
    (spool / "extra").mkdir()
    while True:
        with multipart_framing():
            part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise BadRequest("multipart: nested multipart is not supported")
        if part.name == "batchRequest":
            with multipart_framing():
                raw = await part.read(decode=True)
            if len(raw) > settings.security.max_body_bytes:
                raise TooLarge(f"batchRequest: larger than {settings.security.max_body_bytes} bytes")
            form.request = parse_json(raw, BatchRequest, "batchRequest", {BATCH_TYPES: settings.batch_types})
        elif part.name == "resourceFile":
            if form.resource_file is not None:
                raise BadRequest("multipart: more than one resourceFile part")
            name = safe_file_name(part.filename)
            await _spool(part, spool / name, "resourceFile", form, settings)
            form.resource_file = Upload(name=name, path=spool / name)
        else:
            # Kyuubi looks an extra resource up by its part's name, which its client sets to the file name.
            name = safe_file_name(part.name or part.filename, "multipart")
            if name in form.extras:
                raise BadRequest(f"multipart: more than one part for the file {name!r}")
            if len(form.extras) >= settings.security.max_extra_resources:
                raise BadRequest(f"multipart: more than {settings.security.max_extra_resources} extra resource files")
            await _spool(part, spool / "extra" / name, name, form, settings)
            form.extras[name] = Upload(name=name, path=spool / "extra" / name)
    if form.request is None:
        raise BadRequest("batchRequest: missing multipart part")
    return form


@routes.post("/api/v1/batches")
async def submit(request: web.Request) -> web.Response:
    views = request.app[BATCH_VIEWS]
    settings = request.app[SETTINGS]
    who = principal(request)
    if request.content_type.startswith("multipart/"):
        spool_root = settings.instance.data_dir / "spool"
        spool_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=spool_root) as spool:
            form = await _read_multipart(request, Path(spool))
            assert form.request is not None
            batch = await views.submit(who, form.request, form.resource_file, form.extras)
    else:
        if request.content_length is not None and request.content_length > settings.security.max_body_bytes:
            raise TooLarge(f"body: larger than {settings.security.max_body_bytes} bytes")
        raw = await request.read()
        if not raw:
            raise BadRequest("body: empty; send a JSON BatchRequest")
        body = parse_json(raw, BatchRequest, context={BATCH_TYPES: settings.batch_types})
        batch = await views.submit(who, body)
    return model_response(batch)


@routes.get("/api/v1/batches")
async def list_batches(request: web.Request) -> web.Response:
    query = batch_query(request.query, request.app[SETTINGS].batch_types)
    return model_response(await request.app[BATCH_VIEWS].list_batches(principal(request), query))


@routes.get("/api/v1/batches/reassign")
@routes.delete("/api/v1/batches/reassign")
async def reassign_not_allowed(request: web.Request) -> web.Response:
    """Only POST exists here; without these, GET or DELETE would take 'reassign' for a batch id."""
    raise web.HTTPMethodNotAllowed(request.method, ["POST"])


@routes.post("/api/v1/batches/reassign")
async def reassign(request: web.Request) -> web.Response:
    body = await parse_body(request, ReassignBatchRequest)
    answer = await request.app[TAKEOVER].reassign(principal(request), body.kyuubi_instance)
    return model_response(answer)


@routes.get("/api/v1/admin/batch/count")
async def count_batches(request: web.Request) -> web.Response:
    query = batch_query(request.query, request.app[SETTINGS].batch_types)
    total = await request.app[BATCH_VIEWS].count(principal(request), query)
    return model_response(Count(count=total))


@routes.get("/api/v1/batches/{batch_id}")
async def get_batch(request: web.Request) -> web.Response:
    return model_response(await request.app[BATCH_VIEWS].get(principal(request), request.match_info["batch_id"]))


@routes.delete("/api/v1/batches/{batch_id}")
async def kill_batch(request: web.Request) -> web.Response:
    success, message, _ = await request.app[BATCHES].kill(principal(request), request.match_info["batch_id"])
    return model_response(CloseBatchResponse(success=success, msg=message))


@routes.get("/api/v1/batches/{batch_id}/localLog")
async def local_log(request: web.Request) -> web.Response:
    size = int_param(request.query, "size", 100, minimum=0, maximum=MAX_PAGE)
    start = int_param(request.query, "from", 0, minimum=-1, maximum=2**62)
    # Kyuubi's from=-1: the last `size` lines.
    return model_response(await request.app[BATCH_VIEWS].local_log(principal(request), request.match_info["batch_id"],
                                                                   start, size))


@routes.get("/api/v1/batches/{batch_id}/log/follow")
async def follow_log(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `log` events carry one line each (id = line number); `end` closes."""
    start = int_param(request.query, "from", 0, minimum=0, maximum=2**62)
    # A reconnecting EventSource resumes after the last line it got.
    last_id = int_param(request.headers, LAST_EVENT_ID, -1, minimum=0, maximum=2**62)
    if last_id >= 0:
        start = last_id + 1
    views = request.app[BATCH_VIEWS]
    batch_id, lines = await views.follow_log(principal(request), request.match_info["batch_id"], start)
    response = await open_stream(request)
    async for first, chunk in lines:
        if not chunk:
            await response.write(b": keepalive\n\n")
            continue
        out: list[str] = []
        for number, line in enumerate(chunk, first):
            out.append(f"id: {number}\nevent: log\ndata: {line.replace(chr(13), '')}\n\n")
        await response.write("".join(out).encode())  # awaiting the write is the backpressure
    final = await views.current(batch_id)
    if final is not None:
        end = json.dumps(final.model_dump(mode="json", by_alias=True))
        await response.write(f"event: end\ndata: {end}\n\n".encode())
    await response.write_eof()
    return response
