"""Versioned migrations (gateway.store.migrate): a fresh database and one migrated from the first release
are the same, every migration is applied once however many instances start together, and the version
marks keep instances that cannot use a schema off it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.store.migrate import (
    SCHEMA_VERSION,
    InstanceLease,
    Migration,
    Migrator,
    SchemaBehind,
    SchemaBlocked,
    SchemaError,
    SchemaMismatch,
    SchemaTooNew,
    load_migrations,
    parse_migrations,
)
from tests.catalog import differences, snapshot
from tests.conftest import MakeDatabase
from tests.gateway_process import free_port
from tests.helpers import Api

# The schema.sql of the first release (b3e5fe5), frozen: every database made by that release has it.
FIRST_RELEASE_SQL = Path(__file__).parent / "migrations" / "schema_v1.sql"


async def first_release_database(make: MakeDatabase) -> str:
    """A database as the first release left it: its schema.sql applied, version 1 recorded."""
    url = await make()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FIRST_RELEASE_SQL.read_text())
    finally:
        await conn.close()
    return url


async def fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def versions() -> list[tuple[int, str, int]]:
    return [(m.version, m.name, m.floor) for m in load_migrations()]


async def test_a_fresh_database_is_stamped_with_every_version(empty_database: MakeDatabase) -> None:
    url = await empty_database()
    status = await Migrator(url).upgrade()
    assert (status.version, status.pending, status.usable) == (SCHEMA_VERSION, (), True)
    assert await fetch(url, "select version, name, code_floor from schema_version order by 1") == versions()
    again = await Migrator(url).upgrade()
    assert [a.version for a in again.applied] == [v for v, _, _ in versions()], "nothing applied twice"


async def test_a_database_migrated_from_the_first_release_equals_a_fresh_one(empty_database: MakeDatabase) -> None:
    fresh = await empty_database()
    await Migrator(fresh).upgrade()
    migrated = await first_release_database(empty_database)
    assert [a.version for a in (await Migrator(migrated).status()).applied] == [1]
    status = await Migrator(migrated).upgrade()
    assert status.version == SCHEMA_VERSION
    assert differences(await snapshot(fresh), await snapshot(migrated)) == []
    marks = "select version, name, code_floor from schema_version order by 1"
    assert await fetch(migrated, marks) == await fetch(fresh, marks) == versions()


async def test_the_catalog_comparison_sees_a_difference(empty_database: MakeDatabase) -> None:
    """The comparison above can fail: a default, a nullability, an index or a function body that differ."""
    a, b = await empty_database(), await empty_database()
    await Migrator(a).upgrade()
    await Migrator(b).upgrade()
    conn = await asyncpg.connect(b)
    try:
        await conn.execute("""
            alter table batches alter column priority set default 1;
            alter table jobs alter column description set not null;
            create index batches_extra_idx on batches (app_id);
            create or replace function bg_now_ms() returns bigint language sql volatile as
            $$ select (extract(epoch from clock_timestamp()) * 1000)::bigint + 0 $$;
        """)
    finally:
        await conn.close()
    found = "\n".join(differences(await snapshot(a), await snapshot(b)))
    for what in ("columns: only migrated: ('batches', 'priority', 'integer', True, '1'",
                 "columns: only migrated: ('jobs', 'description', 'text', True",
                 "indexes: only migrated: ('batches_extra_idx'",
                 "functions: only migrated: ('bg_now_ms'"):
        assert what in found, found


async def test_instances_starting_together_apply_each_migration_once(empty_database: MakeDatabase) -> None:
    url = await first_release_database(empty_database)
    results = await asyncio.gather(*(
        Migrator(url).upgrade(instance=InstanceLease(f"i{n}", f"h:{n}", 15_000)) for n in range(5)
    ))
    assert {r.version for r in results} == {SCHEMA_VERSION}
    # A second application of a migration would have failed (its columns exist) or recorded it twice.
    assert await fetch(url, "select version from schema_version order by 1") == [(v,) for v, _, _ in versions()]
    assert await fetch(url, "select id, schema_known from instances order by 1") == [
        (f"i{n}", SCHEMA_VERSION) for n in range(5)]


def test_migration_files_are_checked() -> None:
    ok = parse_migrations([("0003_b.sql", "-- floor: 2\nselect 1;"), ("0002_a.sql", "-- floor: 1\nselect 1;")])
    assert [(m.version, m.name, m.floor) for m in ok] == [(1, "first_release", 1), (2, "a", 1), (3, "b", 2)]
    bad = {
        "name it NNNN_what.sql": [("2_a.sql", "-- floor: 1")],
        "needs exactly one '-- floor: N' line": [("0002_a.sql", "select 1;")],
        "expected number 0002": [("0003_a.sql", "-- floor: 1")],
        "floor 3 must be between": [("0002_a.sql", "-- floor: 3")],
        "floor 1 must be between the previous floor 2": [("0002_a.sql", "-- floor: 2"), ("0003_b.sql", "-- floor: 1")],
    }
    for message, files in bad.items():
        with pytest.raises(SchemaError, match=message):
            parse_migrations(files)
    shipped = load_migrations()
    assert shipped[0].version == 1 and shipped[-1].version == SCHEMA_VERSION >= 2


def with_next(floor: int, sql: str = "alter table batches add column next_note text not null default 'x';"
              ) -> tuple[Migration, ...]:
    """This release's migrations plus one more, as the next release would ship it."""
    return (*load_migrations(), Migration(SCHEMA_VERSION + 1, "next_step", floor, f"-- floor: {floor}\n{sql}"))


async def register(url: str, instance: str, known: int, lease_ms: int = 60_000) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("insert into instances (id, address, lease_until, schema_known) "
                           "values ($1, 'old:1', bg_now_ms() + $2, $3)", instance, lease_ms, known)
    finally:
        await conn.close()


async def test_an_expand_step_is_applied_while_older_instances_run(database_url: str) -> None:
    await register(database_url, "old", SCHEMA_VERSION)
    floor = load_migrations()[-1].floor
    status = await Migrator(database_url, with_next(floor)).upgrade()
    assert status.version == SCHEMA_VERSION + 1
    # The older code keeps working on it: its start succeeds, and it says so.
    older = await Migrator(database_url).upgrade(instance=InstanceLease("old", "old:1", 15_000))
    assert (older.version, older.known, older.usable) == (SCHEMA_VERSION + 1, SCHEMA_VERSION, True)


CONTRACT = "alter table batches drop column wait_reason;"


async def test_a_contract_step_waits_for_an_instance_that_stopped_without_a_word(database_url: str) -> None:
    """kill -9: its lease runs out, nobody renews it, and then the migration goes on."""
    await register(database_url, "gone", SCHEMA_VERSION, lease_ms=1_500)
    loop = asyncio.get_running_loop()
    began = loop.time()
    status = await Migrator(database_url, with_next(SCHEMA_VERSION + 1, CONTRACT)).upgrade()
    assert status.version == SCHEMA_VERSION + 1
    assert loop.time() - began >= 1.0


async def test_a_contract_step_is_refused_while_an_older_instance_runs(database_url: str) -> None:
    await register(database_url, "running", SCHEMA_VERSION, lease_ms=1_000)
    conn = await asyncpg.connect(database_url)

    async def renew() -> None:  # what the running instance's heartbeat does
        while True:
            await conn.execute("update instances set heartbeat_at = bg_now_ms(), lease_until = bg_now_ms() + 1000 "
                               "where id = 'running'")
            await asyncio.sleep(0.3)

    renewing = asyncio.create_task(renew())
    try:
        with pytest.raises(SchemaBlocked) as refused:
            await Migrator(database_url, with_next(SCHEMA_VERSION + 1, CONTRACT)).upgrade()
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await conn.close()
    message = str(refused.value)
    assert f"migration {SCHEMA_VERSION + 1:04d}_next_step needs code that knows version {SCHEMA_VERSION + 1}" in message
    assert f"instance running at old:1 knows schema versions up to {SCHEMA_VERSION}" in message
    assert await fetch(database_url, "select max(version) from schema_version") == [(SCHEMA_VERSION,)]
    assert "wait_reason" in {r[0] for r in await fetch(
        database_url, "select attname from pg_attribute where attrelid = 'batches'::regclass")}, "nothing applied"


async def test_a_first_release_instance_blocks_the_upgrade_until_its_lease_ends(empty_database: MakeDatabase) -> None:
    url = await first_release_database(empty_database)
    conn = await asyncpg.connect(url)
    try:  # the first release's own heartbeat: no schema_known column, so it knows version 1 only
        await conn.execute("insert into instances (id, address, lease_until, draining) "
                           "values ('v1', 'old:1', bg_now_ms() + 1500, true)")
    finally:
        await conn.close()
    loop = asyncio.get_running_loop()
    began = loop.time()
    status = await Migrator(url).upgrade()
    assert status.version == SCHEMA_VERSION
    assert loop.time() - began >= 1.0, "a draining row of the first release is trusted only by its lease"


async def test_a_database_past_the_floor_of_this_code_is_refused(database_url: str) -> None:
    await Migrator(database_url, with_next(SCHEMA_VERSION + 1)).upgrade()
    with pytest.raises(SchemaTooNew) as refused:
        await Migrator(database_url).upgrade()
    assert str(refused.value) == (
        f"the database is at schema version {SCHEMA_VERSION + 1} and migration {SCHEMA_VERSION + 1:04d}_next_step "
        f"needs batchgate that knows schema version {SCHEMA_VERSION + 1} or later; this batchgate knows "
        f"versions up to {SCHEMA_VERSION}: run a newer release")


async def test_not_migrating_refuses_a_database_that_is_behind(empty_database: MakeDatabase) -> None:
    url = await first_release_database(empty_database)
    with pytest.raises(SchemaBehind, match="at schema version 1, and this batchgate needs version"):
        await Migrator(url).upgrade(migrate=False)
    assert await fetch(url, "select version from schema_version") == [(1,)]
    with pytest.raises(SchemaBehind, match="the database is empty"):
        await Migrator(await empty_database()).upgrade(migrate=False)


async def test_another_history_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("update schema_version set name = 'someone_else' where version = 2")
    finally:
        await conn.close()
    with pytest.raises(SchemaMismatch, match="schema version 2 was applied as 0002_someone_else"):
        await Migrator(database_url).upgrade()


async def test_readiness_follows_the_floor(database_url: str, start_gateway: Callable[..., Awaitable[Api]]) -> None:
    """An instance stays ready on a newer schema it can use (an expand step), and not on one it cannot."""
    api = await start_gateway()
    assert (await api.status_of("GET", "/readyz"))[0] == 200
    await Migrator(database_url, with_next(load_migrations()[-1].floor)).upgrade()
    assert (await api.status_of("GET", "/readyz"))[0] == 200
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("update schema_version set code_floor = $1 where version = $1", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    status, body = await api.status_of("GET", "/readyz")
    assert status == 503 and body["checks"]["schema"] != "ok", body


async def batchgate(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_db_status_and_upgrade_by_hand(empty_database: MakeDatabase, tmp_path: Path) -> None:
    url = await first_release_database(empty_database)
    code, out, _ = await batchgate("db", "status", "--database-url", url)
    assert code == 1, out
    assert out.startswith(f"schema version 1, floor 1; this release knows up to {SCHEMA_VERSION}: behind: ")
    assert "0002_version_marks  floor 2  pending" in out
    # Told not to migrate, serve refuses a database that is behind, says what to do, and changes nothing.
    code, _, err = await batchgate("serve", "--no-migrate", "--database-url", url, "--port", "0",
                                   "--data-dir", str(tmp_path / "data"))
    assert code == 3
    assert "batchgate: the database is at schema version 1, and this batchgate needs version" in err
    assert "run `batchgate db upgrade` first" in err
    code, out, _ = await batchgate("db", "upgrade", "--database-url", url)
    assert (code, out.strip()) == (0, f"schema: version 1 -> {SCHEMA_VERSION} (applied "
                                      + ", ".join(m.label for m in load_migrations()[1:]) + ")")
    code, out, _ = await batchgate("db", "status", "--database-url", url, "--json")
    state = json.loads(out)
    assert code == 0 and (state["version"], state["usable"], state["pending"]) == (SCHEMA_VERSION, True, [])
    assert [(a["version"], a["name"], a["floor"]) for a in state["applied"]] == versions()
    code, out, _ = await batchgate("db", "upgrade", "--database-url", url)
    assert (code, out.strip()) == (0, f"schema: version {SCHEMA_VERSION}, nothing to apply")


@pytest.mark.slow
async def test_serve_refuses_a_database_too_new_for_it(database_url: str, tmp_path: Path) -> None:
    await Migrator(database_url, with_next(SCHEMA_VERSION + 1)).upgrade()
    code, _, err = await batchgate("serve", "--database-url", database_url, "--port", "0",
                                   "--data-dir", str(tmp_path / "data"))
    assert code == 3
    assert f"batchgate: the database is at schema version {SCHEMA_VERSION + 1} and migration" in err
    code, out, _ = await batchgate("db", "status", "--database-url", database_url)
    assert code == 3 and f"too new for this release (since {SCHEMA_VERSION + 1:04d}_next_step)" in out
    # A fleet refuses once, in its parent, before any worker starts (not a crash loop of workers).
    code, _, err = await batchgate("serve", "--workers", "2", "--database-url", database_url, "--port",
                                   str(free_port()), "--data-dir", str(tmp_path / "fleet"))
    assert code == 3 and err.count("batchgate: the database is at schema version") == 1, err
    assert "workers.started" not in err


@pytest.mark.slow
async def test_a_migration_behind_a_long_transaction_gives_way_and_tries_again(database_url: str) -> None:
    """A running instance's open transaction holds its table: the migration waits at most LOCK_TIMEOUT per
    try (so as not to queue every query of that table behind itself for long), then succeeds once free."""
    reader = await asyncpg.connect(database_url)
    tx = reader.transaction()
    await tx.start()
    await reader.fetch("select id from batches limit 1")  # holds the table until the transaction ends
    loop = asyncio.get_running_loop()
    began = loop.time()
    upgrade = asyncio.create_task(Migrator(database_url, with_next(load_migrations()[-1].floor)).upgrade())
    try:
        await asyncio.sleep(7)
        assert not upgrade.done(), "it waits while the table is held"
        # Between tries the table is free for others: a write from a third connection gets through.
        other = await asyncpg.connect(database_url)
        try:
            await asyncio.wait_for(other.execute("update batches set priority = 0 where false"), 10)
        finally:
            await other.close()
    finally:
        await tx.rollback()
        await reader.close()
    status = await asyncio.wait_for(upgrade, 30)
    assert status.version == SCHEMA_VERSION + 1 and loop.time() - began >= 7
