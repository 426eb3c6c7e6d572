"""Middlewares: errors become {"message"} bodies; /api requests are authenticated."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.auth import Principal
from gateway.errors import GatewayError, Unauthorized, Unavailable
from gateway.keys import AUTH

log = structlog.get_logger("gateway.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"message": message}), content_type="application/json",
        headers=headers,
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        headers: dict[str, str] = {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Basic realm="batchgate", charset="UTF-8"'
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.retry_after)
        return error_response(exc.status, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 413:
            message = "request body too large"
        return error_response(exc.status, message, {k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception:
        log.exception("api.unhandled_error", method=request.method, path=request.path)
        return error_response(500, "internal error; see the gateway log")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        request[PRINCIPAL] = await request.app[AUTH].authenticate(request.headers.get("Authorization"))
    return await handler(request)


def principal(request: web.Request) -> Principal:
    value: Principal = request[PRINCIPAL]
    return value
