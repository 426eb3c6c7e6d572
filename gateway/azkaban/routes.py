"""Azkaban's paths and its dialect: errors as `{"error": ...}`, and its own sessions (gateway/azkaban/sessions.py)
instead of the middleware's authentication."""

from __future__ import annotations

from aiohttp import web

from gateway.api.middleware import Dialect
from gateway.azkaban.executor import executor
from gateway.azkaban.manager import manager
from gateway.azkaban.models import error
from gateway.azkaban.schedule import schedule
from gateway.azkaban.sessions import login

PATHS = ("/", "/manager", "/executor", "/schedule")

DIALECT = Dialect(name="azkaban", owns=lambda path: path in PATHS, error=error, authenticated=False)


def azkaban_routes() -> list[web.RouteDef]:
    routes = []
    for path, handler in (("/", login), ("/manager", manager), ("/executor", executor), ("/schedule", schedule)):
        routes += [web.get(path, handler), web.post(path, handler)]
    return routes
