"""The client side of the `batchgate` command: submit, list, get, log, kill and the rest, built on
gateway.client. The root command (gateway/client/cli.py) registers them.
Exit codes: gateway.client.commands.common.Exit."""

from __future__ import annotations

import click

from gateway.client.commands.batches import COMMANDS as BATCH_COMMANDS
from gateway.client.commands.top import COMMANDS as TOP_COMMANDS
from gateway.client.commands.workflows import COMMANDS as WORKFLOW_COMMANDS


def register(group: click.Group) -> None:
    for command in [*BATCH_COMMANDS, *TOP_COMMANDS, *WORKFLOW_COMMANDS]:
        group.add_command(command)
