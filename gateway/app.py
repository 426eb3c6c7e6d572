"""create_app(settings): assembles the gateway. Parts come up in order and go down in reverse."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from engines.base import Engine
from engines.flink import FlinkEngine
from engines.local import LocalEngine
from engines.process import ProcessSupervisor
from engines.registry import EngineRegistry
from engines.spark import SparkConfig, SparkEngine
from gateway.api.audit import routes as audit_routes
from gateway.api.batches import routes as batch_routes
from gateway.api.control import routes as control_routes
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
from gateway.api.ui import routes as ui_routes
from gateway.batches.admission import Admission
from gateway.batches.control import BatchControl
from gateway.batches.logs import LogStore
from gateway.batches.retention import Retention
from gateway.batches.scheduler import Limits, Scheduler
from gateway.batches.service import BatchService
from gateway.batches.supervisor import Supervisor
from gateway.batches.takeover import Takeover
from gateway.instance.embedded import EmbeddedPostgres
from gateway.instance.heartbeat import Heartbeat
from gateway.instance.listener import CONTROL as CONTROL_CHANNEL
from gateway.instance.listener import DEADLINE, KILL, QUEUE, RUN_BATCH, SCHEDULE, Hub, Listener, QueueBell
from gateway.instance.metrics import Metrics
from gateway.instance.periodic import Periodic
from gateway.instance.readiness import Readiness
from gateway.jobs.runs import RunCoordinator
from gateway.jobs.service import JobService
from gateway.keys import AUTH, CONTROL, JOBS, PROJECTS, SCHEDULES, SERVICE, SESSIONS, SETTINGS, SLAS, STORE, TAKEOVER
from gateway.kylin.handlers import DIALECT as KYLIN
from gateway.kylin.handlers import kylin_routes
from gateway.livy.handlers import livy_routes, start_livy_site
from gateway.projects.service import ProjectService
from gateway.schedules.alerts import Alerter, WebhookRule
from gateway.schedules.deadlines import DeadlineTimer
from gateway.schedules.service import ScheduleService
from gateway.schedules.sla import SlaService
from gateway.schedules.ticker import Ticker
from gateway.security.auth import Authenticator
from gateway.security.policy import Policy
from gateway.security.sessions import SessionService
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.jobs import JobStore
from gateway.store.migrate import InstanceLease, Migrator, SchemaError
from gateway.store.projects import ProjectStore
from gateway.store.schedules import ScheduleStore

log = structlog.get_logger("gateway.app")


@dataclass
class Runtime:
    """The running parts, for tests and for the shutdown sequence."""

    instance: str
    store: Store
    hub: Hub
    supervisor: Supervisor
    scheduler: Scheduler
    heartbeat: Heartbeat
    takeover: Takeover
    retention: Retention
    livy_port: int | None = None  # the Livy port actually bound (settings.livy_port may be 0)


RUNTIME = web.AppKey("runtime", Runtime)
# batch_counts gains a row or two per state change; folding them this often keeps a list's total a sum
# over a few hundred rows at most.
COUNT_COMPACTION_SECONDS = 5.0


# A request line may carry every documented query parameter at its longest (`key` is 1,024 characters,
# up to 12 bytes each once percent-encoded); aiohttp's 8,190-byte default answered longer ones with a
# plain-text 400 before any handler could.
HANDLER_ARGS = {"max_line_size": 32 * 1024}


def instance_id(settings: Settings) -> str:
    if settings.instance_id:
        return settings.instance_id
    if settings.port == 0:
        return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
    return f"{socket.gethostname()}:{settings.port}"


def build_engines(settings: Settings, supervisor: ProcessSupervisor) -> EngineRegistry:
    engines: list[Engine] = [
        LocalEngine(supervisor, allowed_programs=settings.local_programs, kill_grace=settings.kill_grace_seconds),
        FlinkEngine(
            supervisor, home=settings.flink_home, default_target=settings.flink_target,
            default_jobmanager=settings.flink_jobmanager, poll_fastest=settings.flink_poll_min_seconds,
            poll_slowest=settings.flink_poll_max_seconds, lost_after=settings.flink_lost_after_seconds,
            kill_grace=settings.kill_grace_seconds,
        ),
        SparkEngine(supervisor, SparkConfig(
            spark_home=settings.spark_home, default_master=settings.spark_master,
            allowed_masters=tuple(settings.spark_allowed_masters), master_web_urls=settings.spark_master_web_urls,
            rest_port=settings.spark_rest_port, yarn_rm_urls=tuple(settings.spark_yarn_rm_urls),
            k8s_namespace=settings.spark_k8s_namespace, k8s_token_file=settings.spark_k8s_token_file,
            k8s_ca_file=settings.spark_k8s_ca_file, poll_min=settings.spark_poll_min_seconds,
            poll_max=settings.spark_poll_max_seconds, lost_after=settings.spark_lost_after_seconds,
            kill_grace=settings.kill_grace_seconds,
        )),
    ]
    return EngineRegistry(engines, settings.enabled_engines)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[measure, errors, authenticate],
        client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes) + (1 << 20),
        handler_args=HANDLER_ARGS,
    )
    app[SETTINGS] = settings
    app[AUTH] = Authenticator(settings.users_file, settings.admin)
    app[SPEC_KEY] = build_spec()
    app[METRICS] = Metrics(state_ttl=settings.metrics_state_seconds)
    app[DIALECTS] = (KYLIN,)
    app.add_routes(metrics_routes)
    app.add_routes(livy_routes())
    app.add_routes(health_routes)
    app.add_routes(openapi_routes)
    app.add_routes(control_routes)
    app.add_routes(batch_routes)
    app.add_routes(job_routes)
    app.add_routes(project_routes)
    app.add_routes(schedule_routes)
    app.add_routes(sla_routes)
    app.add_routes(audit_routes)
    app.add_routes(session_routes)
    app.add_routes(ui_routes)
    app.add_routes(kylin_routes())
    app.cleanup_ctx.append(_runtime)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        dsn = await embedded.start()
    if settings.open_mode:
        log.warning("auth.open_mode", detail="no users file: anyone on this host may act as any user")
    store = await Store.connect(dsn)
    metrics = app[METRICS]
    metrics.bind_store(store)
    processes = ProcessSupervisor()
    livy_runner: web.AppRunner | None = None
    listener: Listener | None = None
    scheduler: Scheduler | None = None
    supervisor: Supervisor | None = None
    heartbeat: Heartbeat | None = None
    takeover: Takeover | None = None
    retention: Retention | None = None
    compaction: Periodic | None = None
    coordinator: RunCoordinator | None = None
    engines: EngineRegistry | None = None
    bell: QueueBell | None = None
    ticker: Ticker | None = None
    deadlines: DeadlineTimer | None = None
    alerts: Alerter | None = None
    try:
        instance = instance_id(settings)
        lease = InstanceLease(instance, f"{settings.host}:{settings.port}", int(settings.lease_seconds * 1000))
        try:
            version = (await Migrator(dsn).upgrade(migrate=settings.migrate, instance=lease)).version
        except SchemaError as exc:
            log.error("schema.refused", instance=instance, detail=str(exc))
            raise
        hub = Hub()
        listener = Listener(dsn, hub)
        await processes.start()
        engines = build_engines(settings, processes)
        logs = LogStore(store, hub, metrics)
        projects = ProjectService(ProjectStore(store), data_dir=settings.data_dir,
                                  max_artifact_bytes=settings.max_artifact_bytes,
                                  max_artifact_files=settings.max_artifact_files)
        supervisor = Supervisor(store, logs, engines, instance, settings.data_dir, metrics=metrics,
                                projects=projects)
        limits = Limits(settings.max_running, settings.max_running_per_user, settings.max_running_per_type)
        scheduler = Scheduler(store, logs, supervisor, limits, capacity=settings.max_local_batches,
                              metrics=metrics)
        heartbeat = Heartbeat(
            store, instance, f"{settings.host}:{settings.port}",
            every=settings.heartbeat_seconds, lease=settings.lease_seconds,
        )
        policy = Policy(settings)
        takeover = Takeover(store, logs, supervisor, policy, every=settings.heartbeat_seconds, metrics=metrics)
        retention = Retention(store, days=settings.retention_days, every=settings.retention_check_seconds)
        compaction = Periodic("count_compaction", COUNT_COMPACTION_SECONDS, store.compact_counts)
        hub.on(QUEUE, scheduler.wake)
        hub.on(KILL, _kill_handler(supervisor, store))
        hub.on(CONTROL_CHANNEL, _control_handler(supervisor, store))
        job_store = JobStore(store)
        bell = QueueBell(store.ring_queue, scheduler.wake)
        policy = Policy(settings)
        webhooks = WebhookRule(settings.sla_webhook_hosts)
        # The one admission step every creator of batches calls (docs/architecture.md).
        admission = Admission(store, policy, engines, projects=projects, webhooks=webhooks,
                              rate_per_minute=settings.submit_rate_per_minute, metrics=metrics,
                              on_queued=bell.ring)
        coordinator = RunCoordinator(job_store, admission, app[AUTH].principal, on_queued=bell.ring)
        hub.on(RUN_BATCH, coordinator.on_batch_change)
        await listener.start()
        await heartbeat.start()
        app[STORE] = store
        app[SESSIONS] = SessionService(store, app[AUTH], default_seconds=settings.session_seconds,
                                       max_seconds=settings.session_max_seconds)
        app[TAKEOVER] = takeover
        app[PROJECTS] = projects
        app[JOBS] = JobService(job_store, coordinator, logs, admission, hub, projects)
        app[SERVICE] = BatchService(store, logs, hub, policy, admission, roles=app[JOBS].batch_roles,
                                    projects=projects, metrics=metrics)
        app[CONTROL] = BatchControl(store, logs, engines, hub, policy, app[SERVICE], admission,
                                    supervisor.workdir, projects)
        # Schedules and SLAs (docs/schedules.md): two timers driven by the database, woken by NOTIFY.
        schedule_store = ScheduleStore(store)
        alerts = Alerter(timeout=settings.sla_webhook_timeout_seconds, retries=settings.sla_webhook_retries,
                         backoff=settings.sla_webhook_backoff_seconds, smtp_host=settings.smtp_host,
                         smtp_port=settings.smtp_port, smtp_from=settings.smtp_from,
                         smtp_timeout=settings.smtp_timeout_seconds, webhook_rule=webhooks)
        app[SCHEDULES] = ScheduleService(schedule_store, app[JOBS], projects,
                                         catchup_bound=settings.schedule_catchup_bound)
        app[SLAS] = SlaService(schedule_store, app[JOBS], app[SCHEDULES], projects, app[SERVICE],
                               webhooks=webhooks)
        ticker = Ticker(schedule_store, app[JOBS], instance, principal=app[AUTH].principal,
                        misfire_seconds=settings.schedule_misfire_seconds, queue_limit=settings.schedule_queue_limit,
                        housekeeping_seconds=settings.heartbeat_seconds, metrics=metrics)
        deadlines = DeadlineTimer(schedule_store, alerts, app[SERVICE], app[JOBS], logs, instance,
                                  housekeeping_seconds=settings.heartbeat_seconds, metrics=metrics)
        hub.on(SCHEDULE, ticker.on_notify)
        hub.on(DEADLINE, deadlines.on_notify)
        app[READINESS] = Readiness(store, heartbeat)
        livy_port: int | None = None
        if settings.livy_port is not None:
            livy_runner, livy_port = await start_livy_site(app, settings.host, settings.livy_port,
                                                           reuse_port=settings.reuse_port)
        app[RUNTIME] = Runtime(instance, store, hub, supervisor, scheduler, heartbeat, takeover, retention,
                               livy_port)
        recovered = await supervisor.recover_owned()
        scheduler.start()
        takeover.start()
        retention.start()
        compaction.start()
        coordinator.start()
        bell.start()
        ticker.start()
        deadlines.start()
        log.info("gateway.started", instance=instance, schema_version=version, recovered=recovered,
                 engines=sorted(engines.enabled), embedded=embedded is not None)
        yield
    finally:
        if livy_runner is not None:
            await livy_runner.cleanup()
        # Stop claiming, then let go of the applications without killing them.
        if bell is not None:
            await bell.close()
        for timer in (ticker, deadlines):
            if timer is not None:
                await timer.stop()
        if alerts is not None:
            await alerts.close()
        for loop in (coordinator, compaction, retention, takeover, scheduler):
            if loop is not None:
                await loop.stop()
        if supervisor is not None:
            await supervisor.detach_all()
        if heartbeat is not None:
            await heartbeat.stop()
        if listener is not None:
            await listener.close()
        if engines is not None:
            await engines.close()
        await processes.close()
        await store.close()
        if embedded is not None:
            await embedded.stop()
        log.info("gateway.stopped")


def _kill_handler(supervisor: Supervisor, store: Store) -> Callable[[str | None], None]:
    pending: set[asyncio.Task[None]] = set()

    def handle(payload: str | None) -> None:
        if payload is None:
            task = asyncio.create_task(_resync_kills(supervisor, store))
            pending.add(task)
            task.add_done_callback(pending.discard)
            return
        owner, _, batch_id = payload.partition(" ")
        if owner == supervisor.instance:
            supervisor.kill(uuid.UUID(batch_id))

    return handle


def _control_handler(supervisor: Supervisor, store: Store) -> Callable[[str | None], None]:
    pending: set[asyncio.Task[None]] = set()

    async def resync() -> None:
        for batch_id, action in await store.pending_controls(supervisor.instance):
            supervisor.control(batch_id, action)

    def handle(payload: str | None) -> None:
        if payload is None:
            task = asyncio.create_task(resync())
            pending.add(task)
            task.add_done_callback(pending.discard)
            return
        owner, batch_id, action = payload.split(" ", 2)
        if owner == supervisor.instance:
            supervisor.control(uuid.UUID(batch_id), action)

    return handle


async def _resync_kills(supervisor: Supervisor, store: Store) -> None:
    for batch_id in await store.kill_requested_owned(supervisor.instance):
        supervisor.kill(batch_id)
