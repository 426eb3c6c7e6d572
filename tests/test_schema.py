"""schema.sql ships inside the package with its migrations, and its triggers keep the batch counts."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg

from gateway.store import BatchRepository
from gateway.store.database import Database


def test_schema_ships_inside_the_package(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("batchgate-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "gateway/schema.sql" in names
        for subject in ("batches", "claims", "control", "logs", "audit", "sessions", "instances", "jobs",
                        "projects", "schedules", "slas"):
            assert f"gateway/store/{subject}.sql" in names, "each repository's named queries ship with it"
        assert "gateway/store/migrate.sql" in names
        assert archive.read("gateway/schema.sql") == (root / "schema.sql").read_bytes()
        shipped = sorted(n for n in names if n.startswith("gateway/store/migrations/"))
        assert shipped == sorted(f"gateway/store/migrations/{p.name}"
                                 for p in (root / "gateway/store/migrations").glob("*.sql")) != []


async def test_batch_counts_follow_inserts_updates_and_deletes(database_url: str) -> None:
    db = await Database.connect(database_url, min_size=1, max_size=2)
    store = BatchRepository(db)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("""
            insert into batches (id, batch_type, batch_user, real_user, resource, state, create_time)
            select gen_random_uuid(), case when g % 3 = 0 then 'SPARK' else 'LOCAL' end, 'u' || (g % 4), 'x',
                   'r', case when g % 5 = 0 then 'ERROR' else 'FINISHED' end, 1700000000000 + g * 7919
            from generate_series(1, 500) g""")
        await conn.execute("update batches set state = 'CANCELED' where batch_user = 'u1'")
        await conn.execute("delete from batches where batch_user = 'u2' and batch_type = 'SPARK'")
        exact = "select batch_user, batch_type, state, count(*) from batches group by 1, 2, 3 order by 1, 2, 3"
        counted = ("select batch_user, batch_type, state, sum(n) from batch_counts group by 1, 2, 3 "
                   "having sum(n) <> 0 order by 1, 2, 3")
        expected = [tuple(r) for r in await conn.fetch(exact)]
        assert [tuple(r) for r in await conn.fetch(counted)] == expected, "the triggers kept count"
        await store.compact_counts()
        assert [tuple(r) for r in await conn.fetch(counted)] == expected
        assert await conn.fetchval("select count(*) from batch_counts") == len(expected), "folded"
        by_minute = ("select create_time / 60000, count(*) from batches group by 1 order by 1",
                     "select bucket, sum(n) from batch_time_counts where span = 60000 group by 1 "
                     "having sum(n) <> 0 order by 1")
        assert [tuple(r) for r in await conn.fetch(by_minute[0])] == [tuple(r) for r in await conn.fetch(by_minute[1])]
    finally:
        await conn.close()
        await db.close()
