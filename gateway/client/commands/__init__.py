"""The client side of the `batchgate` command: submit, list, get, log, kill and the rest, built on
gateway.client. The root command (gateway/client/cli.py) registers them.
Exit codes: gateway.client.commands.common.Exit."""

from __future__ import annotations

import click

from gateway.client.commands.batches import COMMANDS as BATCH_COMMANDS
from gateway.client.commands.jobs import COMMANDS as JOB_COMMANDS
from gateway.client.commands.schedules import COMMANDS as SCHEDULE_COMMANDS
from gateway.client.commands.top import COMMANDS as TOP_COMMANDS


def register(group: click.Group) -> None:
    for command in [*BATCH_COMMANDS, *TOP_COMMANDS, *JOB_COMMANDS, *SCHEDULE_COMMANDS]:
        group.add_command(command)
