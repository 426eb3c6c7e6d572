"""The gateway's life: its parts come up in the order of ENTRIES (aiohttp's cleanup_ctx, one entry each) and
go down in reverse: the data dir, the users file, Postgres and the pool (the schema applied), the engines,
the parts (gateway/app/parts.py: built, not started), the LISTEN connection, the heartbeat, the supervisor
(re-attaching owned batches), the loops, the Livy port."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from engines.process import ProcessSupervisor
from engines.registry import EngineRegistry
from gateway.api.metrics import METRICS
from gateway.app.parts import LOOPS, Parts, build_engines, build_parts
from gateway.instance.embedded import EmbeddedPostgres
from gateway.instance.listener import Listener
from gateway.keys import AUTH, BATCH_REPOSITORY, DATABASE, ENGINES, INSTANCE, LIVY_PORT, SETTINGS, SUPERVISOR
from gateway.livy.handlers import start_livy_site
from gateway.settings import InstanceSettings
from gateway.store import BatchRepository
from gateway.store.database import Database
from gateway.store.migrate import InstanceLease, Migrator, SchemaError

log = structlog.get_logger("gateway.app")

# What the entries below hand each other (the handlers' keys are in gateway/keys.py).
_DSN = web.AppKey("dsn", str)
_EMBEDDED = web.AppKey("embedded", bool)
_SCHEMA_VERSION = web.AppKey("schema_version", int)
_PROCESSES = web.AppKey("processes", ProcessSupervisor)
_PARTS = web.AppKey("parts", Parts)
_RECOVERED = web.AppKey("recovered", int)


def instance_id(settings: InstanceSettings) -> str:
    if settings.instance_id:
        return settings.instance_id
    if settings.port == 0:
        return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
    return f"{socket.gethostname()}:{settings.port}"


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """The data dir, the open-mode warning, and the last line of a stop."""
    settings = app[SETTINGS]
    settings.instance.data_dir.mkdir(parents=True, exist_ok=True)
    app[INSTANCE] = instance_id(settings.instance)
    yield
    log.info("gateway.stopped")


async def _users_file(app: web.Application) -> AsyncIterator[None]:
    """The users file, re-read as an operator changes it."""
    app[AUTH].start()
    try:
        yield
    finally:
        await app[AUTH].stop()


async def _embedded_postgres(app: web.Application) -> AsyncIterator[None]:
    """Without a database URL, a Postgres of our own under the data dir."""
    settings = app[SETTINGS]
    url = settings.database.database_url
    app[_EMBEDDED] = url is None
    if url is not None:
        app[_DSN] = url
        yield
        return
    embedded = EmbeddedPostgres(settings.instance.data_dir)
    app[_DSN] = await embedded.start()
    try:
        yield
    finally:
        await embedded.stop()


async def _database(app: web.Application) -> AsyncIterator[None]:
    """The pool, and the schema applied (or checked) before anything reads it."""
    if app[SETTINGS].open_mode:
        log.warning("auth.open_mode", detail="no users file: anyone on this host may act as any user")
    db = await Database.connect(app[_DSN])
    batch_repository = BatchRepository(db)
    app[DATABASE] = db
    app[BATCH_REPOSITORY] = batch_repository
    app[METRICS].bind_repository(batch_repository, db.pool)
    try:
        app[_SCHEMA_VERSION] = await _migrate(app)
        yield
    finally:
        await db.close()


async def _migrate(app: web.Application) -> int:
    """Apply this release's migrations (or check them, with --no-migrate), registering this instance in the
    same transaction (docs/operations.md, Upgrades); a schema this code cannot use stops the start."""
    settings, instance = app[SETTINGS], app[INSTANCE]
    me = settings.instance
    lease = InstanceLease(instance, f"{me.host}:{me.port}", int(me.lease_seconds * 1000))
    try:
        status = await Migrator(app[_DSN]).upgrade(migrate=settings.database.migrate, instance=lease)
    except SchemaError as exc:
        log.error("schema.refused", instance=instance, detail=str(exc))
        raise
    return status.version


async def _engines(app: web.Application) -> AsyncIterator[None]:
    """The fork server every launch goes through, and the engine adapters."""
    processes = ProcessSupervisor()
    app[_PROCESSES] = processes
    await processes.start()
    engines: EngineRegistry | None = None
    try:
        engines = build_engines(app[SETTINGS], processes)
        app[ENGINES] = engines
        yield
    finally:
        if engines is not None:
            await engines.close()
        await processes.close()


async def _parts(app: web.Application) -> AsyncIterator[None]:
    """Build the services and loops (nothing starts here) and route notifications to them."""
    app[_PARTS] = build_parts(app)
    yield
    await app[_PARTS].alerts.close()


async def _listener(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection, once every handler is on the hub, so that no early notification is lost."""
    listener = Listener(app[_DSN], app[_PARTS].hub)
    await listener.start()
    try:
        yield
    finally:
        await listener.close()


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    heartbeat = app[_PARTS].heartbeat
    await heartbeat.start()
    try:
        yield
    finally:
        await heartbeat.stop()


async def _supervisor(app: web.Application) -> AsyncIterator[None]:
    """Re-attach this instance's batches; at the end, let go of the applications without killing them."""
    supervisor = app[SUPERVISOR]
    try:
        app[_RECOVERED] = await supervisor.recover_owned()
        yield
    finally:
        await supervisor.detach_all()


def _loop(name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        loop = app[_PARTS].loops[name]
        loop.start()
        try:
            yield
        finally:
            await loop.stop()

    run.__name__ = run.__qualname__ = f"_loop_{name}"
    return run


async def _livy(app: web.Application) -> AsyncIterator[None]:
    """The Livy API at the root of a port of its own, when livy_port is set (it is always under /livy)."""
    me = app[SETTINGS].instance
    app[LIVY_PORT] = None
    if me.livy_port is None:
        yield
        return
    runner, port = await start_livy_site(app, me.host, me.livy_port, reuse_port=me.reuse_port)
    app[LIVY_PORT] = port
    try:
        yield
    finally:
        await runner.cleanup()


async def _started(app: web.Application) -> AsyncIterator[None]:
    log.info("gateway.started", instance=app[INSTANCE], schema_version=app[_SCHEMA_VERSION],
             recovered=app[_RECOVERED], engines=sorted(app[ENGINES].enabled), embedded=app[_EMBEDDED])
    yield


# One entry per part, in the order they come up.
ENTRIES = [
    _lifetime, _users_file, _embedded_postgres, _database, _engines, _parts, _listener, _heartbeat, _supervisor,
    *(_loop(name) for name in LOOPS), _livy, _started,
]
