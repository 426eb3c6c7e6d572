"""How the CLI shows things: rich tables on a terminal, plain text when piped, JSON with --output json."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.contract.batches import TERMINAL_STATES, Batch, BatchState

STATE_STYLES: dict[str, str] = {
    BatchState.FINISHED: "green", BatchState.ERROR: "bold red", BatchState.CANCELED: "yellow",
    BatchState.RUNNING: "cyan", BatchState.PENDING: "blue", BatchState.PAUSED: "magenta", BatchState.INITIALIZED: "dim",
}
TERMINAL = TERMINAL_STATES


def dump(model: BaseModel | list[BaseModel] | dict[str, Any]) -> Any:
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json", by_alias=True)
    if isinstance(model, list):
        return [dump(m) for m in model]
    return {k: dump(v) if isinstance(v, BaseModel | list | dict) else v for k, v in model.items()}


def print_json(console: Console, value: Any, *, compact: bool = False) -> None:
    text = json.dumps(dump(value), separators=(",", ":")) if compact else json.dumps(dump(value), indent=2)
    console.file.write(text + "\n")
    console.file.flush()


def fmt_time(ms: int | None, zone: tzinfo | None = None) -> str:
    """A time in `zone` (default: this machine's), always with the zone's name: 2026-11-25 13:04:33 CET."""
    if not ms:
        return "-"
    when = datetime.fromtimestamp(ms / 1000, tz=zone) if zone else datetime.fromtimestamp(ms / 1000).astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$")


def print_rich(console: Console, renderable: Any) -> None:
    """Print a table (or any renderable) without the spaces rich pads each line with to the table's width."""
    with console.capture() as captured:
        console.print(renderable)
    lines = captured.get().split("\n")
    console.file.write("\n".join(_TRAILING.sub(r"\1", line) for line in lines))
    console.file.flush()


def fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def elapsed(batch: Batch) -> float:
    end = batch.end_time or int(time.time() * 1000)
    return max(0, end - batch.create_time) / 1000


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def batch_table(batches: Iterable[Batch], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", pad_edge=False, box=None)
    for column in ("ID", "NAME", "USER", "TYPE", "STATE", "CREATED", "DURATION", "APP ID"):
        table.add_column(column, no_wrap=column != "NAME", overflow="fold" if column == "NAME" else "ellipsis")
    for b in batches:
        table.add_row(b.id, b.name or "", b.user, b.batch_type, state_text(b.state), fmt_time(b.create_time),
                      fmt_seconds(elapsed(b)), b.app_id or "")
    return table


def batch_fields(batch: Batch) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("id", batch.id), ("name", batch.name or ""), ("user", batch.user), ("type", batch.batch_type),
        ("state", state_text(batch.state)), ("created", fmt_time(batch.create_time)),
        ("ended", fmt_time(batch.end_time)), ("duration", fmt_seconds(elapsed(batch))),
        ("app id", batch.app_id or ""), ("app url", batch.app_url or ""), ("app state", batch.app_state or ""),
        ("diagnostic", batch.app_diagnostic or ""), ("instance", batch.kyuubi_instance or ""),
    ]
    for key, info in sorted(batch.batch_info.items()):
        rows.append((f"info.{key}", info if info is not None else ""))
    for key, cell in rows:
        table.add_row(key, cell)
    return table
