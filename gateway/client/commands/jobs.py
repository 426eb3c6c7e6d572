"""batchgate jobs | runs: DAG jobs and their runs (DESIGN.md §8)."""

from __future__ import annotations

import click
from rich.console import RenderableType
from rich.table import Table

from gateway.client import Client
from gateway.client.commands.batches import parse_conf, parse_states
from gateway.client.commands.common import Cli, Exit, client_command
from gateway.client.commands.output import fmt_seconds, fmt_time, print_json, state_text
from gateway.client.commands.resources import dropped, emit, item_command, paging, request_body, table
from gateway.contract.jobs import Job, JobList, JobLog, NodeState, Run, RunList, RunState

RUN_EXIT = {RunState.SUCCEEDED: Exit.OK, RunState.FAILED: Exit.BATCH_ERROR, RunState.KILLED: Exit.BATCH_CANCELED}


def _span(start: int, end: int) -> str:
    if not start:
        return "-"
    import time

    return fmt_seconds(max(0, (end or int(time.time() * 1000)) - start) / 1000)


def job_view(job: Job) -> Table:
    return table("NODE", "TYPE", "RESOURCE", "DEPENDS ON", title=f"{job.name} v{job.version} ({job.owner})", rows=[
        (node.id, str(node.request.get("batchType", "")), str(node.request.get("resource") or ""),
         ", ".join(node.depends_on) or "-")
        for node in job.nodes
    ])


def jobs_view(page: JobList) -> Table:
    return table("NAME", "OWNER", "VERSION", "NODES", "UPDATED", "DESCRIPTION", rows=[
        (job.name, job.owner, str(job.version), str(len(job.nodes)), fmt_time(job.updated_at), job.description or "")
        for job in page.jobs
    ])


def history_view(log: JobLog) -> Table:
    return table("TIME", "WHO", "WHAT", "DETAIL", rows=[
        (fmt_time(entry.time), entry.actor, entry.action, ", ".join(f"{k}={v}" for k, v in entry.detail.items()))
        for entry in log.entries
    ])


def run_view(run: Run) -> Table:
    title = f"run {run.id} of {run.job} v{run.version}: {run.state}"
    return table("NODE", "STATE", "BATCH", "ATTEMPT", "DURATION", "AFTER", title=title, rows=[
        (node.id, state_text(node.state), node.batch_id or "-", str(node.attempt),
         _span(node.start_time, node.end_time), ", ".join(node.in_) or "-")
        for node in run.nodes
    ])


def _run_row(run: Run) -> tuple[RenderableType, ...]:
    done = sum(1 for n in run.nodes if n.state is NodeState.SUCCEEDED)
    return (run.id, run.job, str(run.version), state_text(run.state), run.trigger, fmt_time(run.create_time),
            _span(run.start_time or run.create_time, run.end_time), f"{done}/{len(run.nodes)}")


def runs_view(page: RunList) -> Table:
    return table("ID", "JOB", "VERSION", "STATE", "TRIGGER", "CREATED", "DURATION", "NODES",
                  rows=[_run_row(run) for run in page.runs])


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


# --- jobs ---------------------------------------------------------------------------------

@click.group()
def jobs() -> None:
    """Jobs: saved batches and DAGs of batches."""


@jobs.command(name="list")
@click.option("--owner", help="Only this owner's jobs.")
@click.option("--project", help="Only this project's jobs.")
@paging(size=100)
@client_command
def jobs_list(cli: Cli, owner: str | None, project: str | None, offset: int, size: int) -> int:
    """List jobs."""
    page = cli.client.jobs(owner=owner, project=project, offset=offset, size=size)
    return emit(cli, page, jobs_view, note=f"{len(page.jobs)} of {page.total}")


item_command(jobs, "get", "name", Client.job, job_view, "Show a job and its graph.")


@jobs.command(name="create")
@click.option("-f", "--file", "spec_file", required=True, metavar="FILE", help="The job as JSON or YAML ('-': stdin).")
@click.option("--name", help="The job's name (overrides the file's).")
@client_command
def jobs_create(cli: Cli, spec_file: str, name: str | None) -> int:
    """Create a job from a JSON or YAML file: {name, nodes: [{id, request, dependsOn}], ...}."""
    return emit(cli, cli.client.create_job(request_body(spec_file, name=name)), job_view)


@jobs.command(name="update")
@click.argument("name")
@click.option("-f", "--file", "spec_file", required=True, metavar="FILE", help="The new definition.")
@client_command
def jobs_update(cli: Cli, name: str, spec_file: str) -> int:
    """Save a new version of a job."""
    return emit(cli, cli.client.update_job(name, request_body(spec_file)), job_view)


item_command(jobs, "delete", "name", Client.delete_job, dropped, "Delete a job.")


@jobs.command(name="history")
@click.argument("name")
@paging(size=100)
@client_command
def jobs_history(cli: Cli, name: str, offset: int, size: int) -> int:
    """Who created, changed, scheduled and triggered the job, and when."""
    return emit(cli, cli.client.job_history(name, offset=offset, size=size), history_view)


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
    return emit(cli, run, run_view)


# --- runs ---------------------------------------------------------------------------------

@click.group()
def runs() -> None:
    """Runs of jobs: their node states, logs and control."""


@runs.command(name="list")
@click.option("--job", help="Only this job's runs.")
@click.option("--state", "states", multiple=True, help="Only these states (repeatable, or a,b).")
@click.option("--project", help="Only this project's runs.")
@paging(size=50)
@client_command
def runs_list(cli: Cli, job: str | None, states: tuple[str, ...], project: str | None, offset: int,
              size: int) -> int:
    """List runs, newest first."""
    page = cli.client.runs(job=job, state=parse_states(states), project=project, offset=offset, size=size)
    return emit(cli, page, runs_view, note=f"{len(page.runs)} of {page.total}")


item_command(runs, "get", "run_id", Client.run, run_view, "Show a run and the state of each node.")


@runs.command(name="watch")
@click.argument("run_id")
@client_command
def runs_watch(cli: Cli, run_id: str) -> int:
    """Print the run's changes until it ends; exit 0 if it SUCCEEDED, 1 if FAILED, 3 if KILLED."""
    return _watch(cli, run_id)


item_command(runs, "cancel", "run_id", Client.cancel_run, run_view, "Cancel a run: its running nodes are killed.")
item_command(runs, "pause", "run_id", Client.pause_run, run_view,
              "Pause a run: no new node is launched until it is resumed.")
item_command(runs, "resume", "run_id", Client.resume_run, run_view, "Resume a paused run.")


@runs.command(name="retry")
@click.argument("run_id")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a variable (repeatable).")
@client_command
def runs_retry(cli: Cli, run_id: str, variables: tuple[str, ...]) -> int:
    """Re-run the failed and cancelled nodes and what depends on them."""
    return emit(cli, cli.client.retry_run(run_id, variables=parse_conf(variables)), run_view)


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


COMMANDS = [jobs, runs]
