"""What the gateway is made of: the engines, and the repositories, services and loops on the Database, wired
to each other and to the notifications that drive them. Nothing here starts anything: gateway/app/lifecycle.py
brings the parts up in order and down in reverse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from engines.base import EngineContext
from engines.process import ProcessSupervisor
from engines.registry import EngineRegistry
from gateway.api.health import READINESS
from gateway.api.metrics import METRICS
from gateway.azkaban.views import AzkabanViews
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
from gateway.datameer.views import DatameerViews
from gateway.instance.heartbeat import Heartbeat
from gateway.instance.listener import CONTROL as CONTROL_CHANNEL
from gateway.instance.listener import DEADLINE, KILL, QUEUE, RUN_BATCH, SCHEDULE, Hub, QueueBell
from gateway.instance.periodic import Periodic
from gateway.instance.readiness import Readiness
from gateway.jobs.numbers import Numbers
from gateway.jobs.runs import RunCoordinator
from gateway.jobs.service import JobService
from gateway.jobs.views import JobViews
from gateway.keys import (
    AUDIT,
    AUTH,
    AZKABAN_VIEWS,
    BATCH_REPOSITORY,
    BATCH_VIEWS,
    BATCHES,
    CONTROL,
    DATABASE,
    DATAMEER_VIEWS,
    ENGINES,
    FEED,
    INSTANCE,
    JOB_VIEWS,
    JOBS,
    KYLIN_VIEWS,
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
from gateway.kylin.views import KylinViews
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
from gateway.security.outbound import OutboundRule
from gateway.security.policy import Policy
from gateway.security.sessions import SessionService
from gateway.settings import Settings
from gateway.store.audit import AuditRepository
from gateway.store.claims import ClaimRepository
from gateway.store.control import ControlRepository
from gateway.store.dialects import DialectIdRepository
from gateway.store.instances import InstanceRepository
from gateway.store.jobs import JobRepository
from gateway.store.logs import LogRepository
from gateway.store.projects import ProjectRepository
from gateway.store.schedules import ScheduleRepository
from gateway.store.sessions import SessionRepository
from gateway.store.slas import SlaRepository
from gateway.store.stats import StatsRepository

# batch_counts gains a row or two per state change; folding them this often keeps a list's total a sum
# over a few hundred rows at most.
COUNT_COMPACTION_SECONDS = 5.0


class Loop(Protocol):
    """A part that runs on its own once started: a claimer, a timer, a periodic step."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


# The loops, in the order they start (they stop in reverse).
LOOPS = ("scheduler", "takeover", "retention", "compaction", "coordinator", "bell", "ticker", "deadlines")


@dataclass(frozen=True)
class Parts:
    """What the lifecycle's entries need of the parts, beyond the handlers' keys: the notification hub (for
    the LISTEN connection), the heartbeat, the SLA alerts (closed at the end) and the loops by name."""

    hub: Hub
    heartbeat: Heartbeat
    alerts: Alerter
    loops: dict[str, Loop]


def build_engines(settings: Settings, processes: ProcessSupervisor) -> EngineRegistry:
    """Every installed engine plug-in, built from its own settings; the enabled batch types go to the registry."""
    context = EngineContext(processes=processes, kill_grace=settings.engines.kill_grace_seconds,
                            data_dir=settings.instance.data_dir)
    engines = [plugin.create(settings.engine_settings[plugin.name], context) for plugin in settings.plugins]
    names = {t: plugin.name for plugin in settings.plugins for t in plugin.batch_types}
    return EngineRegistry(engines, settings.enabled_engines, names)


def build_parts(app: web.Application) -> Parts:
    """Build the services and loops (nothing starts here), route notifications to them, and put what the
    handlers use under their keys (gateway/keys.py)."""
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
    app[DATAMEER_VIEWS] = DatameerViews(jobs, app[NUMBERS], app[CONTROL])
    app[AZKABAN_VIEWS] = AzkabanViews(jobs, app[NUMBERS])
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
    return Parts(hub=hub, heartbeat=heartbeat, alerts=alerts, loops=loops)
