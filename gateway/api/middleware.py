"""Middlewares: errors become {"message"} bodies ({"msg"} under /livy, a dialect's own shape on its
paths); /api, /livy and the authenticated dialects' requests are authenticated."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.contract.sessions import SessionInfo
from gateway.errors import Forbidden, GatewayError, TooManyRequests, Unauthorized, Unavailable
from gateway.keys import AUDIT, AUTH, SESSIONS
from gateway.security.auth import Principal
from gateway.security.sessions import COOKIE, CSRF_HEADER, SessionUnauthorized, check_csrf

log = structlog.get_logger("gateway.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Credentials:
    """How a request was authenticated: basic, open (no credentials, open mode), bearer or cookie."""

    via: str
    session: SessionInfo | None = None
    token: str | None = None


CREDENTIALS = web.RequestKey("credentials", Credentials)
# Set on an app that serves the Livy API at its root (the Livy port): all of it is Livy.
LIVY_ROOT = web.AppKey("livy_root", bool)


@dataclass(frozen=True)
class Dialect:
    """Another system's API spoken on this gateway (gateway/kylin, gateway/datameer, gateway/azkaban): the
    paths it owns, how its errors are written, and whether this middleware authenticates its requests
    (Basic, Bearer or the session cookie, as for /api) or the dialect does it itself."""

    name: str
    owns: Callable[[str], bool]
    error: Callable[[int, str], web.Response]
    authenticated: bool = True


DIALECTS: web.AppKey[tuple[Dialect, ...]] = web.AppKey("dialects")


def dialect_of(request: web.Request) -> Dialect | None:
    for dialect in request.app.get(DIALECTS, ()):
        if dialect.owns(request.path):
            return dialect
    return None


def livy_request(request: web.Request) -> bool:
    path = request.path
    return request.app.get(LIVY_ROOT, False) or path == "/livy" or path.startswith("/livy/")


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, *, key: str = "message"
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({key: message}), content_type="application/json",
        headers=headers,
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a response with a message, written the way the API it belongs to writes them
    ({"message"}, Livy's {"msg"}, a dialect's own shape). Once a stream has started, nothing more can be
    said: a client that left is a 499 at info level, anything else ends the stream."""
    dialect = dialect_of(request)
    key = "msg" if livy_request(request) else "message"  # Livy clients read {"msg": ...}

    def render(status: int, message: str) -> web.Response:
        return dialect.error(status, message) if dialect is not None else error_response(status, message, key=key)

    headers: dict[str, str] = {}
    try:
        return await handler(request)
    except ConnectionResetError:
        if request.transport is None or request.transport.is_closing():
            return _client_left(request)
        raise
    except Exception as exc:
        stream = request.get(STREAM)
        if stream is not None:
            return _stream_broken(request, stream, exc)
        if isinstance(exc, GatewayError):
            if isinstance(exc, Unauthorized):
                headers["WWW-Authenticate"] = _challenge(request, exc)
            if isinstance(exc, Unavailable | TooManyRequests):
                headers["Retry-After"] = str(exc.retry_after)
            if isinstance(exc, Forbidden | Unauthorized):
                await _audit_denied(request, exc)
            response = render(exc.status, exc.message)
        elif isinstance(exc, HttpProcessingError):
            # Malformed framing inside the body (a broken multipart header, say) is the client's fault.
            response = render(400, f"malformed request: {exc.message}")
        elif isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise
            message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
            if exc.status == 413:
                message = "request body too large"
            headers.update({k: v for k, v in exc.headers.items() if k == "Allow"})
            response = render(exc.status, message)
        else:
            log.exception("api.unhandled_error", method=request.method, path=request.path,
                          dialect=dialect.name if dialect is not None else None)
            response = render(500, "internal error; see the gateway log")
    response.headers.update(headers)
    return response


# A response whose headers went out (a server-sent event stream), and the status it ended with when it
# did not end normally: what the `measure` middleware records.
STREAM = web.RequestKey("stream", web.StreamResponse)
ENDED_AS = web.RequestKey("ended_as", int)
CLIENT_LEFT = 499  # nginx's code for "the client closed the request"


async def open_stream(request: web.Request, content_type: str = "text/event-stream") -> web.StreamResponse:
    """Start a streamed answer. Check everything the request says before: after this, an error can only
    end the stream, never become an error response."""
    response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    request[STREAM] = response
    return response


def _client_left(request: web.Request) -> web.StreamResponse:
    """The client closed the connection (it looked away from a stream, or gave up waiting): not an error."""
    request[ENDED_AS] = CLIENT_LEFT
    log.info("api.client_left", method=request.method, path=request.path, status=CLIENT_LEFT)
    return request.get(STREAM) or web.Response(status=CLIENT_LEFT)


def _stream_broken(request: web.Request, stream: web.StreamResponse, exc: Exception) -> web.StreamResponse:
    """A stream that cannot go on (its database went away, a bug): drop the connection, so that the client
    sees a stream cut short (an EventSource reconnects with Last-Event-ID), never a second response
    written inside the first."""
    if isinstance(exc, GatewayError):
        request[ENDED_AS] = exc.status
        log.warning("api.stream_ended", method=request.method, path=request.path, status=exc.status,
                    reason=exc.message)
    else:
        request[ENDED_AS] = 500
        log.exception("api.stream_failed", method=request.method, path=request.path)
    if request.transport is not None:
        request.transport.close()
    return stream


def _challenge(request: web.Request, exc: Unauthorized) -> str:
    """Basic for API clients. The web page (it sends X-Requested-With) and session users get a Bearer
    challenge instead, so that a browser never pops up its own password dialog over the page."""
    if isinstance(exc, SessionUnauthorized) or request.headers.get("X-Requested-With"):
        return 'Bearer realm="batchgate"'
    return 'Basic realm="batchgate", charset="UTF-8"'


async def _audit_denied(request: web.Request, exc: GatewayError) -> None:
    """Denied attempts are audited: who (or which claimed user name), what, from where."""
    who = request.get(PRINCIPAL)
    actor = who.name if who is not None else _claimed_user(request)
    if actor is None:
        return  # an anonymous probe without credentials is not worth a row
    action = "denied" if isinstance(exc, Forbidden) else "auth_failed"
    try:
        await request.app[AUDIT].record(
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
    if request.path.startswith("/api/") or livy_request(request):
        await _authenticate(request)
    else:
        dialect = dialect_of(request)
        if dialect is not None and dialect.authenticated:
            await _authenticate(request)
    return await handler(request)


async def _authenticate(request: web.Request) -> None:
    """Authorization: Basic or Bearer; without an Authorization header, the session cookie. A write
    authenticated by the cookie must carry the session's CSRF token."""
    header = request.headers.get("Authorization")
    token: str | None = None
    via = "basic"
    if header and header[:7].lower() == "bearer ":
        token, via = header[7:].strip(), "bearer"
    elif not header and COOKIE in request.cookies:
        token, via = request.cookies[COOKIE], "cookie"
    if token is None:
        who = await request.app[AUTH].authenticate(header)
        request[PRINCIPAL] = who.at(request.remote)
        request[CREDENTIALS] = Credentials("basic" if header else "open")
        return
    who, session = await request.app[SESSIONS].resolve(token)
    request[PRINCIPAL] = who.at(request.remote)
    request[CREDENTIALS] = Credentials(via, session, token)
    if via == "cookie" and request.method not in SAFE_METHODS:
        check_csrf(token, request.headers.get(CSRF_HEADER))


def credentials(request: web.Request) -> Credentials:
    value: Credentials = request[CREDENTIALS]
    return value


def principal(request: web.Request) -> Principal:
    value: Principal = request[PRINCIPAL]
    return value
