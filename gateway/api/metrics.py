"""GET /metrics (Prometheus text format, no authentication) and the middleware that times requests."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.api.middleware import ENDED_AS, Handler
from gateway.instance.metrics import CONTENT_TYPE, Metrics

routes = web.RouteTableDef()

METRICS = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    """The route's template (/api/v1/batches/{batch_id}), never the raw path: labels stay few."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app.get(METRICS)
    if metrics is None:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = request.get(ENDED_AS, response.status)  # a stream that did not end normally
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        metrics.request(_route(request), request.method, status, time.perf_counter() - started)


@routes.get("/metrics")
async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    await metrics.refresh()
    response = web.Response(body=metrics.exposition())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
