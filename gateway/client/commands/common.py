"""What every client command shares: connection options, the client, output, errors and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from gateway.client import ApiError, Client, GatewayUnreachable, Unauthorized, Unavailable
from gateway.client.commands.config import ConfigError, Connection, resolve
from gateway.client.commands.output import print_json, print_rich
from gateway.contract.batches import BatchState


class Exit(IntEnum):
    """The CLI's exit codes (docs/cli.md)."""

    OK = 0
    BATCH_ERROR = 1  # --follow/--wait: the batch ended in ERROR
    USAGE = 2  # bad flags or arguments, an unreadable or invalid request file
    BATCH_CANCELED = 3  # --follow/--wait: the batch was CANCELED
    REFUSED = 4  # the gateway answered with an error (400, 403, 404, 409, 413, 429, 500)
    AUTH = 5  # 401: wrong user or password, or an expired or revoked token
    UNREACHABLE = 6  # no answer (wrong URL, gateway down, timeout), or 503 after the retries
    CONFIG = 7  # the config file is unreadable, invalid, or not private while holding a secret
    INTERRUPTED = 130  # Ctrl-C


def exit_for_state(state: BatchState) -> Exit:
    return {BatchState.FINISHED: Exit.OK, BatchState.ERROR: Exit.BATCH_ERROR,
            BatchState.CANCELED: Exit.BATCH_CANCELED}.get(state, Exit.OK)


@dataclass
class Cli:
    client: Client
    connection: Connection
    json: bool
    out: Console
    err: Console

    def emit(self, value: Any, render: Callable[[], Any] | None = None) -> None:
        """JSON with --output json; otherwise what `render` returns, through rich."""
        if self.json or render is None:
            print_json(self.out, value)
        else:
            self.show(render())

    def show(self, renderable: Any) -> None:
        """A table or text on stdout, without trailing padding."""
        print_rich(self.out, renderable)

    def fail(self, message: str, code: Exit) -> NoReturn:
        _fail(self.err, message, code)

    def note(self, message: str) -> None:
        """A message for the person, on stderr (stdout stays clean for data); long ones are not broken."""
        self.err.print(f"batchgate: {message}", markup=False, highlight=False, soft_wrap=True)


def _fail(err: Console, message: str, code: Exit) -> NoReturn:
    err.print(f"batchgate: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(int(code))


CONNECTION_OPTIONS = [
    click.option("--url", metavar="URL", help="Gateway URL (default http://127.0.0.1:10099). [BATCHGATE_URL]"),
    click.option("--user", metavar="NAME", help="User name for HTTP Basic. [BATCHGATE_USER]"),
    click.option("--password", metavar="SECRET",
                 help="Password (prefer BATCHGATE_PASSWORD or the config file). [BATCHGATE_PASSWORD]"),
    click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                 help="Config file (default ~/.config/batchgate/config.toml). [BATCHGATE_CONFIG]"),
    click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True,
                 help="json: machine-readable output on stdout."),
]


def client_command(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Adds the connection options, builds the client, maps errors to exit codes."""

    @functools.wraps(fn)
    def wrapper(url: str | None, user: str | None, password: str | None, config_file: Path | None,
                output: str, **kwargs: Any) -> None:
        err = Console(stderr=True, highlight=False)
        out = Console(highlight=False, soft_wrap=output == "json")
        if not out.is_terminal:
            out = Console(highlight=False, soft_wrap=output == "json", width=240)  # piped: no wrapping
        try:
            connection = resolve(url, user, password, config_file)
        except ConfigError as exc:
            _fail(err, str(exc), Exit.CONFIG)

        def retrying(attempt: int, delay: float, message: str) -> None:
            err.print(f"batchgate: gateway unavailable ({message}); retry {attempt} in {delay:.0f}s",
                      markup=False, highlight=False)

        client = Client(connection.url, user=connection.user, password=connection.password,
                        token=connection.token, on_retry=retrying)
        cli = Cli(client, connection, output == "json", out, err)
        code: int | None = Exit.OK
        try:
            code = fn(cli, **kwargs)
        except Unauthorized as exc:
            who = f"user {connection.user!r}" if connection.user else "no user given"
            if connection.token and not connection.user:
                who = "session token"
            if connection.user and not connection.password and not connection.token:
                _fail(err, f"authentication failed at {connection.url}: no password given for user "
                           f"{connection.user!r}; set --password, BATCHGATE_PASSWORD or password in the config "
                           "file", Exit.AUTH)
            _fail(err, f"authentication failed at {connection.url}: {exc.message} ({who}; set --user and "
                       f"--password, BATCHGATE_USER and BATCHGATE_PASSWORD, or the config file)", Exit.AUTH)
        except Unavailable as exc:
            _fail(err, f"gateway unavailable at {connection.url}: {exc.message}", Exit.UNREACHABLE)
        except GatewayUnreachable as exc:
            _fail(err, f"{exc} (check --url or BATCHGATE_URL)", Exit.UNREACHABLE)
        except ApiError as exc:
            _fail(err, f"{exc.message} ({exc.status})", Exit.REFUSED)
        except KeyboardInterrupt:
            _fail(err, "interrupted", Exit.INTERRUPTED)
        finally:
            client.close()
        sys.exit(int(code or 0))

    for option in reversed(CONNECTION_OPTIONS):
        wrapper = option(wrapper)
    return wrapper
