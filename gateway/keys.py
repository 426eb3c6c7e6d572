"""Typed application keys: how handlers reach the parts that create_app() assembled."""

from __future__ import annotations

from aiohttp import web

from engines.registry import EngineRegistry
from gateway.azkaban.views import AzkabanViews
from gateway.batches.control import BatchControl
from gateway.batches.feed import BatchFeed
from gateway.batches.overview import Overview
from gateway.batches.retention import Retention
from gateway.batches.scheduler import Scheduler
from gateway.batches.service import BatchService
from gateway.batches.supervisor import Supervisor
from gateway.batches.takeover import Takeover
from gateway.batches.views import BatchViews
from gateway.datameer.views import DatameerViews
from gateway.jobs.numbers import Numbers
from gateway.jobs.service import JobService
from gateway.jobs.views import JobViews
from gateway.kylin.views import KylinViews
from gateway.livy.views import LivyViews
from gateway.projects.service import ProjectService
from gateway.projects.views import ProjectViews
from gateway.schedules.service import ScheduleService
from gateway.schedules.sla import SlaService
from gateway.schedules.views import ScheduleViews, SlaViews
from gateway.security.audit import AuditService
from gateway.security.auth import Authenticator
from gateway.security.sessions import SessionService
from gateway.settings import Settings
from gateway.store import BatchRepository
from gateway.store.database import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BATCH_REPOSITORY = web.AppKey("batch_repository", BatchRepository)
BATCHES = web.AppKey("batches", BatchService)
BATCH_VIEWS = web.AppKey("batch_views", BatchViews)
LIVY_VIEWS = web.AppKey("livy_views", LivyViews)
KYLIN_VIEWS = web.AppKey("kylin_views", KylinViews)
CONTROL = web.AppKey("control", BatchControl)
JOBS = web.AppKey("jobs", JobService)
JOB_VIEWS = web.AppKey("job_views", JobViews)
PROJECTS = web.AppKey("projects", ProjectService)
PROJECT_VIEWS = web.AppKey("project_views", ProjectViews)
AUTH = web.AppKey("auth", Authenticator)
SESSIONS = web.AppKey("sessions", SessionService)
SCHEDULES = web.AppKey("schedules", ScheduleService)
SLAS = web.AppKey("slas", SlaService)
SCHEDULE_VIEWS = web.AppKey("schedule_views", ScheduleViews)
SLA_VIEWS = web.AppKey("sla_views", SlaViews)
TAKEOVER = web.AppKey("takeover", Takeover)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
AUDIT = web.AppKey("audit", AuditService)
ENGINES = web.AppKey("engines", EngineRegistry)
SCHEDULER = web.AppKey("scheduler", Scheduler)
RETENTION = web.AppKey("retention", Retention)
INSTANCE = web.AppKey("instance", str)  # this instance's id (kyuubiInstance)
LIVY_PORT: web.AppKey[int | None] = web.AppKey("livy_port")  # the Livy port bound (livy_port may be 0)
NUMBERS = web.AppKey("numbers", Numbers)
DATAMEER_VIEWS = web.AppKey("datameer_views", DatameerViews)
AZKABAN_VIEWS = web.AppKey("azkaban_views", AzkabanViews)
FEED = web.AppKey("feed", BatchFeed)
OVERVIEW = web.AppKey("overview", Overview)
