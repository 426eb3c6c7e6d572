"""A Postgres of a test's own, which the test may stop and start again (database fault tests)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class DedicatedPostgres:
    def __init__(self) -> None:
        import pgserver
        from pgserver._commands import pg_ctl

        self._pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="bg-pg-"))
        self.pgdata = self.root / "pg"
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.url: str = self._server.get_uri()
        self._socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def stop(self) -> None:
        self._pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self.pgdata, user=self._server.system_user)

    def start(self) -> None:
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log"),
                      "start"], pgdata=self.pgdata, user=self._server.system_user)

    def close(self) -> None:
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
