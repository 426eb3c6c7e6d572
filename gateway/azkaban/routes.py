"""Azkaban's paths and its dialect: errors as `{"error": ...}`, and its own sessions (gateway/azkaban/sessions.py)
instead of the middleware's authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.middleware import Dialect
from gateway.azkaban import executor as executions
from gateway.azkaban import logs
from gateway.azkaban.manager import manager
from gateway.azkaban.models import error
from gateway.azkaban.schedule import schedule
from gateway.azkaban.sessions import Action, dispatch, login
from gateway.security.auth import Principal

PATHS = ("/", "/manager", "/executor", "/schedule")

DIALECT = Dialect(name="azkaban", owns=lambda path: path in PATHS, error=error, authenticated=False)


def _reads_its_own(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Action:
    """logs.py's handlers take the request alone: they read the caller and the parameters the dispatcher
    set on it."""
    async def action(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
        return await handler(request)

    return action


EXECUTOR: dict[str, Action] = {
    **executions.ACTIONS,
    "fetchExecJobLogs": _reads_its_own(logs.fetch_exec_job_logs),
    "fetchExecFlowLogs": _reads_its_own(logs.fetch_exec_flow_logs),
}


async def executor(request: web.Request) -> web.StreamResponse:
    return await dispatch(request, EXECUTOR)


def azkaban_routes() -> list[web.RouteDef]:
    routes = []
    for path, handler in (("/", login), ("/manager", manager), ("/executor", executor), ("/schedule", schedule)):
        routes += [web.get(path, handler), web.post(path, handler)]
    return routes
