"""GET /api/v1/batches/events: server-sent batch changes the caller may see (docs/cli.md `top`, the web
page's list). Registered before /api/v1/batches/{batch_id}, which would otherwise take "events" for an id."""

from __future__ import annotations

from aiohttp import web

from gateway.api.middleware import principal
from gateway.api.params import bool_param
from gateway.batches.feed import MAX_IDS
from gateway.contract.batches import BatchSnapshot
from gateway.errors import BadRequest
from gateway.keys import FEED

routes = web.RouteTableDef()


@routes.get("/api/v1/batches/events")
async def batch_events(request: web.Request) -> web.StreamResponse:
    """`snapshot` first ({"batches": [...]}: the named batches, or the caller's queued, paused and running
    ones), then one `batch` event per change; again a `snapshot` if changes may have been missed."""
    ids = [part.strip() for value in request.query.getall("batchId", []) for part in value.split(",") if part.strip()]
    if len(ids) > MAX_IDS:
        raise BadRequest(f"batchId: at most {MAX_IDS} batches, not {len(ids)}")
    snapshot = bool_param(request.query, "snapshot", True)
    feed = request.app[FEED]
    who = principal(request)
    watched = await feed.check(who, ids)  # 400/403/404 before the stream starts
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    async for event in feed.follow(who, watched, snapshot=snapshot):
        if event.kind == "keepalive":
            await response.write(b": keepalive\n\n")
            continue
        data = (BatchSnapshot(batches=event.batches) if event.kind == "snapshot"
                else event.batches[0]).model_dump_json(by_alias=True)
        # Awaiting the write is the backpressure; a client that went away ends the loop with an error.
        await response.write(f"event: {event.kind}\ndata: {data}\n\n".encode())
    return response
