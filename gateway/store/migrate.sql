-- The schema's own bookkeeping, for gateway.store.migrate (docs/operations.md "Upgrades").
-- A database of the first release (schema version 1) has schema_version without name and code_floor,
-- and instances without schema_known: the reads below take them through to_jsonb, so that they work on
-- both layouts, and read such a database's rows as version 1 (floor 1) and instances that know version 1.

-- name: lock_schema
-- Serialize schema changes across instances that start together. The first release takes the same
-- lock around its schema.sql, so it never starts half-way through a migration.
select pg_advisory_xact_lock(8317000001);

-- name: schema_tables
-- Whether the database is versioned at all, and whether it holds batchgate's tables without a version.
select to_regclass('schema_version') is not null as versioned, to_regclass('batches') is not null as populated;

-- name: applied_versions
-- Every applied schema version with its name and floor, oldest first.
select version,
       coalesce(to_jsonb(s) ->> 'name', '') as name,
       coalesce((to_jsonb(s) ->> 'code_floor')::integer, 1) as code_floor,
       applied_at
from schema_version s
order by version;

-- name: record_version
-- Mark a schema version as applied. $1 version, $2 name, $3 code floor
insert into schema_version (version, name, code_floor) values ($1, $2, $3);

-- name: live_instances
-- Instances other than $1 whose lease has not run out, and the newest schema version each one knows.
-- A versioned instance that stopped cleanly is draining and gone; a draining row of the first release may
-- be stale (that release never cleared the flag when it started again), so only its lease tells.
select * from (
    select id, address, lease_until, heartbeat_at, draining,
           coalesce((to_jsonb(i) ->> 'schema_known')::integer, 1) as schema_known
    from instances i
    where lease_until > bg_now_ms() and id <> $1
) live
where not (draining and schema_known > 1)
order by id;
