"""/api/v1/sessions: log in with Basic credentials for a token, read or revoke the current session."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import parse_body
from gateway.api.middleware import credentials, principal
from gateway.contract.sessions import SessionRequest, SessionRevoked
from gateway.errors import BadRequest
from gateway.keys import SESSIONS
from gateway.security.sessions import COOKIE, SessionUnauthorized

routes = web.RouteTableDef()

NO_STORE = {"Cache-Control": "no-store"}


@routes.post("/api/v1/sessions")
async def login(request: web.Request) -> web.Response:
    """Basic credentials in, a session token out (also set as the web page's cookie)."""
    if credentials(request).via != "basic":
        raise SessionUnauthorized("log in with HTTP Basic credentials (user and password)")
    body = await parse_body(request, SessionRequest, optional=True)
    session = await request.app[SESSIONS].login(principal(request), body.expires_in)
    response = web.json_response(session.model_dump(mode="json", by_alias=True), headers=NO_STORE)
    response.set_cookie(COOKIE, session.token, max_age=session.expires_in, path="/",
                        httponly=True, samesite="Strict", secure=request.secure)
    return response


@routes.get("/api/v1/sessions/current")
async def current(request: web.Request) -> web.Response:
    creds = credentials(request)
    if creds.session is None or creds.token is None:
        if creds.via == "open":
            raise SessionUnauthorized("no session: log in with POST /api/v1/sessions")
        raise BadRequest("Authorization: this request was authenticated with Basic credentials, not a session")
    return web.json_response(creds.session.model_dump(mode="json", by_alias=True), headers=NO_STORE)


@routes.delete("/api/v1/sessions/current")
async def logout(request: web.Request) -> web.Response:
    """Revoke the session this request was authenticated with; the user's other sessions go on."""
    creds = credentials(request)
    if creds.session is None or creds.token is None:
        if creds.via == "open":
            raise SessionUnauthorized("no session: nothing to log out of")
        raise BadRequest("Authorization: this request was authenticated with Basic credentials, not a session")
    revoked = await request.app[SESSIONS].revoke(principal(request), creds.token)
    body = SessionRevoked(success=revoked, msg="session revoked" if revoked else "session had ended already")
    response = web.json_response(body.model_dump(mode="json", by_alias=True), headers=NO_STORE)
    response.del_cookie(COOKIE, path="/", samesite="Strict")
    return response
