"""The `batchgate` command: the client commands (gateway/client/commands/) and, loaded by name only when
they are run, the server's commands (`serve`). So `batchgate submit` imports nothing of the server, and
an installation without the server's dependencies still has every client command."""

from __future__ import annotations

import importlib

import click

from gateway.client.commands import register as register_client_commands

# The server's commands, by "module:attribute". They are imported only when run (or listed by --help).
SERVER_COMMANDS = {
    "serve": "gateway.instance.serve:serve",
    "db": "gateway.instance.serve:db",
}


class Batchgate(click.Group):
    """A group whose server commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SERVER_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SERVER_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return _missing_server(cmd_name, exc)
        command: click.Command = getattr(module, attribute)
        return command


def _missing_server(name: str, exc: ImportError) -> click.Command:
    def fail() -> None:
        raise click.ClickException(f"`{name}` needs the gateway's server dependencies ({exc.name} is missing): "
                                   "pip install batchgate")

    return click.Command(name, callback=fail, help="Needs the gateway's server dependencies.")


@click.group(cls=Batchgate)
@click.version_option(package_name="batchgate")
def main() -> None:
    """batchgate: a batch submission gateway (Kyuubi-compatible REST API)."""


register_client_commands(main)


if __name__ == "__main__":
    main()
