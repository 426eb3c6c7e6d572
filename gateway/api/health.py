"""Liveness and readiness, with no authentication and no internals."""

from __future__ import annotations

from aiohttp import web

from gateway.contract.batches import ApiModel
from gateway.instance.readiness import Readiness

routes = web.RouteTableDef()

READINESS = web.AppKey("readiness", Readiness)


class Ready(ApiModel):
    """/readyz: "ready", or "unavailable" with the conditions that failed."""

    status: str
    checks: dict[str, str]


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    readiness = request.app.get(READINESS)
    checks = await readiness.check() if readiness is not None else {"database": False, "schema": False, "lease": False}
    ok = all(checks.values())
    body = Ready(status="ready" if ok else "unavailable",
                 checks={name: "ok" if passed else "failing" for name, passed in checks.items()})
    return web.json_response(body.model_dump(mode="json"), status=200 if ok else 503,
                             headers=None if ok else {"Retry-After": "2"})
