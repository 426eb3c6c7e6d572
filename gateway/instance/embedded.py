"""The embedded default: a Postgres of our own under the data dir, through pgserver."""

from __future__ import annotations

import asyncio
import subprocess
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("gateway.embedded")
ATTEMPTS = 3


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    async def start(self) -> str:
        """Start (or join) the server and return its connection URI."""
        with warnings.catch_warnings():
            # pgserver keeps a lock file in the user's runtime dir, found at import; without XDG_RUNTIME_DIR
            # (a container, an ssh session) platformdirs warns and falls back to /tmp/runtime-<uid>, which
            # serves as well: the warning told every start's reader nothing they could act on.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
            import pgserver  # type: ignore[attr-defined,unused-ignore]

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # initdb and pg_ctl block; keep them off the event loop. pgserver gives pg_ctl a fixed 10 s,
        # which a loaded machine can miss while Postgres is still coming up: try again, joining it.
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._server = await asyncio.to_thread(
                    pgserver.get_server, self.pgdata, cleanup_mode="stop"  # type: ignore[attr-defined]
                )
                break
            except subprocess.TimeoutExpired:
                if attempt == ATTEMPTS:
                    raise
                log.warning("embedded_postgres.slow_start", attempt=attempt)
                await asyncio.sleep(2.0)
        uri: str = self._server.get_uri()
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        return uri

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("embedded_postgres.stopped")
