"""What the commands over the gateway's resources (jobs, runs, schedules) share: one decorator for several
options, paging, a command on one item, a request body from a file and flags, and a value shown as a table or
as JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from rich.console import RenderableType
from rich.table import Table

from gateway.client import Client
from gateway.client.commands.batches import read_request_file
from gateway.client.commands.common import Cli, Exit, client_command
from gateway.contract.batches import DropResponse

V = TypeVar("V")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def table(*columns: str, rows: Iterable[Sequence[RenderableType]] = (), title: str | None = None) -> Table:
    """A borderless table with these columns and rows."""
    shown = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*row)
    return shown


def emit(cli: Cli, value: V, view: Callable[[V], RenderableType], note: str | None = None) -> int:
    """`value` as JSON, or as `view` shows it followed by `note` on stderr."""
    cli.emit(value, lambda: view(value))
    if note is not None and not cli.json:
        cli.note(note)
    return Exit.OK


def options(*decorators: Decorator) -> Decorator:
    """One decorator for several click options, listed in help in the order given."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(decorators):
            fn = option(fn)
        return fn

    return apply


def paging(size: int) -> Decorator:
    """--from and --size, for the commands that read one page of a list."""
    return options(
        click.option("--from", "offset", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--size", type=click.IntRange(1, 10_000), default=size, show_default=True),
    )


def item_command(group: click.Group, name: str, argument: str, call: Callable[[Client, str], V],
                 view: Callable[[V], RenderableType], doc: str) -> click.Command:
    """`group name ARGUMENT`: one client call on the argument, its answer shown by `view`."""

    @click.argument(argument)
    @client_command
    def command(cli: Cli, **arguments: str) -> int:
        # click passes the argument by its name, which each command chooses (NAME, RUN_ID, ...).
        return emit(cli, call(cli.client, arguments[argument]), view)

    command.__doc__ = doc
    return group.command(name=name)(command)


def dropped(result: DropResponse) -> str:
    """How a delete is shown: the gateway's own message."""
    return result.msg


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The entries with a value: None stands for an option that was not given."""
    return {k: v for k, v in values.items() if v is not None}


def request_body(file: str | None, **fields: Any) -> dict[str, Any]:
    """The request file's body (JSON or YAML), with the flags that were given in place of its fields."""
    body: dict[str, Any] = read_request_file(file) if file else {}
    body.update(given(fields))
    return body
