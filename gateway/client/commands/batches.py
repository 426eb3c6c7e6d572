"""batchgate submit | list | get | log | kill | pause | resume | restart | drop | details."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from rich.table import Table

from gateway.client.commands.common import Cli, Exit, client_command
from gateway.client.commands.follow import follow, wait
from gateway.client.commands.output import batch_fields, batch_table, fmt_seconds, print_json
from gateway.contract.batches import BatchList, BatchRequest

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, option: str) -> int | None:
    """Epoch ms, an ISO date or time (local), or an age like 30m, 2h, 7d (that long ago)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    match = _RELATIVE.match(text)
    if match:
        return int((time.time() - float(match.group(1)) * _UNIT[match.group(2)]) * 1000)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use epoch ms, an ISO date/time or an age like 30m, 2h, 7d",
                                 param_hint=option) from None


def read_request_file(path: str) -> dict[str, Any]:
    """A BatchRequest as JSON or YAML ('-' reads stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror or exc}", param_hint="-f") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: not valid {'JSON' if path.endswith('.json') else 'JSON or YAML'}: "
                                 f"{exc}", param_hint="-f") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: must hold an object (a BatchRequest)", param_hint="-f")
    return data


def parse_conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint="--conf")
        conf[key.strip()] = value
    return conf


def parse_states(states: tuple[str, ...]) -> list[str] | None:
    """--state values, repeated or comma-separated, upper-cased; None when none are given."""
    return [s.strip().upper() for part in states for s in part.split(",") if s.strip()] or None


_HEX_PREFIX = re.compile(r"^[0-9a-fA-F-]{4,36}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def batch_ref(cli: Cli, text: str) -> str:
    """A batch id from a whole id or a unique prefix of one (the web page shows the first 8 characters)."""
    if _UUID.match(text) or not _HEX_PREFIX.match(text):
        return text  # a whole id, or something the gateway will name as not an id
    prefix = text.replace("-", "").lower()
    page = cli.client.batches(key=text, size=50, desc=True)
    found = [b.id for b in page.batches if b.id.replace("-", "").startswith(prefix)]
    if len(found) == 1:
        return found[0]
    if not found:
        cli.fail(f"no batch you may see has an id starting with {text!r}", Exit.REFUSED)
    shown = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
    cli.fail(f"{text!r} is the start of {len(found)} batch ids ({shown}): give more of the id", Exit.USAGE)


def build_request(file: str | None, batch_type: str | None, resource: str | None, class_name: str | None,
                  name: str | None, args: list[str], conf: dict[str, str]) -> BatchRequest:
    body: dict[str, Any] = read_request_file(file) if file else {}
    for key, value in (("batchType", batch_type), ("resource", resource), ("className", class_name),
                       ("name", name)):
        if value is not None:
            body[key] = value
    if args:
        body["args"] = args
    if conf:
        body["conf"] = {**(body.get("conf") or {}), **conf}
    if "batchType" not in body and "batch_type" not in body:
        raise click.UsageError("no batch type: give --type (or batchType in the request file)")
    try:
        return BatchRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise click.UsageError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


@click.command()
@click.option("-f", "--file", "request_file", metavar="FILE", help="A BatchRequest as JSON or YAML ('-': stdin).")
@click.option("--type", "batch_type", metavar="TYPE", help="A batch type the gateway accepts (`batchgate engines`).")
@click.option("--resource", help="The jar, .py file or program to run.")
@click.option("--class-name", help="Main class (Spark, Flink).")
@click.option("--name", help="A name for the batch.")
@click.option("--arg", "args", multiple=True, help="An argument for the program (repeatable, in order).")
@click.option("--conf", "conf", multiple=True, metavar="KEY=VALUE", help="A conf entry (repeatable).")
@click.option("--upload", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Upload this file as the resource.")
@click.option("--follow", is_flag=True, help="Stream the log until the batch ends; exit with its result.")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the batch ends (no log); exit with its result.")
@click.option("--kill-on-interrupt", is_flag=True, help="With --follow/--wait: Ctrl-C kills the batch too.")
@click.option("-n", "--line-numbers", is_flag=True, help="With --follow: prefix each line with its number.")
@click.argument("extra_args", nargs=-1, metavar="[-- ARGS...]")
@client_command
def submit(cli: Cli, request_file: str | None, batch_type: str | None, resource: str | None,
           class_name: str | None, name: str | None, args: tuple[str, ...], conf: tuple[str, ...],
           upload: Path | None, follow: bool, wait_: bool, kill_on_interrupt: bool, line_numbers: bool,
           extra_args: tuple[str, ...]) -> int:
    """Submit a batch, from flags or from a request file (flags win; --conf entries are merged)."""
    request = build_request(request_file, batch_type, resource, class_name, name, [*args, *extra_args],
                            parse_conf(conf))
    batch = cli.client.submit(request, resource_file=upload)
    if follow or wait_:
        cli.note(f"submitted {batch.id}")
        if follow:
            return _follow(cli, batch.id, 0, kill_on_interrupt, line_numbers)
        return wait(cli, batch.id, kill_on_interrupt=kill_on_interrupt)
    cli.emit(batch, lambda: f"{batch.id}  {batch.state}")
    return Exit.OK


def _follow(cli: Cli, batch_id: str, start: int, kill_on_interrupt: bool, line_numbers: bool) -> int:
    return follow(cli, batch_id, start=start, kill_on_interrupt=kill_on_interrupt, line_numbers=line_numbers)


@click.command(name="list")
@click.option("--type", "batch_type", metavar="TYPE", help="Only this batch type.")
@click.option("--state", "states", multiple=True, metavar="STATE", help="Only these states (repeatable, or a,b).")
@click.option("--batch-user", metavar="USER", help="Only this user's batches (others' need admin).")
@click.option("--name", help="Only batches with exactly this name.")
@click.option("--key", help="An id prefix, or words of the name.")
@click.option("--since", help="Created at or after: epoch ms, an ISO date/time, or an age like 2h.")
@click.option("--until", help="Ended at or before: epoch ms, an ISO date/time, or an age like 2h.")
@click.option("--sort", type=click.Choice(["createTime", "endTime", "name", "duration"]), help="Sort order.")
@click.option("--asc", is_flag=True, help="Oldest (or smallest) first; the default is newest first.")
@click.option("--attempts-of", metavar="ID", help="A batch and all its restarts.")
@click.option("--from", "offset", type=click.IntRange(min=0), default=0, show_default=True, help="Offset.")
@click.option("--size", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Page size.")
@click.option("--all", "all_", is_flag=True, help="Every match, page by page.")
@client_command
def list_batches(cli: Cli, batch_type: str | None, states: tuple[str, ...], batch_user: str | None,
                 name: str | None, key: str | None, since: str | None, until: str | None, sort: str | None,
                 asc: bool, attempts_of: str | None, offset: int, size: int, all_: bool) -> int:
    """List batches, newest first, with every filter of the API."""
    filters: dict[str, Any] = dict(
        batch_type=batch_type, state=parse_states(states), user=batch_user, name=name, key=key,
        create_time=parse_time(since, "--since"), end_time=parse_time(until, "--until"), sort=sort,
        attempts_of=batch_ref(cli, attempts_of) if attempts_of else None, desc=not asc,
    )
    if all_:
        batches = list(cli.client.iter_batches(**filters))
        page = BatchList(from_=0, total=len(batches), batches=batches)
    else:
        page = cli.client.batches(offset=offset, size=size, **filters)
    if cli.json:
        print_json(cli.out, page)
        return Exit.OK
    if page.batches:
        cli.show(batch_table(page.batches))
    first = page.from_ + 1 if page.batches else page.from_
    cli.note(f"{first}-{page.from_ + len(page.batches)} of {page.total}")
    return Exit.OK


@click.command()
@click.argument("batch_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the batch ends; exit with its result.")
@client_command
def get(cli: Cli, batch_id: str, wait_: bool) -> int:
    """Show one batch (its id, or the start of it)."""
    batch_id = batch_ref(cli, batch_id)
    if wait_:
        return wait(cli, batch_id, kill_on_interrupt=False)
    batch = cli.client.batch(batch_id)
    cli.emit(batch, lambda: batch_fields(batch))
    return Exit.OK


@click.command()
@click.argument("batch_id")
@click.option("--from", "start", type=click.IntRange(min=-1), default=0, show_default=True,
              help="First line (0-based); -1 with --size: the last lines.")
@click.option("--size", type=click.IntRange(0, 10_000), default=1000, show_default=True, help="Lines to read.")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines until the batch ends.")
@click.option("-n", "--line-numbers", is_flag=True, help="Prefix each line with its number.")
@click.option("--kill-on-interrupt", is_flag=True, help="With -f: Ctrl-C kills the batch too.")
@client_command
def log(cli: Cli, batch_id: str, start: int, size: int, follow_: bool, line_numbers: bool,
        kill_on_interrupt: bool) -> int:
    """Print a window of a batch log, or follow it (-f) until the batch ends."""
    batch_id = batch_ref(cli, batch_id)
    if follow_:
        return _follow(cli, batch_id, max(start, 0), kill_on_interrupt, line_numbers)
    window = cli.client.log(batch_id, start, size)
    if cli.json:
        print_json(cli.out, window)
        return Exit.OK
    first = start if start >= 0 else None
    for i, line in enumerate(window.log_row_set):
        prefix = f"{first + i:>6}  " if line_numbers and first is not None else ""
        sys.stdout.write(prefix + line + "\n")
    return Exit.OK


@click.command()
@click.argument("batch_id")
@client_command
def kill(cli: Cli, batch_id: str) -> int:
    """Kill a batch (a queued one is canceled at once). Exits 4 if it had already ended."""
    result = cli.client.kill(batch_ref(cli, batch_id))
    if cli.json:
        print_json(cli.out, result)
    elif result.success:
        cli.show(result.msg)
    else:
        cli.note(result.msg)
    return Exit.OK if result.success else Exit.REFUSED


def _action(name: str, doc: str) -> click.Command:
    @click.argument("batch_id")
    @click.option("--follow", is_flag=True, help="Then follow the (new) batch's log until it ends.")
    @client_command
    def command(cli: Cli, batch_id: str, follow: bool) -> int:
        batch = getattr(cli.client, name)(batch_ref(cli, batch_id))
        if follow:
            return _follow(cli, batch.id, 0, False, False)
        cli.emit(batch, lambda: f"{batch.id}  {batch.state}")
        return Exit.OK

    command.__doc__ = doc
    return click.command(name=name)(command)


pause = _action("pause", "Pause a batch: hold a queued one, or suspend a running one (LOCAL, Flink).")
resume = _action("resume", "Resume a paused batch.")
restart = _action("restart", "Run an ended batch again, as a new batch; prints the new one.")


@click.command()
@click.argument("batch_id")
@client_command
def drop(cli: Cli, batch_id: str) -> int:
    """Remove an ended batch, its log and its files (the audit log keeps its entries)."""
    result = cli.client.drop(batch_ref(cli, batch_id))
    cli.emit(result, lambda: result.msg)
    return Exit.OK


@click.command()
@click.argument("batch_id")
@client_command
def details(cli: Cli, batch_id: str) -> int:
    """A batch's steps, counters and attempts."""
    info = cli.client.details(batch_ref(cli, batch_id))
    if cli.json:
        print_json(cli.out, info)
        return Exit.OK
    cli.show(batch_fields(info.batch))
    steps = Table(title="steps", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in ("STEP", "KIND", "DURATION"):
        steps.add_column(column)
    for step in info.steps:
        steps.add_row(step.name, step.kind, fmt_seconds(step.duration / 1000) if step.duration is not None else "-")
    cli.show(steps)
    if info.counters:
        counters = Table(title="counters", title_justify="left", box=None, header_style="bold", pad_edge=False)
        counters.add_column("COUNTER")
        counters.add_column("VALUE", justify="right")
        for key, value in sorted(info.counters.items()):
            counters.add_row(key, str(value))
        cli.show(counters)
    if len(info.attempts) > 1:
        cli.show(batch_table(info.attempts, title="attempts"))
    return Exit.OK


@click.command()
@client_command
def engines(cli: Cli) -> int:
    """The gateway's engines and the batch types it accepts."""
    found = cli.client.engines()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ENGINE", "BATCH TYPES", "ENABLED"):
        table.add_column(column)
    for engine in found.engines:
        table.add_row(engine.name, ", ".join(engine.batch_types), ", ".join(engine.enabled) or "-")
    cli.emit(found, lambda: table)
    return Exit.OK


COMMANDS = [submit, list_batches, get, log, kill, pause, resume, restart, drop, details, engines]
