"""`batchgate serve`: run the gateway (one process, or a fleet of workers on one port); `batchgate db`: its
database's schema version and migrations (docs/operations.md, Upgrades)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from aiohttp import web
from pydantic import ValidationError

from gateway.instance.logconfig import configure_logging
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.store.migrate import SchemaStatus


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
@click.option("--migrate/--no-migrate", default=None,
              help="Apply pending schema migrations at start (default), or refuse to start on a database "
                   "that lacks them. [BATCHGATE_MIGRATE]")
def serve(**options: Any) -> None:
    """Run the gateway until SIGTERM or Ctrl-C. Applications keep running across restarts."""
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None and k != "admins"}
    if options["admins"]:
        given["admin"] = list(options["admins"])
    settings = _settings(given)
    me = settings.instance
    configure_logging(me.log_format, me.log_level)
    from gateway.store.migrate import SchemaError

    try:
        if me.workers > 1:
            from gateway.instance.workers import Fleet

            flags = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in given.items() if k != "workers"}
            sys.exit(_event_loop().run_until_complete(Fleet(settings, flags).run()))
        from gateway.app import create_app

        loop = _event_loop()
        if me.parent_pid is not None:
            from gateway.instance.workers import stop_with_parent

            stop_with_parent(loop, me.parent_pid)
        web.run_app(create_app(settings), host=me.host, port=me.port, print=None,
                    shutdown_timeout=10.0, loop=loop, reuse_port=me.reuse_port or None)
    except SchemaError as exc:
        click.echo(f"batchgate: {exc}", err=True)
        sys.exit(SCHEMA_REFUSED)


# `batchgate serve` and `batchgate db upgrade` exit with this when the schema and this release cannot work
# together (too new, behind with --no-migrate, blocked by a running instance, another history).
SCHEMA_REFUSED = 3


def _settings(given: dict[str, Any]) -> Settings:
    try:
        return Settings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            click.echo(f"batchgate: {where}: {error['msg']}", err=True)
        sys.exit(2)


@click.group()
def db() -> None:
    """The database's schema: its version, and this release's migrations (docs/operations.md, Upgrades)."""


def _database_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--data-dir", type=click.Path(path_type=Path),
                           help="Where the embedded Postgres lives (when no --database-url).")(command)
    return click.option("--database-url", help="postgresql://... ; without it the embedded Postgres "
                        "under the data dir. [BATCHGATE_DATABASE_URL]")(command)


def _on_database(options: dict[str, Any], work: Callable[[str], Awaitable[int]]) -> int:
    settings = _settings({k: v for k, v in options.items() if v is not None})
    configure_logging(settings.instance.log_format, settings.instance.log_level)

    async def run() -> int:
        from gateway.instance.embedded import EmbeddedPostgres

        if settings.database.database_url is not None:
            return await work(settings.database.database_url)
        embedded = EmbeddedPostgres(settings.instance.data_dir)
        dsn = await embedded.start()
        try:
            return await work(dsn)
        finally:
            await embedded.stop()

    return asyncio.run(run())


@db.command()
@_database_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status(as_json: bool, **options: Any) -> None:
    """The database's schema version and floor, what this release would apply, and the live instances
    with the newest version each one knows. Exit status: 0 this release can serve it as it is, 1 it has
    migrations to apply, 3 it is too new for this release."""
    from gateway.store.migrate import Migrator

    async def work(dsn: str) -> int:
        state = await Migrator(dsn).status()
        click.echo(json.dumps(status_json(state), indent=2) if as_json else status_text(state))
        if state.pending:
            return 1
        return 0 if state.usable else SCHEMA_REFUSED

    sys.exit(_on_database(options, work))


def status_json(state: SchemaStatus) -> dict[str, Any]:
    return {
        "version": state.version,
        "floor": state.floor,
        "known": state.known,
        "usable": state.usable and not state.pending,
        "applied": [{"version": a.version, "name": a.name, "floor": a.floor, "appliedAt": a.applied_at.isoformat()}
                    for a in state.applied],
        "pending": [{"version": m.version, "name": m.name, "floor": m.floor} for m in state.pending],
        "instances": [{"id": i.id, "address": i.address, "schemaKnown": i.schema_known,
                       "leaseUntil": i.lease_until} for i in state.instances],
    }


def status_text(state: SchemaStatus) -> str:
    if state.version == 0:
        verdict = "empty: `batchgate db upgrade` (or serve) creates the schema"
    elif state.pending:
        verdict = "behind: `batchgate db upgrade` (or serve) applies " + ", ".join(m.label for m in state.pending)
    elif state.usable:
        verdict = "current" if state.version == state.known else "newer, and this release can still use it"
    else:
        raised = state.raised_by()
        verdict = "too new for this release" + (f" (since {raised.version:04d}_{raised.name})" if raised else "")
    lines = [f"schema version {state.version}, floor {state.floor}; this release knows up to {state.known}: {verdict}"]
    for a in state.applied:
        lines.append(f"  {a.version:04d}_{a.name or 'first_release'}  floor {a.floor}  applied {a.applied_at:%F %T%z}")
    lines += [f"  {m.label}  floor {m.floor}  pending" for m in state.pending]
    lines += [f"instance {i.id} at {i.address}: knows up to {i.schema_known}" for i in state.instances]
    return "\n".join(lines)


@db.command()
@_database_options
def upgrade(**options: Any) -> None:
    """Apply this release's pending migrations, as `serve` does at start: once, under the schema lock, one
    transaction each, and never while a live instance could not use the result."""
    from gateway.store.migrate import Migrator, SchemaError

    async def work(dsn: str) -> int:
        migrator = Migrator(dsn)
        before = await migrator.status()
        try:
            after = await migrator.upgrade()
        except SchemaError as exc:
            click.echo(f"batchgate: {exc}", err=True)
            return SCHEMA_REFUSED
        applied = [a for a in after.applied if a.version > before.version]
        if not applied:
            click.echo(f"schema: version {after.version}, nothing to apply")
        else:
            names = ", ".join(f"{a.version:04d}_{a.name}" for a in applied)
            click.echo(f"schema: version {before.version} -> {after.version} (applied {names})")
        return 0

    sys.exit(_on_database(options, work))


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it measurably speeds up request handling), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
