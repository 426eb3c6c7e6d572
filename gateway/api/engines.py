"""GET /api/v1/engines: the engines this gateway has, and which batch types it accepts. The web page, the
CLI and the client learn the batch types here; none of them holds a list of its own."""

from __future__ import annotations

from aiohttp import web

from gateway.api.responses import model_response
from gateway.contract.engines import EngineList, EngineOut
from gateway.keys import ENGINES

routes = web.RouteTableDef()


@routes.get("/api/v1/engines")
async def engines(request: web.Request) -> web.Response:
    registry = request.app[ENGINES]
    described = [EngineOut(name=e["name"], batch_types=e["batch_types"], enabled=e["enabled"])
                 for e in registry.describe()]
    accepted = [t for t in registry.batch_types if t in registry.enabled]
    return model_response(EngineList(engines=described, batch_types=accepted))
