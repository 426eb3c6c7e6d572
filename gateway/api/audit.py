"""GET /api/v1/audit: the audit log, for admins."""

from __future__ import annotations

from aiohttp import web

from gateway.api.middleware import principal
from gateway.api.params import MAX_PAGE, int_param, text_param
from gateway.contract.batches import AuditEntry, AuditList
from gateway.keys import SERVICE
from gateway.store.store import AuditFilter

routes = web.RouteTableDef()


@routes.get("/api/v1/audit")
async def audit_log(request: web.Request) -> web.Response:
    q = request.query
    flt = AuditFilter(
        actor=text_param(q, "actor"),
        action=text_param(q, "action"),
        target=text_param(q, "target"),
        since=int_param(q, "since", 0, minimum=0, maximum=2**62),
        until=int_param(q, "until", 0, minimum=0, maximum=2**62),
        offset=int_param(q, "from", 0, minimum=0, maximum=2**31),
        size=int_param(q, "size", 100, minimum=1, maximum=MAX_PAGE),
    )
    total, rows = await request.app[SERVICE].audit_log(principal(request), flt)
    entries = [
        AuditEntry(id=r.id, time=r.at, actor=r.actor, action=r.action, target=r.target, allowed=r.allowed,
                   source_ip=r.source_ip, detail=r.detail)
        for r in rows
    ]
    body = AuditList(from_=flt.offset, total=total, entries=entries)
    return web.json_response(body.model_dump(mode="json", by_alias=True))
