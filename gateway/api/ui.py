"""/ui: the web page. Static files shipped inside the package (gateway/ui/), no build step, no CDN.

Every path under /ui/ that is not an asset answers the page itself, which routes in the browser. The
page is a client of the JSON API with the session cookie; it needs no authentication to be fetched.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|png)$")
_TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml", "png": "image/png"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@cache
def _assets() -> frozenset[str]:
    return frozenset(p.name for p in UI_DIR.iterdir() if p.is_file() and _ASSET.match(p.name))


@routes.get("/ui")
async def ui_root(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


@routes.get("/ui/assets/{name}")
async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = UI_DIR / name
    if not _ASSET.match(name) or name not in _assets():
        raise web.HTTPNotFound(text=f"no asset {name!r}")
    headers = {**HEADERS, "Content-Type": _TYPES[name.rsplit(".", 1)[1]], "Cache-Control": "no-cache"}
    return web.FileResponse(path, headers=headers)


@cache
def _index() -> bytes:
    return (UI_DIR / "index.html").read_bytes()


@routes.get("/ui/{path:.*}")
async def page(_request: web.Request) -> web.Response:
    return web.Response(body=_index(), content_type="text/html", charset="utf-8",
                        headers={**HEADERS, "Cache-Control": "no-cache"})
