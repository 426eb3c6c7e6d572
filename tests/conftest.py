"""Shared fixtures: a real Postgres (embedded, or BATCHGATE_TEST_DATABASE_URL), a template database
built once from schema.sql (as the gateway makes a fresh database) and cloned per test, and a live gateway reached over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store.migrate import Migrator
from tests.helpers import Api, with_database
from tests.yarn_cluster import YarnCluster

TEMPLATE = "batchgate_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server every test database lives on."""
    url = os.environ.get("BATCHGATE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    root = Path(tempfile.mkdtemp(prefix="bg-test-pg-"))
    server = pgserver.get_server(root / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_db(postgres_url: str) -> str:
    async def build() -> None:
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f"drop database if exists {TEMPLATE}")
            await admin.execute(f"create database {TEMPLATE}")
        finally:
            await admin.close()
        await Migrator(with_database(postgres_url, TEMPLATE)).upgrade()

    asyncio.run(build())
    return TEMPLATE


@pytest.fixture
async def database_url(postgres_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh database for this test, cloned from the template."""
    name = f"bg_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"create database {name} template {template_db}")
    finally:
        await admin.close()
    yield with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"drop database if exists {name} with (force)")
    finally:
        await admin.close()


MakeDatabase = Callable[[], Awaitable[str]]


@pytest.fixture
async def empty_database(postgres_url: str) -> AsyncIterator[MakeDatabase]:
    """Makes empty databases (not cloned from the template: no schema at all), dropped after the test."""
    names: list[str] = []

    async def make() -> str:
        name = f"bg_empty_{os.getpid()}_{next(_counter)}"
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f"create database {name}")
        finally:
            await admin.close()
        names.append(name)
        return with_database(postgres_url, name)

    yield make
    admin = await asyncpg.connect(postgres_url)
    try:
        for name in names:
            await admin.execute(f"drop database if exists {name} with (force)")
    finally:
        await admin.close()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path / "data",
            "port": 0,
            "kill_grace_seconds": 3.0,
            "log_format": "console",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def start_gateway(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """Start a gateway in this process (more than one may run on one database)."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**overrides: Any) -> Api:
        settings = make_settings(**overrides)
        app: web.Application = create_app(settings)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client, app)

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def api(start_gateway: Callable[..., Awaitable[Api]]) -> Api:
    """A gateway in open mode with admin 'admin', on a fresh database."""
    return await start_gateway(admin=["admin"])


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def yarn_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnCluster]:
    """One real YARN cluster (ResourceManager + NodeManager processes) for every YARN test of the run."""
    cluster = YarnCluster(tmp_path_factory.mktemp("yarn")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


KYUUBI_CLIENTS_NOTE = (
    "Kyuubi's Java client tests were deselected: set BATCHGATE_KYUUBI_CLIENTS to `maven` or to a class path "
    "holding kyuubi-rest-client (the Maven Central reached here serves no org.apache.kyuubi artifact; "
    "docs/kyuubi.md)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of Kyuubi's own clients run only where their jars can be had (tests/test_kyuubi_clients.py)."""
    if os.environ.get("BATCHGATE_KYUUBI_CLIENTS"):
        return
    kept = [item for item in items if item.get_closest_marker("kyuubi_clients") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
        config.stash[_DESELECTED_KYUUBI] = True


_DESELECTED_KYUUBI = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(_DESELECTED_KYUUBI, False):
        terminalreporter.write_line(KYUUBI_CLIENTS_NOTE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test is a failed test: engine and cluster tests must really run there."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"
