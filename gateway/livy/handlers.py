"""The Livy batch API (docs/livy.md): /livy/batches on the main port, and the same at the root of the
Livy port when one is configured. The handlers parse Livy's parameters; LivyViews (gateway/livy/views.py)
answers through BatchService, as the Kyuubi API's views do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.api.bodies import load_json
from gateway.api.metrics import METRICS, measure
from gateway.api.middleware import LIVY_ROOT, authenticate, errors, principal
from gateway.api.params import int_param, validation_message
from gateway.api.responses import model_response
from gateway.errors import BadRequest, GatewayError, TooLarge
from gateway.keys import AUDIT, AUTH, LIVY_VIEWS, SESSIONS, SETTINGS
from gateway.livy.models import LivyBatchRequest, batch_request, livy_message

PREFIX = "/livy"
MAX_LIST = 10_000

LivyHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]




def _livy_id(request: web.Request) -> int:
    raw = request.match_info["batch_id"]
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"id: {raw!r} is not a Livy batch id (an integer)") from None


def _do_as(request: web.Request) -> str | None:
    value = request.query.get("doAs")
    if value is not None and (not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise BadRequest("doAs: must be a user name")
    return value or None


def _livy_errors(handler: LivyHandler) -> LivyHandler:
    """Kyuubi field names in messages become Livy's (resource -> file, the proxy conf key -> proxyUser)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            exc.message = livy_message(exc.message, do_as="doAs" in request.query)
            exc.args = (exc.message,)
            raise

    return wrapped


async def _read_body(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.security.max_body_bytes:
        raise TooLarge(f"body: larger than {settings.security.max_body_bytes} bytes")
    raw = await request.read()
    if len(raw) > settings.security.max_body_bytes:
        raise TooLarge(f"body: larger than {settings.security.max_body_bytes} bytes")
    if not raw:
        raise BadRequest("body: empty; send a JSON CreateBatchRequest")
    body = load_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object (a CreateBatchRequest)")
    return body


@_livy_errors
async def create_batch(request: web.Request) -> web.Response:
    body = await _read_body(request)
    do_as = _do_as(request)
    try:
        livy = LivyBatchRequest.model_validate(body)
        kyuubi = batch_request(livy, do_as)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from None
    batch = await request.app[LIVY_VIEWS].submit(principal(request), kyuubi)
    location = f"{request.path.rstrip('/')}/{batch.id}"
    return model_response(batch, status=201, headers={"Location": location})


@_livy_errors
async def list_batches(request: web.Request) -> web.Response:
    offset = int_param(request.query, "from", 0, minimum=0, maximum=2**31)
    size = int_param(request.query, "size", 100, minimum=0, maximum=MAX_LIST)
    return model_response(await request.app[LIVY_VIEWS].list_batches(principal(request), offset, size))


@_livy_errors
async def get_batch(request: web.Request) -> web.Response:
    return model_response(await request.app[LIVY_VIEWS].get(principal(request), _livy_id(request)))


@_livy_errors
async def get_state(request: web.Request) -> web.Response:
    return model_response(await request.app[LIVY_VIEWS].state(principal(request), _livy_id(request)))


@_livy_errors
async def get_log(request: web.Request) -> web.Response:
    """Livy's paging: size defaults to 100 (negative: all); a missing or negative `from` is the tail;
    past the end is an empty page, not an error."""
    size = int_param(request.query, "size", 100, minimum=-(2**62), maximum=2**62)
    start = int_param(request.query, "from", -1, minimum=-(2**62), maximum=2**62)
    return model_response(await request.app[LIVY_VIEWS].log(principal(request), _livy_id(request), start, size))


@_livy_errors
async def delete_batch(request: web.Request) -> web.Response:
    return model_response(await request.app[LIVY_VIEWS].delete(principal(request), _livy_id(request)))


def livy_routes(prefix: str = PREFIX) -> list[web.RouteDef]:
    """The Livy batch routes under `prefix` ("" at the root of the Livy port). Both /batches and
    /batches/ work, as they do on a Livy server."""
    batches = f"{prefix}/batches"
    one = f"{batches}/{{batch_id}}"
    return [
        web.post(batches, create_batch),
        web.post(batches + "/", create_batch),
        web.get(batches, list_batches),
        web.get(batches + "/", list_batches),
        web.get(one, get_batch),
        web.delete(one, delete_batch),
        web.get(f"{one}/state", get_state),
        web.get(f"{one}/log", get_log),
    ]


def livy_root_app(parent: web.Application) -> web.Application:
    """An app serving the Livy API at its root, sharing the parent's running parts (for the Livy port)."""
    settings = parent[SETTINGS]
    app = web.Application(middlewares=[measure, errors, authenticate],
                          client_max_size=settings.security.max_body_bytes + (1 << 20),
                          handler_args={"max_line_size": 32 * 1024})
    app[LIVY_ROOT] = True
    app[SETTINGS] = settings
    app[AUTH] = parent[AUTH]
    app[LIVY_VIEWS] = parent[LIVY_VIEWS]
    app[AUDIT] = parent[AUDIT]  # the middleware records denied requests through it
    if SESSIONS in parent:
        app[SESSIONS] = parent[SESSIONS]
    if METRICS in parent:
        app[METRICS] = parent[METRICS]
    app.add_routes(livy_routes(""))
    return app


async def start_livy_site(
    parent: web.Application, host: str, port: int, *, reuse_port: bool = False
) -> tuple[web.AppRunner, int]:
    """Serve the Livy API at the root of host:port; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(livy_root_app(parent))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])
