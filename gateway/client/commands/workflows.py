"""batchgate jobs | runs | schedules: DAG jobs, their runs, and their schedules (DESIGN.md §8, §9)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.console import RenderableType
from rich.table import Table

from gateway.client import Client
from gateway.client.commands.batches import parse_conf, parse_states, read_request_file
from gateway.client.commands.common import Cli, Exit, client_command
from gateway.client.commands.output import fmt_seconds, fmt_time, print_json, state_text
from gateway.contract.batches import DropResponse
from gateway.contract.jobs import Job, JobList, JobLog, NodeState, Run, RunList, RunState
from gateway.contract.schedules import Schedule, ScheduleList, TickList

RUN_EXIT = {RunState.SUCCEEDED: Exit.OK, RunState.FAILED: Exit.BATCH_ERROR, RunState.KILLED: Exit.BATCH_CANCELED}

V = TypeVar("V")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _table(*columns: str, rows: Iterable[Sequence[RenderableType]] = (), title: str | None = None) -> Table:
    """A borderless table with these columns and rows."""
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _emit(cli: Cli, value: V, view: Callable[[V], RenderableType], note: str | None = None) -> int:
    """`value` as JSON, or as `view` shows it followed by `note` on stderr."""
    cli.emit(value, lambda: view(value))
    if note is not None and not cli.json:
        cli.note(note)
    return Exit.OK


def _options(*options: Decorator) -> Decorator:
    """One decorator for several click options, listed in help in the order given."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _paging(size: int) -> Decorator:
    """--from and --size, for the commands that read one page of a list."""
    return _options(
        click.option("--from", "offset", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--size", type=click.IntRange(1, 10_000), default=size, show_default=True),
    )


def _item_command(group: click.Group, name: str, argument: str, call: Callable[[Client, str], V],
                  view: Callable[[V], RenderableType], doc: str) -> click.Command:
    """`group name ARGUMENT`: one client call on the argument, its answer shown by `view`."""

    @click.argument(argument)
    @client_command
    def command(cli: Cli, **arguments: str) -> int:
        # click passes the argument by its name, which each command chooses (NAME, RUN_ID, ...).
        return _emit(cli, call(cli.client, arguments[argument]), view)

    command.__doc__ = doc
    return group.command(name=name)(command)


def _message(result: DropResponse) -> str:
    """How a delete is shown: the gateway's own message."""
    return result.msg


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The entries with a value: None stands for an option that was not given."""
    return {k: v for k, v in values.items() if v is not None}


def _span(start: int, end: int) -> str:
    if not start:
        return "-"
    import time

    return fmt_seconds(max(0, (end or int(time.time() * 1000)) - start) / 1000)


def job_view(job: Job) -> Table:
    return _table("NODE", "TYPE", "RESOURCE", "DEPENDS ON", title=f"{job.name} v{job.version} ({job.owner})", rows=[
        (node.id, str(node.request.get("batchType", "")), str(node.request.get("resource") or ""),
         ", ".join(node.depends_on) or "-")
        for node in job.nodes
    ])


def jobs_view(page: JobList) -> Table:
    return _table("NAME", "OWNER", "VERSION", "NODES", "UPDATED", "DESCRIPTION", rows=[
        (job.name, job.owner, str(job.version), str(len(job.nodes)), fmt_time(job.updated_at), job.description or "")
        for job in page.jobs
    ])


def history_view(log: JobLog) -> Table:
    return _table("TIME", "WHO", "WHAT", "DETAIL", rows=[
        (fmt_time(entry.time), entry.actor, entry.action, ", ".join(f"{k}={v}" for k, v in entry.detail.items()))
        for entry in log.entries
    ])


def run_view(run: Run) -> Table:
    title = f"run {run.id} of {run.job} v{run.version}: {run.state}"
    return _table("NODE", "STATE", "BATCH", "ATTEMPT", "DURATION", "AFTER", title=title, rows=[
        (node.id, state_text(node.state), node.batch_id or "-", str(node.attempt),
         _span(node.start_time, node.end_time), ", ".join(node.in_) or "-")
        for node in run.nodes
    ])


def _run_row(run: Run) -> tuple[RenderableType, ...]:
    done = sum(1 for n in run.nodes if n.state is NodeState.SUCCEEDED)
    return (run.id, run.job, str(run.version), state_text(run.state), run.trigger, fmt_time(run.create_time),
            _span(run.start_time or run.create_time, run.end_time), f"{done}/{len(run.nodes)}")


def runs_view(page: RunList) -> Table:
    return _table("ID", "JOB", "VERSION", "STATE", "TRIGGER", "CREATED", "DURATION", "NODES",
                  rows=[_run_row(run) for run in page.runs])


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
    return _table("FIELD", "VALUE", title=f"schedule {s.id}", rows=[
        ("job", s.job), ("when", schedule_when(s)), ("timezone", s.timezone), ("enabled", str(s.enabled).lower()),
        ("concurrency", s.concurrency), ("catchup", f"{s.catchup} (bound {s.catchup_bound})"),
        ("variables", ", ".join(f"{k}={v}" for k, v in s.variables.items()) or "-"),
        ("last fire", f"{_in_zone(last.fire_time, zone)} {last.outcome}" if last else "-"),
        ("next fires", "\n".join(_in_zone(t, zone) for t in s.next_fire_times) or "-"),
    ])


def schedules_view(page: ScheduleList) -> Table:
    return _table("ID", "JOB", "WHEN", "TIMEZONE", "ENABLED", "NEXT FIRE", "LAST FIRE", rows=[
        (s.id, s.job, schedule_when(s), s.timezone, "yes" if s.enabled else "no",
         _in_zone(s.next_fire_times[0], _zone(s)) if s.next_fire_times else "-",
         f"{_in_zone(s.last_fire.fire_time, _zone(s))} {s.last_fire.outcome}" if s.last_fire else "-")
        for s in page.schedules
    ])


def ticks_view(ticks: TickList) -> Table:
    return _table("FIRE TIME", "OUTCOME", "RUN", "REASON", rows=[
        (fmt_time(tick.fire_time), tick.outcome, tick.run_id or "-", tick.reason or "") for tick in ticks.ticks
    ])


def _watch(cli: Cli, run_id: str) -> int:
    """Print each change of the run and its nodes until it ends; exit with its result."""
    events = cli.client.run_events(run_id)
    try:
        with events:
            for event in events:
                if cli.json:
                    print_json(cli.out, {"id": event.id, "kind": event.kind, "node": event.node,
                                         "state": event.state, "time": event.time}, compact=True)
                else:
                    what = f"node {event.node}" if event.node else "run"
                    cli.out.print(f"{fmt_time(event.time)}  {what}: ", state_text(event.state), sep="")
    except KeyboardInterrupt:
        cli.note(f"stopped watching; run {run_id} goes on (batchgate runs cancel {run_id} stops it)")
        return Exit.INTERRUPTED
    final = events.run or cli.client.run(run_id)
    if cli.json:
        print_json(cli.out, {"run": final}, compact=True)
    else:
        cli.show(run_view(final))
    return RUN_EXIT.get(final.state, Exit.OK)


def _spec(file: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = read_request_file(file) if file else {}
    body.update(_given(fields))
    return body


# --- jobs ---------------------------------------------------------------------------------

@click.group()
def jobs() -> None:
    """Jobs: saved batches and DAGs of batches."""


@jobs.command(name="list")
@click.option("--owner", help="Only this owner's jobs.")
@click.option("--project", help="Only this project's jobs.")
@_paging(size=100)
@client_command
def jobs_list(cli: Cli, owner: str | None, project: str | None, offset: int, size: int) -> int:
    """List jobs."""
    page = cli.client.jobs(owner=owner, project=project, offset=offset, size=size)
    return _emit(cli, page, jobs_view, note=f"{len(page.jobs)} of {page.total}")


_item_command(jobs, "get", "name", Client.job, job_view, "Show a job and its graph.")


@jobs.command(name="create")
@click.option("-f", "--file", "spec_file", required=True, metavar="FILE", help="The job as JSON or YAML ('-': stdin).")
@click.option("--name", help="The job's name (overrides the file's).")
@client_command
def jobs_create(cli: Cli, spec_file: str, name: str | None) -> int:
    """Create a job from a JSON or YAML file: {name, nodes: [{id, request, dependsOn}], ...}."""
    return _emit(cli, cli.client.create_job(_spec(spec_file, name=name)), job_view)


@jobs.command(name="update")
@click.argument("name")
@click.option("-f", "--file", "spec_file", required=True, metavar="FILE", help="The new definition.")
@client_command
def jobs_update(cli: Cli, name: str, spec_file: str) -> int:
    """Save a new version of a job."""
    return _emit(cli, cli.client.update_job(name, _spec(spec_file)), job_view)


_item_command(jobs, "delete", "name", Client.delete_job, _message, "Delete a job.")


@jobs.command(name="history")
@click.argument("name")
@_paging(size=100)
@client_command
def jobs_history(cli: Cli, name: str, offset: int, size: int) -> int:
    """Who created, changed, scheduled and triggered the job, and when."""
    return _emit(cli, cli.client.job_history(name, offset=offset, size=size), history_view)


@jobs.command(name="run")
@click.argument("name")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A variable (repeatable).")
@click.option("--disable", "disabled", multiple=True, metavar="NODE", help="Skip this node (repeatable).")
@click.option("--failure-action", type=click.Choice(["FINISH_CURRENTLY_RUNNING", "CANCEL_ALL", "FINISH_ALL_POSSIBLE"]))
@click.option("--follow", is_flag=True, help="Print node changes until the run ends; exit with its result.")
@client_command
def jobs_run(cli: Cli, name: str, variables: tuple[str, ...], disabled: tuple[str, ...],
             failure_action: str | None, follow: bool) -> int:
    """Trigger a run of a job."""
    run = cli.client.trigger(name, variables=parse_conf(variables), disabled=disabled, failure_action=failure_action)
    if follow:
        cli.note(f"run {run.id}")
        return _watch(cli, run.id)
    return _emit(cli, run, run_view)


# --- runs ---------------------------------------------------------------------------------

@click.group()
def runs() -> None:
    """Runs of jobs: their node states, logs and control."""


@runs.command(name="list")
@click.option("--job", help="Only this job's runs.")
@click.option("--state", "states", multiple=True, help="Only these states (repeatable, or a,b).")
@click.option("--project", help="Only this project's runs.")
@_paging(size=50)
@client_command
def runs_list(cli: Cli, job: str | None, states: tuple[str, ...], project: str | None, offset: int,
              size: int) -> int:
    """List runs, newest first."""
    page = cli.client.runs(job=job, state=parse_states(states), project=project, offset=offset, size=size)
    return _emit(cli, page, runs_view, note=f"{len(page.runs)} of {page.total}")


_item_command(runs, "get", "run_id", Client.run, run_view, "Show a run and the state of each node.")


@runs.command(name="watch")
@click.argument("run_id")
@client_command
def runs_watch(cli: Cli, run_id: str) -> int:
    """Print the run's changes until it ends; exit 0 if it SUCCEEDED, 1 if FAILED, 3 if KILLED."""
    return _watch(cli, run_id)


_item_command(runs, "cancel", "run_id", Client.cancel_run, run_view, "Cancel a run: its running nodes are killed.")
_item_command(runs, "pause", "run_id", Client.pause_run, run_view,
              "Pause a run: no new node is launched until it is resumed.")
_item_command(runs, "resume", "run_id", Client.resume_run, run_view, "Resume a paused run.")


@runs.command(name="retry")
@click.argument("run_id")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a variable (repeatable).")
@client_command
def runs_retry(cli: Cli, run_id: str, variables: tuple[str, ...]) -> int:
    """Re-run the failed and cancelled nodes and what depends on them."""
    return _emit(cli, cli.client.retry_run(run_id, variables=parse_conf(variables)), run_view)


@runs.command(name="log")
@click.argument("run_id")
@click.argument("node")
@click.option("--from", "start", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--size", type=click.IntRange(0, 10_000), default=1000, show_default=True)
@client_command
def runs_log(cli: Cli, run_id: str, node: str, start: int, size: int) -> int:
    """Print a window of a node's batch log."""
    window = cli.client.node_log(run_id, node, start, size)
    if cli.json:
        print_json(cli.out, window)
    else:
        for line in window.log_row_set:
            cli.out.file.write(line + "\n")
    return Exit.OK


# --- schedules ------------------------------------------------------------------------------

@click.group()
def schedules() -> None:
    """Schedules of jobs, with their next fire times."""


@schedules.command(name="list")
@click.option("--job", help="Only this job's schedules.")
@_paging(size=100)
@client_command
def schedules_list(cli: Cli, job: str | None, offset: int, size: int) -> int:
    """List schedules and when each fires next."""
    page = cli.client.schedules(job=job, offset=offset, size=size)
    return _emit(cli, page, schedules_view, note=f"{len(page.schedules)} of {page.total}")


_item_command(schedules, "get", "schedule_id", Client.schedule, schedule_view,
              "Show a schedule and its next five fire times.")

_schedule_options = _options(
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
    return _emit(cli, cli.client.create_schedule(_spec(spec_file, **_schedule_fields(**flags))), schedule_view)


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
    body.update(_spec(spec_file, **fields))
    return _emit(cli, cli.client.update_schedule(schedule_id, _given(body)), schedule_view)


_item_command(schedules, "delete", "schedule_id", Client.delete_schedule, _message, "Delete a schedule.")


@schedules.command(name="ticks")
@click.argument("schedule_id")
@_paging(size=50)
@client_command
def schedules_ticks(cli: Cli, schedule_id: str, offset: int, size: int) -> int:
    """The schedule's fire times and what became of each."""
    return _emit(cli, cli.client.schedule_ticks(schedule_id, offset=offset, size=size), ticks_view)


COMMANDS = [jobs, runs, schedules]
