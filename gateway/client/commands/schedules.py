"""batchgate schedules: the schedules of jobs and their fire times (DESIGN.md §9)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.table import Table

from gateway.client import Client
from gateway.client.commands.batches import parse_conf
from gateway.client.commands.common import Cli, client_command
from gateway.client.commands.output import fmt_time
from gateway.client.commands.resources import dropped, emit, given, item_command, options, paging, request_body, table
from gateway.contract.schedules import Schedule, ScheduleList, TickList


def schedule_when(s: Schedule) -> str:
    return f"cron {s.cron}" if s.cron else f"every {s.every}"


def _zone(s: Schedule) -> ZoneInfo | None:
    try:
        return ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _in_zone(ms: int, zone: ZoneInfo | None) -> str:
    """A schedule's time in its own zone, and in this machine's when that differs."""
    there = fmt_time(ms, zone)
    here = fmt_time(ms)
    return there if there == here else f"{there} ({here})"


def schedule_view(s: Schedule) -> Table:
    last = s.last_fire
    zone = _zone(s)
    return table("FIELD", "VALUE", title=f"schedule {s.id}", rows=[
        ("job", s.job), ("when", schedule_when(s)), ("timezone", s.timezone), ("enabled", str(s.enabled).lower()),
        ("concurrency", s.concurrency), ("catchup", f"{s.catchup} (bound {s.catchup_bound})"),
        ("variables", ", ".join(f"{k}={v}" for k, v in s.variables.items()) or "-"),
        ("last fire", f"{_in_zone(last.fire_time, zone)} {last.outcome}" if last else "-"),
        ("next fires", "\n".join(_in_zone(t, zone) for t in s.next_fire_times) or "-"),
    ])


def schedules_view(page: ScheduleList) -> Table:
    return table("ID", "JOB", "WHEN", "TIMEZONE", "ENABLED", "NEXT FIRE", "LAST FIRE", rows=[
        (s.id, s.job, schedule_when(s), s.timezone, "yes" if s.enabled else "no",
         _in_zone(s.next_fire_times[0], _zone(s)) if s.next_fire_times else "-",
         f"{_in_zone(s.last_fire.fire_time, _zone(s))} {s.last_fire.outcome}" if s.last_fire else "-")
        for s in page.schedules
    ])


def ticks_view(ticks: TickList) -> Table:
    return table("FIRE TIME", "OUTCOME", "RUN", "REASON", rows=[
        (fmt_time(tick.fire_time), tick.outcome, tick.run_id or "-", tick.reason or "") for tick in ticks.ticks
    ])


# --- schedules ------------------------------------------------------------------------------

@click.group()
def schedules() -> None:
    """Schedules of jobs, with their next fire times."""


@schedules.command(name="list")
@click.option("--job", help="Only this job's schedules.")
@paging(size=100)
@client_command
def schedules_list(cli: Cli, job: str | None, offset: int, size: int) -> int:
    """List schedules and when each fires next."""
    page = cli.client.schedules(job=job, offset=offset, size=size)
    return emit(cli, page, schedules_view, note=f"{len(page.schedules)} of {page.total}")


item_command(schedules, "get", "schedule_id", Client.schedule, schedule_view,
              "Show a schedule and its next five fire times.")

_schedule_options = options(
    click.option("-f", "--file", "spec_file", metavar="FILE", help="The schedule as JSON or YAML."),
    click.option("--job", help="The job to run."),
    click.option("--cron", help="A cron expression (5 fields, or Quartz's 6 or 7)."),
    click.option("--every", help="A period: 30m, 1d, 1w."),
    click.option("--timezone", help="The zone the expression is read in (default UTC)."),
    click.option("--concurrency", type=click.Choice(["skip", "queue", "allow"], case_sensitive=False)),
    click.option("--catchup", type=click.Choice(["none", "last", "all"], case_sensitive=False)),
    click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A run variable (repeatable)."),
    click.option("--enable/--disable", "enabled", default=None, help="Switch the schedule on or off."),
)


def _schedule_fields(job: str | None, cron: str | None, every: str | None, timezone: str | None,
                     concurrency: str | None, catchup: str | None, variables: tuple[str, ...],
                     enabled: bool | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"job": job, "cron": cron, "every": every, "timezone": timezone,
                              "concurrency": concurrency, "catchup": catchup, "enabled": enabled}
    if variables:
        fields["variables"] = parse_conf(variables)
    if cron:
        fields["every"] = None
    return fields


@schedules.command(name="create")
@_schedule_options
@client_command
def schedules_create(cli: Cli, spec_file: str | None, **flags: Any) -> int:
    """Create a schedule, from flags or a file."""
    return emit(cli, cli.client.create_schedule(request_body(spec_file, **_schedule_fields(**flags))), schedule_view)


@schedules.command(name="update")
@click.argument("schedule_id")
@_schedule_options
@client_command
def schedules_update(cli: Cli, schedule_id: str, spec_file: str | None, **flags: Any) -> int:
    """Change a schedule: the given fields replace the current ones."""
    current = cli.client.schedule(schedule_id)
    body: dict[str, Any] = {
        "job": current.job, "description": current.description, "cron": current.cron, "every": current.every,
        "timezone": current.timezone, "variables": current.variables, "concurrency": current.concurrency,
        "catchup": current.catchup, "catchupBound": current.catchup_bound, "startAt": current.start_at,
        "endAt": current.end_at, "enabled": current.enabled,
    }
    fields = _schedule_fields(**flags)
    if fields.get("every"):
        body["cron"] = None
    body.update(request_body(spec_file, **fields))
    return emit(cli, cli.client.update_schedule(schedule_id, given(body)), schedule_view)


item_command(schedules, "delete", "schedule_id", Client.delete_schedule, dropped, "Delete a schedule.")


@schedules.command(name="ticks")
@click.argument("schedule_id")
@paging(size=50)
@client_command
def schedules_ticks(cli: Cli, schedule_id: str, offset: int, size: int) -> int:
    """The schedule's fire times and what became of each."""
    return emit(cli, cli.client.schedule_ticks(schedule_id, offset=offset, size=size), ticks_view)


COMMANDS = [schedules]
