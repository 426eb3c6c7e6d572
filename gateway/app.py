"""create_app(settings): assembles the gateway. Parts come up in order and go down in reverse."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog
from aiohttp import web

from engines.base import EngineContext
from engines.process import ProcessSupervisor
from engines.registry import EngineRegistry
from gateway.api.audit import routes as audit_routes
from gateway.api.batch_events import routes as batch_event_routes
from gateway.api.batches import routes as batch_routes
from gateway.api.control import routes as control_routes
from gateway.api.engines import routes as engine_routes
from gateway.api.health import READINESS
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
from gateway.azkaban.routes import DIALECT as AZKABAN
from gateway.azkaban.routes import azkaban_routes
from gateway.batches.admission import Admission
from gateway.batches.control import BatchControl
from gateway.batches.feed import BatchFeed
from gateway.batches.logs import LogStore
from gateway.batches.notices import control_handler, kill_handler
from gateway.batches.overview import Overview
from gateway.batches.retention import Retention
from gateway.batches.scheduler import Limits, Scheduler
from gateway.batches.service import BatchService
from gateway.batches.supervisor import Supervisor
from gateway.batches.takeover import Takeover
from gateway.batches.views import BatchViews
from gateway.datameer.handlers import DIALECT as DATAMEER
from gateway.datameer.handlers import datameer_routes
from gateway.instance.embedded import EmbeddedPostgres
from gateway.instance.heartbeat import Heartbeat
from gateway.instance.listener import CONTROL as CONTROL_CHANNEL
from gateway.instance.listener import DEADLINE, KILL, QUEUE, RUN_BATCH, SCHEDULE, Hub, Listener, QueueBell
from gateway.instance.metrics import Metrics
from gateway.instance.periodic import Periodic
from gateway.instance.readiness import Readiness
from gateway.jobs.numbers import Numbers
from gateway.jobs.runs import RunCoordinator
from gateway.jobs.service import JobService
from gateway.jobs.views import JobViews
from gateway.keys import (
    AUDIT,
    AUTH,
    BATCH_REPOSITORY,
    BATCH_VIEWS,
    BATCHES,
    CONTROL,
    DATABASE,
    ENGINES,
    FEED,
    INSTANCE,
    JOB_VIEWS,
    JOBS,
    KYLIN_VIEWS,
    LIVY_PORT,
    LIVY_VIEWS,
    NUMBERS,
    OVERVIEW,
    PROJECT_VIEWS,
    PROJECTS,
    RETENTION,
    SCHEDULE_VIEWS,
    SCHEDULER,
    SCHEDULES,
    SESSIONS,
    SETTINGS,
    SLA_VIEWS,
    SLAS,
    SUPERVISOR,
    TAKEOVER,
)
from gateway.kylin.handlers import DIALECT as KYLIN
from gateway.kylin.handlers import kylin_routes
from gateway.kylin.views import KylinViews
from gateway.livy.handlers import livy_routes, start_livy_site
from gateway.livy.views import LivyViews
from gateway.projects.service import ProjectService
from gateway.projects.views import ProjectViews
from gateway.schedules.alerts import Alerter
from gateway.schedules.deadlines import DeadlineTimer
from gateway.schedules.service import ScheduleService
from gateway.schedules.sla import SlaService
from gateway.schedules.ticker import Ticker
from gateway.schedules.views import ScheduleViews, SlaViews
from gateway.security.audit import AuditService
from gateway.security.auth import Authenticator
from gateway.security.outbound import OutboundRule
from gateway.security.policy import Policy
from gateway.security.sessions import SessionService
from gateway.settings import InstanceSettings, Settings
from gateway.store import BatchRepository
from gateway.store.audit import AuditRepository
from gateway.store.claims import ClaimRepository
from gateway.store.control import ControlRepository
from gateway.store.database import Database
from gateway.store.dialects import DialectIdRepository
from gateway.store.instances import InstanceRepository
from gateway.store.jobs import JobRepository
from gateway.store.logs import LogRepository
from gateway.store.migrate import InstanceLease, Migrator, SchemaError
from gateway.store.projects import ProjectRepository
from gateway.store.schedules import ScheduleRepository
from gateway.store.sessions import SessionRepository
from gateway.store.slas import SlaRepository
from gateway.store.stats import StatsRepository

log = structlog.get_logger("gateway.app")


# batch_counts gains a row or two per state change; folding them this often keeps a list's total a sum
# over a few hundred rows at most.
COUNT_COMPACTION_SECONDS = 5.0


# A request line may carry every documented query parameter at its longest (`key` is 1,024 characters,
# up to 12 bytes each once percent-encoded); aiohttp's 8,190-byte default answered longer ones with a
# plain-text 400 before any handler could.
HANDLER_ARGS = {"max_line_size": 32 * 1024}


class Loop(Protocol):
    """A part that runs on its own once started: a claimer, a timer, a periodic step."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


# The parts create_app() wires, for the entries below (the handlers' keys are in gateway/keys.py).
_DSN = web.AppKey("dsn", str)
_EMBEDDED = web.AppKey("embedded", bool)
_SCHEMA_VERSION = web.AppKey("schema_version", int)
_PROCESSES = web.AppKey("processes", ProcessSupervisor)
_HUB = web.AppKey("hub", Hub)
_HEARTBEAT = web.AppKey("heartbeat", Heartbeat)
_ALERTS = web.AppKey("alerts", Alerter)
_LOOPS = web.AppKey("loops", dict[str, Loop])
_RECOVERED = web.AppKey("recovered", int)
_LIVY_RUNNER = web.AppKey("livy_runner", web.AppRunner)
# The loops, in the order they start (they stop in reverse).
LOOPS = ("scheduler", "takeover", "retention", "compaction", "coordinator", "bell", "ticker", "deadlines")


def instance_id(settings: InstanceSettings) -> str:
    if settings.instance_id:
        return settings.instance_id
    if settings.port == 0:
        return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
    return f"{socket.gethostname()}:{settings.port}"


def build_engines(settings: Settings, processes: ProcessSupervisor) -> EngineRegistry:
    """Every installed engine plug-in, built from its own settings; the enabled batch types go to the registry."""
    context = EngineContext(processes=processes, kill_grace=settings.engines.kill_grace_seconds,
                            data_dir=settings.instance.data_dir)
    engines = [plugin.create(settings.engine_settings[plugin.name], context) for plugin in settings.plugins]
    names = {t: plugin.name for plugin in settings.plugins for t in plugin.batch_types}
    return EngineRegistry(engines, settings.enabled_engines, names)


def create_app(settings: Settings) -> web.Application:
    """The gateway as an aiohttp app. Its parts come up in the order of `cleanup_ctx`, one entry each, and
    go down in reverse: Postgres and the pool, the engines, the services (built, not started), the LISTEN
    connection, the lease, the supervisor (re-attaching owned batches), the loops, the Livy port."""
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
    app.cleanup_ctx.extend([
        _lifetime, _users_file, _embedded_postgres, _store, _engines, _parts, _listener, _heartbeat, _supervisor,
        *(_loop(name) for name in LOOPS), _livy, _started,
    ])
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """Before the parts come down: open batch event streams end, so they do not hold the shutdown."""
    if FEED in app:
        app[FEED].close()


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """The data dir, the open-mode warning, and the last line of a stop."""
    settings = app[SETTINGS]
    settings.instance.data_dir.mkdir(parents=True, exist_ok=True)
    app[INSTANCE] = instance_id(settings.instance)
    yield
    log.info("gateway.stopped")


async def _users_file(app: web.Application) -> AsyncIterator[None]:
    """The users file, re-read as an operator changes it."""
    app[AUTH].start()
    try:
        yield
    finally:
        await app[AUTH].stop()


async def _embedded_postgres(app: web.Application) -> AsyncIterator[None]:
    """Without a database URL, a Postgres of our own under the data dir."""
    settings = app[SETTINGS]
    url = settings.database.database_url
    app[_EMBEDDED] = url is None
    if url is not None:
        app[_DSN] = url
        yield
        return
    embedded = EmbeddedPostgres(settings.instance.data_dir)
    app[_DSN] = await embedded.start()
    try:
        yield
    finally:
        await embedded.stop()


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The pool, and the schema applied (or checked) before anything reads it."""
    if app[SETTINGS].open_mode:
        log.warning("auth.open_mode", detail="no users file: anyone on this host may act as any user")
    db = await Database.connect(app[_DSN])
    batch_repository = BatchRepository(db)
    app[DATABASE] = db
    app[BATCH_REPOSITORY] = batch_repository
    app[METRICS].bind_repository(batch_repository, db.pool)
    try:
        app[_SCHEMA_VERSION] = await _migrate(app)
        yield
    finally:
        await db.close()


async def _migrate(app: web.Application) -> int:
    """Apply this release's migrations (or check them, with --no-migrate), registering this instance in the
    same transaction (docs/operations.md, Upgrades); a schema this code cannot use stops the start."""
    settings, instance = app[SETTINGS], app[INSTANCE]
    me = settings.instance
    lease = InstanceLease(instance, f"{me.host}:{me.port}", int(me.lease_seconds * 1000))
    try:
        status = await Migrator(app[_DSN]).upgrade(migrate=settings.database.migrate, instance=lease)
    except SchemaError as exc:
        log.error("schema.refused", instance=instance, detail=str(exc))
        raise
    return status.version


async def _engines(app: web.Application) -> AsyncIterator[None]:
    """The fork server every launch goes through, and the engine adapters."""
    processes = ProcessSupervisor()
    app[_PROCESSES] = processes
    await processes.start()
    engines: EngineRegistry | None = None
    try:
        engines = build_engines(app[SETTINGS], processes)
        app[ENGINES] = engines
        yield
    finally:
        if engines is not None:
            await engines.close()
        await processes.close()


async def _parts(app: web.Application) -> AsyncIterator[None]:
    """Build the services and loops (nothing starts here) and route notifications to them."""
    _build_parts(app)
    yield
    await app[_ALERTS].close()


async def _listener(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection, once every handler is on the hub, so that no early notification is lost."""
    listener = Listener(app[_DSN], app[_HUB])
    await listener.start()
    try:
        yield
    finally:
        await listener.close()


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    heartbeat = app[_HEARTBEAT]
    await heartbeat.start()
    try:
        yield
    finally:
        await heartbeat.stop()


async def _supervisor(app: web.Application) -> AsyncIterator[None]:
    """Re-attach this instance's batches; at the end, let go of the applications without killing them."""
    supervisor = app[SUPERVISOR]
    try:
        app[_RECOVERED] = await supervisor.recover_owned()
        yield
    finally:
        await supervisor.detach_all()


def _loop(name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        loop = app[_LOOPS][name]
        loop.start()
        try:
            yield
        finally:
            await loop.stop()

    run.__name__ = run.__qualname__ = f"_loop_{name}"
    return run


async def _livy(app: web.Application) -> AsyncIterator[None]:
    """The Livy API at the root of a port of its own, when livy_port is set (it is always under /livy)."""
    me = app[SETTINGS].instance
    app[LIVY_PORT] = None
    if me.livy_port is None:
        yield
        return
    runner, port = await start_livy_site(app, me.host, me.livy_port, reuse_port=me.reuse_port)
    app[LIVY_PORT] = port
    try:
        yield
    finally:
        await runner.cleanup()


async def _started(app: web.Application) -> AsyncIterator[None]:
    log.info("gateway.started", instance=app[INSTANCE], schema_version=app[_SCHEMA_VERSION],
             recovered=app[_RECOVERED], engines=sorted(app[ENGINES].enabled), embedded=app[_EMBEDDED])
    yield


def _build_parts(app: web.Application) -> None:
    settings, db, engines, metrics = app[SETTINGS], app[DATABASE], app[ENGINES], app[METRICS]
    batch_repository = app[BATCH_REPOSITORY]
    me, queue, security, timers = settings.instance, settings.queue, settings.security, settings.schedules
    instance = app[INSTANCE]
    hub = Hub()
    log_repository = LogRepository(db)
    controls = ControlRepository(db)
    logs = LogStore(log_repository, batch_repository, hub, metrics)
    policy = Policy(security)
    audit = AuditService(AuditRepository(db), policy)
    projects = ProjectService(ProjectRepository(db), data_dir=me.data_dir,
                              max_artifact_bytes=security.max_artifact_bytes,
                              max_artifact_files=security.max_artifact_files)
    supervisor = Supervisor(batch_repository, controls, logs, engines, instance, me.data_dir, metrics=metrics,
                            projects=projects)
    limits = Limits(queue.max_running, queue.max_running_per_user, queue.max_running_per_type)
    scheduler = Scheduler(ClaimRepository(db), logs, supervisor, limits, capacity=queue.max_local_batches,
                          metrics=metrics)
    instances = InstanceRepository(db)
    heartbeat = Heartbeat(instances, instance, f"{me.host}:{me.port}", every=me.heartbeat_seconds,
                          lease=me.lease_seconds)
    takeover = Takeover(instances, logs, supervisor, policy, audit, every=me.heartbeat_seconds, metrics=metrics)
    retention = Retention(batch_repository, log_repository, days=queue.retention_days,
                          every=queue.retention_check_seconds)
    compaction = Periodic("count_compaction", COUNT_COMPACTION_SECONDS, batch_repository.compact_counts)
    bell = QueueBell(batch_repository.ring_queue, scheduler.wake)
    # Where SLA webhooks may go: the operator's hosts (and the mail host) by name, else public addresses.
    webhooks = OutboundRule(timers.sla_webhook_hosts, named=[timers.smtp_host])
    # The one admission step every creator of batches calls (docs/architecture.md).
    admission = Admission(batch_repository, policy, engines, audit, projects=projects, webhooks=webhooks,
                          principal=app[AUTH].principal, rate_per_minute=security.submit_rate_per_minute,
                          metrics=metrics, on_queued=bell.ring)
    job_repository = JobRepository(db)
    coordinator = RunCoordinator(job_repository, admission, app[AUTH].principal, on_queued=bell.ring)
    jobs = JobService(job_repository, coordinator, logs, admission, hub, projects)

    # Schedules and SLAs (docs/schedules.md): two timers driven by the database, woken by NOTIFY.
    schedule_repository = ScheduleRepository(db)
    sla_repository = SlaRepository(db)
    alerts = Alerter(timeout=timers.sla_webhook_timeout_seconds, retries=timers.sla_webhook_retries,
                     backoff=timers.sla_webhook_backoff_seconds, smtp_host=timers.smtp_host,
                     smtp_port=timers.smtp_port, smtp_from=timers.smtp_from,
                     smtp_timeout=timers.smtp_timeout_seconds, webhook_rule=webhooks)
    batches = BatchService(batch_repository, logs, hub, policy, admission, audit, roles=jobs.batch_roles,
                           projects=projects, metrics=metrics)
    schedules = ScheduleService(schedule_repository, jobs, projects, audit, catchup_bound=timers.schedule_catchup_bound)
    ticker = Ticker(schedule_repository, jobs, instance, principal=app[AUTH].principal,
                    misfire_seconds=timers.schedule_misfire_seconds, queue_limit=timers.schedule_queue_limit,
                    housekeeping_seconds=me.heartbeat_seconds, metrics=metrics)
    deadlines = DeadlineTimer(schedule_repository, sla_repository, alerts, batches, jobs, logs, audit, instance,
                              housekeeping_seconds=me.heartbeat_seconds, metrics=metrics)

    hub.on(QUEUE, scheduler.wake)
    hub.on(KILL, kill_handler(supervisor, batch_repository))
    hub.on(CONTROL_CHANNEL, control_handler(supervisor, controls))
    hub.on(RUN_BATCH, coordinator.on_batch_change)
    hub.on(SCHEDULE, ticker.on_notify)
    hub.on(DEADLINE, deadlines.on_notify)

    app[_HUB] = hub
    app[_HEARTBEAT] = heartbeat
    app[_ALERTS] = alerts
    app[SUPERVISOR] = supervisor
    app[SCHEDULER] = scheduler
    app[RETENTION] = retention
    app[TAKEOVER] = takeover
    app[PROJECTS] = projects
    app[PROJECT_VIEWS] = ProjectViews(projects)
    app[JOBS] = jobs
    app[JOB_VIEWS] = JobViews(jobs)
    app[NUMBERS] = Numbers(DialectIdRepository(db))
    app[BATCHES] = batches
    app[FEED] = BatchFeed(batch_repository, batches, hub)
    app[OVERVIEW] = Overview(StatsRepository(db), batches, limits, engines.enabled)
    app[CONTROL] = BatchControl(batch_repository, controls, logs, engines, hub, policy, batches, admission, audit,
                                supervisor.workdir, projects)
    app[BATCH_VIEWS] = BatchViews(batches, app[CONTROL])
    app[LIVY_VIEWS] = LivyViews(batches)
    app[KYLIN_VIEWS] = KylinViews(batches, app[CONTROL], jobs)
    app[AUDIT] = audit
    app[SESSIONS] = SessionService(SessionRepository(db), app[AUTH], audit, default_seconds=security.session_seconds,
                                   max_seconds=security.session_max_seconds)
    app[SCHEDULES] = schedules
    app[SCHEDULE_VIEWS] = ScheduleViews(schedules)
    app[SLAS] = SlaService(sla_repository, jobs, schedules, projects, batches, audit, webhooks=webhooks)
    app[SLA_VIEWS] = SlaViews(app[SLAS])
    app[READINESS] = Readiness(instances, heartbeat)
    loops: dict[str, Loop] = {
        "scheduler": scheduler, "takeover": takeover, "retention": retention, "compaction": compaction,
        "coordinator": coordinator, "bell": bell, "ticker": ticker, "deadlines": deadlines,
    }
    app[_LOOPS] = loops
