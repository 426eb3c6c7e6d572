"""Azkaban's `/schedule`: schedules and SLAs, on batchgate's (gateway/schedules).

A flow has at most one schedule, as on Azkaban: scheduling it again changes that schedule. Schedule ids
are numbers from app[NUMBERS] (Kind.SCHEDULE, keyed by the schedule's UUID). Schedule actions answer
`{"status": "error", "message": ...}` when they fail, as Azkaban's do; setSla and slaInfo `{"error": ...}`.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from gateway.azkaban.executor import FAILURE_ACTIONS, flow
from gateway.azkaban.models import answer, flow_of, job_parts
from gateway.azkaban.sessions import dispatch
from gateway.contract.jobs import Permission
from gateway.contract.schedules import Schedule, ScheduleSpec, SlaSpec
from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.jobs.numbers import Kind, parse_named_key
from gateway.keys import AZKABAN_VIEWS, NUMBERS, SCHEDULE_VIEWS, SLA_VIEWS
from gateway.schedules.timing import TimingError, parse_zone
from gateway.security.auth import Principal

# Azkaban's clients write zones as abbreviations (12,00,pm,PDT): each as the zone that uses it.
ABBREVIATIONS = {
    "UTC": "UTC", "GMT": "UTC", "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles",
    "MST": "America/Denver", "MDT": "America/Denver", "CST": "America/Chicago", "CDT": "America/Chicago",
    "EST": "America/New_York", "EDT": "America/New_York", "CET": "Europe/Paris", "CEST": "Europe/Paris",
    "BST": "Europe/London", "IST": "Asia/Kolkata", "JST": "Asia/Tokyo",
}
CONCURRENCY = {"skip": "SKIP", "ignore": "ALLOW", "concurrent": "ALLOW", "pipeline": "QUEUE"}
RULES = {"SUCCESS": "SUCCEED_WITHIN", "FINISH": "FINISH_WITHIN"}
RULE_NAMES = {v: k for k, v in RULES.items()}
MAX_SLAS = 100
SLA_MARK = "Azkaban SLA setting "  # then its position: slaInfo lists them in the order setSla gave


def failed(message: str) -> web.Response:
    return answer({"status": "error", "message": message})


def zone(name: str | None) -> str:
    """A zone id or abbreviation; none, or one batchgate does not know, is the server's (UTC), as Azkaban
    falls back to its server's zone."""
    if not name:
        return "UTC"
    name = ABBREVIATIONS.get(name.upper(), name)
    try:
        parse_zone(name)
    except TimingError:
        return "UTC"
    return name


def _spec(values: dict[str, str], job: str, **timing: Any) -> ScheduleSpec:
    if values.get("disabled", "[]").strip() not in ("", "[]"):
        raise BadRequest("disabled: a schedule of batchgate runs the whole flow; disabled jobs cannot be scheduled")
    action = values.get("failureAction")
    if action and action not in FAILURE_ACTIONS:
        raise BadRequest(f"failureAction: {action!r} is none of {sorted(FAILURE_ACTIONS)}")
    option = values.get("concurrentOption", "skip")
    variables = {key[len("flowOverride["):-1]: value for key, value in values.items()
                 if key.startswith("flowOverride[") and key.endswith("]")}
    try:
        return ScheduleSpec.model_validate({"job": job, "variables": variables,
                                            "concurrency": CONCURRENCY.get(option, "SKIP"), **timing})
    except ValidationError as exc:
        raise BadRequest(exc.errors()[0]["msg"]) from None


async def _save(request: web.Request, who: Principal, job: str, spec: ScheduleSpec) -> int:
    """Create the flow's schedule, or change the one it has; its number."""
    schedules = request.app[SCHEDULE_VIEWS]
    current = (await schedules.list_schedules(who, job, 0, 1)).schedules
    saved = await schedules.update(who, current[0].id, spec) if current else await schedules.create(who, spec)
    return await request.app[NUMBERS].number(Kind.SCHEDULE, saved.id)


async def schedule_cron_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    project, name = values.get("projectName", ""), values.get("flow", "")
    cron = values.get("cronExpression", "").strip()
    if not cron:
        return failed("Cron expression must exist.")
    try:
        job = await flow(request, who, project, name, Permission.SCHEDULE)
        spec = _spec(values, job.name, cron=cron, timezone=zone(values.get("timezone")))
        number = await _save(request, who, job.name, spec)
    except BadRequest as exc:
        if exc.message.startswith("cron:"):
            return failed(f"This expression <{cron}> can not be parsed to quartz cron. ({exc.message})")
        return failed(exc.message)
    except GatewayError as exc:
        return failed(exc.message)
    return answer({"message": f"{project}.{name} scheduled.", "scheduleId": number, "status": "success"})


TIME = re.compile(r"^(\d{1,2}),(\d{1,2}),(am|pm),([A-Za-z_/+-]+)$", re.IGNORECASE)
DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def first_time(schedule_time: str, schedule_date: str) -> tuple[datetime, str]:
    """`12,00,pm,PDT` and `07/22/2014` as a wall-clock time and its zone."""
    t = TIME.match(schedule_time.strip())
    d = DATE.match(schedule_date.strip())
    if t is None:
        raise BadRequest(f"scheduleTime: {schedule_time!r} is not hh,mm,am|pm,zone (12,00,pm,PDT)")
    if d is None:
        raise BadRequest(f"scheduleDate: {schedule_date!r} is not MM/DD/YYYY (07/22/2014)")
    hour, minute = int(t.group(1)), int(t.group(2))
    if not (1 <= hour <= 12 and minute < 60):
        raise BadRequest(f"scheduleTime: {schedule_time!r} is not a time of day")
    hour = hour % 12 + (12 if t.group(3).lower() == "pm" else 0)
    try:
        moment = datetime(int(d.group(3)), int(d.group(1)), int(d.group(2)), hour, minute)
    except ValueError:
        raise BadRequest(f"scheduleDate: {schedule_date!r} is not a date") from None
    return moment, zone(t.group(4))


async def schedule_flow(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """The period form: first at scheduleDate and scheduleTime, then every `period` if is_recurring=on
    (a one-time schedule is a Quartz expression with its year; one in the past is refused, it would never
    run)."""
    project, name = values.get("projectName", ""), values.get("flow") or values.get("flowName", "")
    try:
        moment, zone_name = first_time(values.get("scheduleTime", ""), values.get("scheduleDate", ""))
        job = await flow(request, who, project, name, Permission.SCHEDULE)
        if values.get("is_recurring") == "on":
            period = values.get("period", "")
            if not re.fullmatch(r"\d+[smhdwM]", period):
                return failed(f"Invalid schedule period unit '{period}': use a number and M, w, d, h, m or s")
            start = int(moment.replace(tzinfo=ZoneInfo(zone_name)).timestamp() * 1000)
            spec = _spec(values, job.name, every=period, timezone=zone_name, startAt=start)
        else:
            cron = f"0 {moment.minute} {moment.hour} {moment.day} {moment.month} ? {moment.year}"
            if moment.replace(tzinfo=ZoneInfo(zone_name)).timestamp() < time.time():
                return failed(f"{values.get('scheduleDate')} {values.get('scheduleTime')} is in the past: a "
                              "one-time schedule would never run")
            spec = _spec(values, job.name, cron=cron, timezone=zone_name)
        number = await _save(request, who, job.name, spec)
    except GatewayError as exc:
        return failed(exc.message)
    return answer({"message": f"{project}.{name} scheduled.", "scheduleId": number, "status": "success"})


async def fetch_schedule(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """The flow's schedule, or `{}` if it has none."""
    raw = values.get("projectId", "")
    key = await request.app[NUMBERS].key(Kind.PROJECT, int(raw)) if raw.isdigit() and len(raw) < 19 else None
    if key is None:
        return answer({"error": f"Project {raw} not found"})
    project, _ = parse_named_key(key)
    job = await flow(request, who, project, values.get("flowId", ""), Permission.READ)
    found = (await request.app[SCHEDULE_VIEWS].list_schedules(who, job.name, 0, 1)).schedules
    if not found:
        return answer({})
    s = found[0]
    number = await request.app[NUMBERS].number(Kind.SCHEDULE, s.id)
    tz = ZoneInfo(zone(s.timezone))
    next_times = s.next_fire_times

    def shown(ms: int | None) -> str | None:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S") if ms else None

    return answer({"schedule": {
        "cronExpression": s.cron, "nextExecTime": shown(next_times[0] if next_times else None),
        "period": s.every or "null", "submitUser": s.owner, "timezone": s.timezone,
        "executionOptions": {
            "notifyOnFirstFailure": False, "notifyOnLastFailure": False, "failureEmails": [], "successEmails": [],
            "pipelineLevel": None, "queueLevel": 0,
            "concurrentOption": {"SKIP": "skip", "ALLOW": "ignore", "QUEUE": "pipeline"}.get(s.concurrency, "skip"),
            "mailCreator": "default", "memoryCheck": True, "flowParameters": s.variables,
            "failureAction": "FINISH_CURRENTLY_RUNNING", "failureEmailsOverridden": False,
            "successEmailsOverridden": False, "pipelineExecutionId": None, "disabledJobs": [],
        },
        "scheduleId": str(number), "firstSchedTime": shown(s.start_at or s.create_time),
    }})


async def _schedule(request: web.Request, who: Principal, values: dict[str, str], permission: str) -> Schedule:
    raw = values.get("scheduleId", "")
    key = await request.app[NUMBERS].key(Kind.SCHEDULE, int(raw)) if raw.isdigit() and len(raw) < 19 else None
    if key is None:
        raise NotFound(f"Schedule with ID {raw} does not exist")
    try:
        return await request.app[SCHEDULE_VIEWS].get(who, key, permission)
    except NotFound:
        raise NotFound(f"Schedule with ID {raw} does not exist") from None


async def remove_sched(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    try:
        s = await _schedule(request, who, values, "SCHEDULE")
        await request.app[SCHEDULE_VIEWS].delete(who, s.id)
    except GatewayError as exc:
        return failed(exc.message)
    return answer({"message": f"flow {await _flow_name(request, s.job)} removed from Schedules.",
                   "status": "success"})


async def _flow_name(request: web.Request, job: str) -> str:
    found = await request.app[AZKABAN_VIEWS].find(job)
    return (flow_of(found.project, job) if found is not None and found.project else None) or job


async def set_sla(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    """`settings[i]` = `job,SUCCESS|FINISH,hh:mm,emailAction,killAction` (an empty job: the whole flow),
    `slaEmails` separated by `;` or `,`. They replace the schedule's SLAs, as on Azkaban."""
    s = await _schedule(request, who, values, "SCHEDULE")
    job = await request.app[AZKABAN_VIEWS].job(who, s.job, Permission.SCHEDULE)
    parts = job_parts([n.id for n in job.nodes])
    emails = [e.strip() for e in re.split(r"[;,]", values.get("slaEmails", "")) if e.strip()]
    specs = []
    keys = sorted((k for k in values if re.fullmatch(r"settings\[\d+\]", k)), key=lambda k: int(k[9:-1]))
    for index, key in enumerate(keys):
        fields = [f.strip() for f in values[key].split(",")]
        if len(fields) != 5:
            raise BadRequest(f"{key}: {values[key]!r} is not job,SUCCESS|FINISH,hh:mm,emailAction,killAction")
        name, rule, duration, email, kill = fields
        if rule not in RULES:
            raise BadRequest(f"{key}: rule {rule!r} is neither SUCCESS nor FINISH")
        if name and name not in parts:
            raise BadRequest(f"{key}: the flow has no job {name!r}")
        match = re.fullmatch(r"(\d{1,4}):(\d{1,2})", duration)
        minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else 0
        if minutes <= 0:
            raise BadRequest("azkaban.scheduler.ScheduleManagerException: Unable to parse duration for a SLA that "
                             f"needs to take actions! ({duration!r} is not hh:mm)")
        actions = (["ALERT"] if email == "true" else []) + (["KILL"] if kill == "true" else [])
        try:
            specs.append(SlaSpec.model_validate({
                "schedule": s.id, "node": parts[name][-1] if name else None, "rule": RULES[rule],
                "duration": f"{minutes}m", "actions": actions or ["ALERT"],
                "emails": emails if "ALERT" in actions else [],
                "description": f"{SLA_MARK}{index:04d}: {values[key]}"}))
        except ValidationError as exc:
            raise BadRequest(f"{key}: {exc.errors()[0]['msg']}") from None
    slas = request.app[SLA_VIEWS]
    for old in (await slas.list_slas(who, None, s.id, None, 0, MAX_SLAS)).slas:
        await slas.delete(who, old.id)
    for spec in specs:
        await slas.create(who, spec)
    return answer({})


async def sla_info(request: web.Request, who: Principal, values: dict[str, str]) -> web.Response:
    s = await _schedule(request, who, values, "READ")
    job = await request.app[AZKABAN_VIEWS].job(who, s.job, Permission.READ)
    parts = job_parts([n.id for n in job.nodes])
    owner = {node: name for name, nodes in parts.items() for node in nodes}
    found = (await request.app[SLA_VIEWS].list_slas(who, None, s.id, None, 0, MAX_SLAS)).slas
    slas = sorted(found, key=lambda sla: (sla.description or "", sla.create_time))  # in the order set
    settings = [{"duration": f"{sla.duration_ms // 60_000}m", "rule": RULE_NAMES.get(sla.rule, sla.rule),
                 "id": owner.get(sla.node, sla.node) if sla.node else "",
                 "actions": [{"ALERT": "EMAIL"}.get(a, a) for a in sla.actions
                             if a != "ALERT" or sla.emails]} for sla in slas]
    emails = sorted({e for sla in slas for e in sla.emails})
    return answer({"settings": settings, "slaEmails": emails, "allJobNames": sorted(parts)})


ACTIONS: dict[str, Any] = {
    "scheduleCronFlow": schedule_cron_flow,
    "scheduleFlow": schedule_flow,
    "fetchSchedule": fetch_schedule,
    "removeSched": remove_sched,
    "setSla": set_sla,
    "slaInfo": sla_info,
}


async def schedule(request: web.Request) -> web.StreamResponse:
    return await dispatch(request, ACTIONS)


