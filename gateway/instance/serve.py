"""`batchgate serve`: run the gateway (one process, or a fleet of workers on one port)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
from aiohttp import web
from pydantic import ValidationError

from gateway.instance.logconfig import configure_logging
from gateway.settings import Settings


@click.command()
@click.option("--host", help="Address to bind (default 127.0.0.1). [BATCHGATE_HOST]")
@click.option("--port", type=int, help="Port to listen on (default 10099). [BATCHGATE_PORT]")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Working files and the embedded Postgres.")
@click.option("--database-url", help="postgresql://... ; without it an embedded Postgres is started.")
@click.option("--users-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="htpasswd file with bcrypt hashes; without it the gateway runs in open mode.")
@click.option("--admin", "admins", multiple=True, help="An admin user name (repeatable).")
@click.option("--engines", help="Comma-separated batch types to enable, e.g. SPARK,PYSPARK.")
@click.option("--spark-home", type=click.Path(path_type=Path), help="Spark home (default: pyspark's).")
@click.option("--flink-home", type=click.Path(path_type=Path), help="Flink home (default: pyflink's).")
@click.option("--instance-id", help="This instance's name in kyuubiInstance (default host:port).")
@click.option("--workers", type=int, help="Gateway processes sharing the port (default 1). [BATCHGATE_WORKERS]")
@click.option("--livy-port", type=int, help="Also serve the Livy API at the root of this port. [BATCHGATE_LIVY_PORT]")
@click.option("--spark-master", help="Default Spark master (default local[*]). [BATCHGATE_SPARK_MASTER]")
def serve(**options: Any) -> None:
    """Run the gateway until SIGTERM or Ctrl-C. Applications keep running across restarts."""
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None and k != "admins"}
    if options["admins"]:
        given["admin"] = list(options["admins"])
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            click.echo(f"batchgate: {where}: {error['msg']}", err=True)
        sys.exit(2)
    configure_logging(settings.log_format, settings.log_level)
    if settings.workers > 1:
        from gateway.instance.workers import Fleet

        flags = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in given.items() if k != "workers"}
        sys.exit(_event_loop().run_until_complete(Fleet(settings, flags).run()))
    from gateway.app import create_app

    loop = _event_loop()
    if settings.parent_pid is not None:
        from gateway.instance.workers import stop_with_parent

        stop_with_parent(loop, settings.parent_pid)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                shutdown_timeout=10.0, loop=loop, reuse_port=settings.reuse_port or None)


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it measurably speeds up request handling), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
