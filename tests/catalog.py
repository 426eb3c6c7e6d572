"""A database's schema as Postgres' catalog describes it, for comparing a fresh database with a migrated
one: tables, columns (by name: their order may differ), types, defaults, nullability, identity and
generated columns, indexes, constraints, triggers, functions, sequences, types and extensions."""

from __future__ import annotations

from typing import Any

import asyncpg

PUBLIC = "(select oid from pg_namespace where nspname = 'public')"

QUERIES: dict[str, str] = {
    "relations": f"""
        select relname, relkind, relpersistence from pg_class
        where relnamespace = {PUBLIC} and relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c')""",
    "columns": f"""
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               (select collname from pg_collation where oid = a.attcollation)
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where c.relnamespace = {PUBLIC} and c.relkind in ('r', 'p', 'v', 'm', 'f', 'c')
          and a.attnum > 0 and not a.attisdropped""",
    "indexes": f"""
        select c.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where c.relnamespace = {PUBLIC}""",
    "constraints": f"""
        select conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid), condeferrable,
               condeferred, convalidated
        from pg_constraint where connamespace = {PUBLIC}""",
    "triggers": f"""
        select tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid), tgenabled
        from pg_trigger t join pg_class c on c.oid = t.tgrelid
        where c.relnamespace = {PUBLIC} and not tgisinternal""",
    "functions": f"""
        select proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid)
        from pg_proc where pronamespace = {PUBLIC}""",
    "sequences": f"""
        select c.relname, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
               s.seqcache, s.seqcycle
        from pg_sequence s join pg_class c on c.oid = s.seqrelid
        where c.relnamespace = {PUBLIC}""",
    "types": f"""
        select t.typname, t.typtype, coalesce(array_agg(e.enumlabel order by e.enumsortorder)
                                              filter (where e.enumlabel is not null), '{{}}')
        from pg_type t left join pg_enum e on e.enumtypid = t.oid
        where t.typnamespace = {PUBLIC} and t.typtype in ('e', 'd', 'r')
        group by t.typname, t.typtype""",
    "extensions": "select extname from pg_extension",
}


async def snapshot(dsn: str) -> dict[str, set[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {kind: {tuple(row) for row in await conn.fetch(sql)} for kind, sql in QUERIES.items()}
    finally:
        await conn.close()


def differences(fresh: dict[str, set[tuple[Any, ...]]], migrated: dict[str, set[tuple[Any, ...]]]) -> list[str]:
    """What one has and the other lacks, kind by kind, as readable lines (empty when they are the same)."""
    lines: list[str] = []
    for kind in QUERIES:
        for row in sorted(fresh[kind] - migrated[kind], key=repr):
            lines.append(f"{kind}: only fresh: {row}")
        for row in sorted(migrated[kind] - fresh[kind], key=repr):
            lines.append(f"{kind}: only migrated: {row}")
    return lines
