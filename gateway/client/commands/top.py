"""batchgate top: the batches queued, paused and running, refreshed from the gateway's stream of batch
changes (GET /api/v1/batches/events) as they happen, like `kubectl get -w`.

On a terminal it is a live table; piped, the table once and then one line per change; with -o json, one
JSON object per line ({"snapshot": [...]}, then {"batch": {...}})."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.client import BatchChange
from gateway.client.commands.common import Cli, Exit, client_command
from gateway.client.commands.output import TERMINAL, fmt_seconds, fmt_time, print_json, state_text
from gateway.contract.batches import Batch

# An ended batch stays in the live table this long, with its final state, before it goes.
ENDED_SHOWN_SECONDS = 10.0
COLUMNS = ("ID", "NAME", "USER", "TYPE", "STATE", "CREATED", "ELAPSED", "APP ID")


def _elapsed(batch: Batch) -> str:
    end = batch.end_time or int(time.time() * 1000)
    return fmt_seconds(max(0, end - batch.create_time) / 1000)


def _row(batch: Batch) -> tuple[RenderableType, ...]:
    return (batch.id, batch.name or "", batch.user, batch.batch_type, state_text(batch.state),
            fmt_time(batch.create_time), _elapsed(batch), batch.app_id or "")


class View:
    """The batches shown: the last snapshot, updated by each change."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self._ended: dict[str, float] = {}

    def apply(self, change: BatchChange) -> None:
        if change.kind == "snapshot":
            self.batches = {b.id: b for b in change.batches}
            self._ended.clear()
        for batch in change.batches:
            self.batches[batch.id] = batch
            if batch.state in TERMINAL:
                self._ended.setdefault(batch.id, time.monotonic())

    def table(self) -> RenderableType:
        now = time.monotonic()
        for batch_id, since in list(self._ended.items()):
            if now - since > ENDED_SHOWN_SECONDS:
                del self._ended[batch_id]
                self.batches.pop(batch_id, None)
        shown = sorted(self.batches.values(), key=lambda b: (b.create_time, b.id), reverse=True)
        counts = {state: sum(1 for b in shown if b.state == state) for state in ("RUNNING", "PENDING", "INITIALIZED",
                                                                                   "PAUSED")}
        title = Text(f"batchgate top  {counts['RUNNING']} running, {counts['PENDING']} starting, "
                     f"{counts['INITIALIZED']} queued, {counts['PAUSED']} paused  "
                     f"at {datetime.now().astimezone().strftime('%H:%M:%S %Z')}", style="bold")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in COLUMNS:
            table.add_column(column, no_wrap=column != "NAME", overflow="fold" if column == "NAME" else "ellipsis")
        for batch in shown:
            table.add_row(*_row(batch))
        return Group(title, table)


def _line(batch: Batch) -> str:
    when = datetime.now().astimezone().strftime("%H:%M:%S %Z")
    return "  ".join([when, batch.id, batch.state, batch.batch_type, batch.user, _elapsed(batch),
                      batch.app_id or "-", batch.name or ""]).rstrip()


@click.command()
@client_command
def top(cli: Cli) -> int:
    """A live table of the batches queued, paused and running, changing as they do (Ctrl-C ends it)."""
    events = cli.client.batch_events()
    view = View()
    try:
        with events:
            if cli.json:
                for change in events:
                    key = "snapshot" if change.kind == "snapshot" else "batch"
                    value = change.batches if key == "snapshot" else change.batches[0]
                    print_json(cli.out, {key: value}, compact=True)
            elif cli.out.is_terminal:
                with Live(console=cli.out, get_renderable=view.table, refresh_per_second=2, screen=False):
                    for change in events:
                        view.apply(change)
            else:
                for change in events:
                    view.apply(change)
                    if change.kind == "snapshot":
                        cli.show(view.table())
                    else:
                        cli.out.file.write(_line(change.batches[0]) + "\n")
                        cli.out.file.flush()
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return Exit.OK


COMMANDS = [top]
