"""The OpenAPI document matches the routes the app really serves, and its docs page works offline."""

from __future__ import annotations

import re

from gateway.api.openapi import build_spec
from gateway.app import create_app
from gateway.settings import Settings
from tests.helpers import Api


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_spec_and_routes_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(data_dir=tmp_path))
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        handler_name = getattr(route.handler, "__name__", "")
        if route.method in ("HEAD", "OPTIONS") or path is None or handler_name.endswith("_not_allowed"):
            continue
        if path == "/ui" or path.startswith("/ui/"):
            continue  # the web page's static files (gateway/api/ui.py), not part of the API
        served.add((route.method.lower(), _normalize(path)))
    documented = {(method, _normalize(path)) for path, ops in build_spec(Settings().batch_types)["paths"].items() for method in ops}
    assert served == documented, f"undocumented: {served - documented}; not served: {documented - served}"


async def test_spec_is_served_and_models_are_components(api: Api) -> None:
    async with api.client.get("/openapi.json") as resp:
        assert resp.status == 200
        spec = await resp.json()
    assert spec["openapi"].startswith("3.")
    schemas = spec["components"]["schemas"]
    assert {"Batch", "BatchRequest", "BatchList", "LocalLog", "CloseBatchResponse", "ErrorBody"} <= set(schemas)
    assert "batchType" in schemas["Batch"]["properties"] and "appId" in schemas["Batch"]["properties"]
    async with api.client.get("/docs") as resp:
        html = await resp.text()
        assert resp.status == 200 and "/openapi.json" in html and "https://" not in html, "no CDN"
