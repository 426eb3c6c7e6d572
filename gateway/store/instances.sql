-- Instances: leases, draining, takeover of the dead and of orphaned batches, the schema marks /readyz reads.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: upsert_instance
-- Register or renew this instance's lease, with the newest schema version its code knows (see
-- migrate.sql). An instance that starts again under its id is no longer draining.
-- $1 id, $2 address, $3 lease in ms, $4 schema version known
insert into instances (id, address, lease_until, schema_known)
values ($1, $2, bg_now_ms() + $3, $4)
on conflict (id) do update
set heartbeat_at = bg_now_ms(), lease_until = bg_now_ms() + $3, address = excluded.address,
    schema_known = excluded.schema_known, draining = false
returning lease_until;

-- name: set_draining
-- Mark an instance as shutting down. $1 id
update instances set draining = true where id = $1;

-- name: claim_dead_instance
-- Remove one instance whose lease ran out; only one live instance can win the row. $1 my id
delete from instances
where id = (
    select id from instances
    where lease_until < bg_now_ms() and id <> $1
    order by lease_until
    limit 1
    for update skip locked
)
returning id;

-- name: lock_instance
-- An instance's lease row, locked while an admin reassigns its batches (the sweep skips locked rows).
-- $1 id
select lease_until >= bg_now_ms() as live, lease_until from instances where id = $1 for update;

-- name: remove_instance
-- Forget an instance whose batches were reassigned. $1 id
delete from instances where id = $1;

-- name: take_over_batches
-- Move a dead instance's active batches to me. $1 dead instance, $2 my id
update batches set instance = $2, update_time = bg_now_ms()
where instance = $1 and state in ('PENDING', 'RUNNING', 'PAUSED')
returning *;

-- name: orphaned_batches
-- Active batches whose owner has no instance row at all (it was removed, or never registered).
-- $1 my id
update batches b set instance = $1, update_time = bg_now_ms()
where b.state in ('PENDING', 'RUNNING', 'PAUSED')
  and b.instance is not null and b.instance <> $1
  and not exists (select 1 from instances i where i.id = b.instance)
  and b.id in (select id from batches where state in ('PENDING', 'RUNNING', 'PAUSED') and instance is not null
               limit 500 for update skip locked)
returning *;

-- name: schema_marks
-- The newest version and the floor of the database, for /readyz: one index-only read of a few rows.
select max(version) as version, max(code_floor) as code_floor from schema_version;
