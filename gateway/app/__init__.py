"""create_app(settings): the gateway as an aiohttp app: its middlewares and routes here; its parts
(gateway/app/parts.py) come up in order and go down in reverse (gateway/app/lifecycle.py)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.audit import routes as audit_routes
from gateway.api.batch_events import routes as batch_event_routes
from gateway.api.batches import routes as batch_routes
from gateway.api.control import routes as control_routes
from gateway.api.engines import routes as engine_routes
from gateway.api.health import routes as health_routes
from gateway.api.jobs import routes as job_routes
from gateway.api.metrics import METRICS, measure
from gateway.api.metrics import routes as metrics_routes
from gateway.api.middleware import DIALECTS, authenticate, errors
from gateway.api.openapi import SPEC_KEY, build_spec
from gateway.api.openapi import routes as openapi_routes
from gateway.api.projects import routes as project_routes
from gateway.api.schedules import routes as schedule_routes
from gateway.api.sessions import routes as session_routes
from gateway.api.slas import routes as sla_routes
from gateway.api.stats import routes as stats_routes
from gateway.api.ui import routes as ui_routes
from gateway.app.lifecycle import ENTRIES
from gateway.azkaban.routes import DIALECT as AZKABAN
from gateway.azkaban.routes import azkaban_routes
from gateway.datameer.handlers import DIALECT as DATAMEER
from gateway.datameer.handlers import datameer_routes
from gateway.instance.metrics import Metrics
from gateway.keys import AUTH, FEED, SETTINGS
from gateway.kylin.handlers import DIALECT as KYLIN
from gateway.kylin.handlers import kylin_routes
from gateway.livy.handlers import livy_routes
from gateway.security.auth import Authenticator
from gateway.settings import Settings

# A request line may carry every documented query parameter at its longest (`key` is 1,024 characters,
# up to 12 bytes each once percent-encoded); aiohttp's 8,190-byte default answered longer ones with a
# plain-text 400 before any handler could.
HANDLER_ARGS = {"max_line_size": 32 * 1024}


def create_app(settings: Settings) -> web.Application:
    """The gateway as an aiohttp app: its middlewares and routes, and its parts, which come up in the order
    of `cleanup_ctx` (gateway/app/lifecycle.py, one entry each) and go down in reverse."""
    app = web.Application(
        middlewares=[measure, errors, authenticate],
        client_max_size=max(settings.security.max_body_bytes, settings.security.max_upload_bytes) + (1 << 20),
        handler_args=HANDLER_ARGS,
    )
    app[SETTINGS] = settings
    app[AUTH] = Authenticator(settings.security.users_file, settings.security.admin)
    app[SPEC_KEY] = build_spec(settings.batch_types)
    app[METRICS] = Metrics(state_ttl=settings.instance.metrics_state_seconds)
    app[DIALECTS] = (KYLIN, DATAMEER, AZKABAN)
    app.add_routes(metrics_routes)
    app.add_routes(livy_routes())
    app.add_routes(health_routes)
    app.add_routes(openapi_routes)
    app.add_routes(control_routes)
    app.add_routes(batch_event_routes)  # before /batches/{batch_id}
    app.add_routes(batch_routes)
    app.add_routes(engine_routes)
    app.add_routes(job_routes)
    app.add_routes(project_routes)
    app.add_routes(schedule_routes)
    app.add_routes(sla_routes)
    app.add_routes(audit_routes)
    app.add_routes(stats_routes)
    app.add_routes(session_routes)
    app.add_routes(ui_routes)
    app.add_routes(kylin_routes())
    app.add_routes(datameer_routes())
    app.add_routes(azkaban_routes())
    app.cleanup_ctx.extend(ENTRIES)
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """Before the parts come down: open batch event streams end, so they do not hold the shutdown."""
    if FEED in app:
        app[FEED].close()
