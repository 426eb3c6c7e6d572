"""Waiting for a batch: a spinner with its state and elapsed time on a terminal, plain lines when piped;
following its log; Ctrl-C stops following (and kills the batch only with --kill-on-interrupt)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from gateway.client import BatchChange, ClientError
from gateway.client.commands.common import Cli, Exit, exit_for_state
from gateway.client.commands.output import STATE_STYLES, TERMINAL, fmt_seconds, print_json
from gateway.client.sync import SyncStream
from gateway.contract.batches import Batch, BatchState


class Progress:
    """Shows the batch's state: live on a terminal, one line per change off it. With `watch`, it follows
    the gateway's batch events itself (in a thread); otherwise the caller feeds it through update()."""

    def __init__(self, cli: Cli, batch_id: str, *, watch: bool = True) -> None:
        self._cli = cli
        self._batch_id = batch_id
        self._batch: Batch | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batchgate-progress", daemon=True)
        self._events: SyncStream[BatchChange] | None = cli.client.batch_events([batch_id]) if watch else None
        self._watcher = threading.Thread(target=self._watch, name="batchgate-events", daemon=True)
        self._live: Live | None = None
        self._spinner = Spinner("dots", text=Text(f"{batch_id}: waiting"), style="cyan")
        self._shown: str | None = None

    @property
    def batch(self) -> Batch | None:
        return self._batch

    def __enter__(self) -> Progress:
        if self._cli.err.is_terminal:
            # Log lines written to stdout go above the spinner only when stdout is this terminal too.
            self._live = Live(self._spinner, console=self._cli.err, transient=True, refresh_per_second=10,
                              redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)
            self._live.start()
        self._thread.start()
        if self._events is not None:
            self._watcher.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._events is not None:
            self._events.close()
            self._watcher.join(timeout=5)
        self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()

    def _watch(self) -> None:
        assert self._events is not None
        try:
            for change in self._events:
                for batch in change.batches:
                    if batch.id == self._batch_id and not self._stop.is_set():
                        self.update(batch)
        except ClientError:
            pass  # the main loop reports errors; this is only a display

    def _run(self) -> None:
        while not self._stop.is_set():  # only the elapsed time moves between events
            self._render()
            self._stop.wait(0.2)

    def update(self, batch: Batch) -> None:
        self._batch = batch
        if self._live is None and batch.state != self._shown and batch.state not in TERMINAL:
            self._shown = batch.state  # the end is reported once, by finished()
            self._cli.note(f"{batch.id} {batch.state} after {fmt_seconds(_elapsed(batch))}")
        self._render()

    def _render(self) -> None:
        batch = self._batch
        if self._live is None or batch is None:
            return
        text = Text()
        text.append(batch.state, style=STATE_STYLES.get(batch.state, ""))
        text.append(f"  {fmt_seconds(_elapsed(batch))}  {batch.id}")
        if batch.name:
            text.append(f"  {batch.name}", style="dim")
        self._spinner.update(text=text)


def _elapsed(batch: Batch) -> float:
    end = batch.end_time or int(time.time() * 1000)
    return max(0, end - batch.create_time) / 1000


def interrupted(cli: Cli, batch_id: str, kill: bool) -> int:
    if kill:
        result = cli.client.kill(batch_id)
        cli.note(f"interrupted; kill: {result.msg}")
    else:
        cli.note(f"stopped following; batch {batch_id} goes on (batchgate kill {batch_id} stops it)")
    return Exit.INTERRUPTED


def finished(cli: Cli, batch: Batch) -> int:
    if not cli.json:
        failed = batch.app_diagnostic and batch.state is not BatchState.FINISHED
        cli.note(f"{batch.id} {batch.state} in {fmt_seconds(_elapsed(batch))}"
                 + (f": {batch.app_diagnostic}" if failed else ""))
    return exit_for_state(batch.state)


def wait(cli: Cli, batch_id: str, *, kill_on_interrupt: bool) -> int:
    """Wait for the end without the log; exit with the batch's result."""
    try:
        with Progress(cli, batch_id, watch=False) as progress:
            final = cli.client.wait(batch_id, on_change=progress.update)
    except KeyboardInterrupt:
        return interrupted(cli, batch_id, kill_on_interrupt)
    if cli.json:
        print_json(cli.out, final)
    return finished(cli, final)


def follow(cli: Cli, batch_id: str, *, start: int = 0, kill_on_interrupt: bool = False,
           line_numbers: bool = False) -> int:
    """Print the log as it grows until the batch ends; exit with its result."""
    stream = cli.client.follow_log(batch_id, start)
    try:
        with Progress(cli, batch_id), stream:
            for line in stream:
                if cli.json:
                    print_json(cli.out, {"line": line.number, "text": line.text}, compact=True)
                else:
                    # sys.stdout each time: above a spinner it is rich's proxy, which keeps the two apart.
                    text = f"{line.number:>6}  {line.text}" if line_numbers else line.text
                    sys.stdout.write(text + "\n")
                    sys.stdout.flush()
    except KeyboardInterrupt:
        return interrupted(cli, batch_id, kill_on_interrupt)
    final = stream.batch or cli.client.batch(batch_id)
    if final.state not in TERMINAL:
        final = cli.client.wait(batch_id)
    if cli.json:
        print_json(cli.out, {"batch": final}, compact=True)
    return finished(cli, final)
