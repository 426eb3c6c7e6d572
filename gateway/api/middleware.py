"""Middlewares: errors become {"message"} bodies; /api requests are authenticated."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.auth import Principal
from gateway.errors import Forbidden, GatewayError, TooManyRequests, Unauthorized, Unavailable
from gateway.keys import AUTH, STORE

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
        if isinstance(exc, Unavailable | TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Forbidden | Unauthorized):
            await _audit_denied(request, exc)
        return error_response(exc.status, exc.message, headers)
    except HttpProcessingError as exc:
        # Malformed framing inside the body (a broken multipart header, say) is the client's fault.
        return error_response(400, f"malformed request: {exc.message}")
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


async def _audit_denied(request: web.Request, exc: GatewayError) -> None:
    """Denied attempts are audited: who (or which claimed user name), what, from where."""
    who = request.get(PRINCIPAL)
    actor = who.name if who is not None else _claimed_user(request)
    if actor is None:
        return  # an anonymous probe without credentials is not worth a row
    action = "denied" if isinstance(exc, Forbidden) else "auth_failed"
    try:
        await request.app[STORE].audit(
            actor, action, request.match_info.get("batch_id") or request.path, allowed=False,
            source_ip=request.remote, detail={"method": request.method, "path": request.path, "reason": exc.message},
        )
    except Unavailable:
        log.warning("audit.unavailable", action=action, actor=actor)


def _claimed_user(request: web.Request) -> str | None:
    import base64
    import binascii

    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in user):
        return None
    return user[:200] or None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        who = await request.app[AUTH].authenticate(request.headers.get("Authorization"))
        request[PRINCIPAL] = who.at(request.remote)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    value: Principal = request[PRINCIPAL]
    return value
