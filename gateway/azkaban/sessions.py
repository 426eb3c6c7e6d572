"""Azkaban's login and sessions, on batchgate's sessions (gateway/security/sessions.py).

`POST /?action=login` with `username` and `password` checks them as HTTP Basic would (the same users file,
the same open mode) and answers a batchgate session token as Azkaban's `session.id`. Every other call
names its session as the `session.id` parameter or the `azkaban.browser.session.id` cookie; an unknown,
expired or revoked one is answered `{"error" : "session"}` with status 200, which is how the `azkaban`
client knows to log in again. This is the dialect's one authorization path: `dispatch` resolves the
session and sets the request's principal before any action runs.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from gateway.api.middleware import PRINCIPAL
from gateway.azkaban.models import answer, error, read_params, session_error
from gateway.errors import Unauthorized
from gateway.keys import AUTH, SESSIONS
from gateway.security.auth import Principal
from gateway.security.sessions import SessionUnauthorized

log = structlog.get_logger("gateway.azkaban")

COOKIE = "azkaban.browser.session.id"
PARAM = "session.id"
INCORRECT = "Incorrect Login. Username/Password not found."
Action = Callable[[web.Request, Principal, dict[str, str]], Awaitable[web.StreamResponse]]


async def login(request: web.Request) -> web.Response:
    """`/` with action=login (Azkaban's web server answers other actions with its pages)."""
    values = await read_params(request)
    action = values.get("action")
    if action != "login":
        return error(400, f"Unknown action {action!r}: this gateway's / answers only action=login" if action
                     else "Missing parameter action: this gateway's / answers only action=login")
    user, password = values.get("username", ""), values.get("password", "")
    if not user:
        return error(400, "Missing parameter username")
    if any(ord(c) < 32 for c in user) or ":" in user:
        return answer({"error": INCORRECT})
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        who = (await request.app[AUTH].authenticate(header)).at(request.remote)
    except Unauthorized:
        log.info("azkaban.login_failed", user=user[:64])
        return answer({"error": INCORRECT})
    session = await request.app[SESSIONS].login(who, None)
    log.info("azkaban.login", user=who.name)
    return answer({"status": "success", PARAM: session.token})


async def principal_of(request: web.Request, values: Mapping[str, str]) -> Principal | None:
    """The session's user, from the parameter or else the cookie; None if there is no live session."""
    token = values.get(PARAM) or request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        who, _ = await request.app[SESSIONS].resolve(token)
    except SessionUnauthorized:
        return None
    return who.at(request.remote)


async def dispatch(request: web.Request, actions: Mapping[str, Action], *,
                   default: Action | None = None) -> web.StreamResponse:
    """Read the parameters, resolve the session, run the action the `ajax` (or `action`) parameter names."""
    values = await read_params(request)
    who = await principal_of(request, values)
    if who is None:
        return session_error()
    request[PRINCIPAL] = who
    name = values.get("ajax") or values.get("action")
    handler = actions.get(name) if name else default
    if handler is None:
        if name:
            return error(400, f"Unknown action {name!r}")
        return answer({})  # Azkaban answers a bare session check with an empty 200
    return await handler(request, who, values)
