"""GET /api/v1/audit: the audit log, for admins."""

from __future__ import annotations

from aiohttp import web

from gateway.api.middleware import principal
from gateway.api.params import MAX_PAGE, int_param, text_param
from gateway.api.responses import model_response
from gateway.keys import AUDIT

routes = web.RouteTableDef()


@routes.get("/api/v1/audit")
async def audit_log(request: web.Request) -> web.Response:
    q = request.query
    return model_response(await request.app[AUDIT].entries(
        principal(request),
        actor=text_param(q, "actor"),
        action=text_param(q, "action"),
        target=text_param(q, "target"),
        since=int_param(q, "since", 0, minimum=0, maximum=2**62),
        until=int_param(q, "until", 0, minimum=0, maximum=2**62),
        offset=int_param(q, "from", 0, minimum=0, maximum=2**31),
        size=int_param(q, "size", 100, minimum=1, maximum=MAX_PAGE),
    ))
