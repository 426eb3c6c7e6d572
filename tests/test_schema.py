"""schema.sql applies idempotently, records its version, and refuses a newer database."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg
import pytest

from gateway.store import Store
from gateway.store.store import SCHEMA_VERSION, SchemaTooNew


async def test_schema_applies_twice_and_records_version(database_url: str) -> None:
    store = await Store.connect(database_url, min_size=1, max_size=2)
    try:
        assert await store.apply_schema() == SCHEMA_VERSION
        assert await store.apply_schema() == SCHEMA_VERSION
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()


async def test_newer_schema_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.execute("insert into schema_version (version) values ($1)", SCHEMA_VERSION + 1)
    await conn.close()
    store = await Store.connect(database_url, min_size=1, max_size=2)
    try:
        with pytest.raises(SchemaTooNew):
            await store.apply_schema()
    finally:
        await store.close()


def test_schema_ships_inside_the_package(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("batchgate-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "gateway/schema.sql" in names and "gateway/store/queries.sql" in names
        assert archive.read("gateway/schema.sql") == (root / "schema.sql").read_bytes()
