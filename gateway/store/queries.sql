-- Every query the gateway runs, by name. Loaded once by gateway.store.queries.
-- Dynamic list filters are assembled in store.py from the fragments at the end of this file.

-- name: insert_batch
-- Queue a new batch and audit it in the same statement; nothing is returned when the id exists
-- already (idempotent submit). $1 id, $2 type, $3 user, $4 real user, $5 name, $6 resource,
-- $7 class name, $8 conf, $9 args, $10 priority, $11 project, $12 batch_info, $13 source ip
with b as (
    insert into batches (id, batch_type, batch_user, real_user, name, resource, class_name, conf, args,
                         priority, project, batch_info)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    on conflict (id) do nothing
    returning *
), a as (
    insert into audit_log (actor, action, target, allowed, source_ip, detail)
    select b.real_user, 'submit', b.id::text, true, $13,
           jsonb_build_object('batchType', b.batch_type, 'user', b.batch_user, 'name', b.name)
    from b
)
select * from b;

-- name: insert_refused_batch
-- A batch the admission step refused where nobody could be answered at once (a node of a run, a tick):
-- it is written ERROR with the refusal as its diagnostic, its log and a denied audit row, and is never
-- launched. Nothing is returned when the id exists. $1..$13 as insert_batch, $14 the refusal, $15 log lines
with b as (
    insert into batches (id, batch_type, batch_user, real_user, name, resource, class_name, conf, args,
                         priority, project, batch_info, state, app_diagnostic, end_time, log_lines)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'ERROR', $14, bg_now_ms(), cardinality($15::text[]))
    on conflict (id) do nothing
    returning *
), a as (
    insert into audit_log (actor, action, target, allowed, source_ip, detail)
    select b.real_user, 'submit', b.id::text, false, $13,
           jsonb_build_object('batchType', b.batch_type, 'user', b.batch_user, 'name', b.name, 'reason', $14::text)
    from b
), l as (
    insert into batch_log_chunks (batch_id, first_line, lines) select b.id, 0, $15::text[] from b
)
select * from b;

-- name: get_batch
-- One batch by id. $1 id
select * from batches where id = $1;

-- name: claim_candidates
-- Queued batches in claim order, locked for this transaction, skipping ones another claimer holds.
-- $1 how many to look at
select id, batch_user, batch_type from batches
where state = 'INITIALIZED'
order by priority desc, create_time, id
limit $1
for update skip locked;

-- name: active_counts
-- Running batches per user and type, for the limits. Call under the claim lock.
select batch_user, batch_type, count(*)::int as n from batches
where state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null)
group by batch_user, batch_type;

-- name: lock_claims
-- Claimers take this lock so that limit checks and claims are one atomic step across instances.
select pg_advisory_xact_lock(8317000002);

-- name: claim_batches
-- Take ownership of the chosen batches. $1 ids, $2 instance
update batches
set state = 'PENDING', instance = $2, claim_time = bg_now_ms(), update_time = bg_now_ms(), wait_reason = null
where id = any($1::uuid[]) and state = 'INITIALIZED'
returning *;

-- name: set_wait_reason
-- Remember why queued batches wait, so the reason is logged once. $1 ids, $2 reason
update batches set wait_reason = $2
where id = any($1::uuid[]) and state = 'INITIALIZED' and wait_reason is distinct from $2
returning id;

-- name: set_launched
-- The engine accepted the batch: store its re-attach handle. $1 id, $2 instance, $3 handle
update batches
set handle = $3, launch_time = bg_now_ms(), update_time = bg_now_ms()
where id = $1 and instance = $2 and state = 'PENDING'
returning *;

-- name: update_app
-- Application facts from the engine; null leaves a field as it is. Moves PENDING to RUNNING when
-- $6 is true. Never touches a terminal batch.
-- $1 id, $2 instance, $3 app id, $4 app url, $5 app state, $6 running, $7 diagnostic, $8 handle
update batches
set app_id = coalesce($3, app_id),
    app_url = coalesce($4, app_url),
    app_state = coalesce($5, app_state),
    app_diagnostic = coalesce($7, app_diagnostic),
    handle = coalesce($8, handle),
    state = case when $6 and state = 'PENDING' then 'RUNNING' else state end,
    app_start_time = case when $6 and app_start_time = 0 then bg_now_ms() else app_start_time end,
    update_time = bg_now_ms()
where id = $1 and instance = $2 and state in ('PENDING', 'RUNNING', 'PAUSED')
returning *;

-- name: finish_batch
-- Move an active batch to its terminal state and log the line that says so, in one commit (one WAL
-- flush on the path from a program's exit to a waiting client). $1 id, $2 instance, $3 state,
-- $4 app state, $5 diagnostic, $6 batch_info to merge, $7 the log line
with b as (
    update batches
    set state = $3, app_state = coalesce($4, app_state), app_diagnostic = coalesce($5, app_diagnostic),
        end_time = bg_now_ms(), update_time = bg_now_ms(), batch_info = batch_info || $6,
        control = null, paused_from = null, log_lines = log_lines + 1
    where id = $1 and instance = $2 and state in ('PENDING', 'RUNNING', 'PAUSED')
    returning *
), note as (
    insert into batch_log_chunks (batch_id, first_line, lines) select id, log_lines - 1, array[$7::text] from b
)
select * from b;

-- name: cancel_queued
-- Cancel a batch that never left the queue. $1 id
update batches
set state = 'CANCELED', app_state = 'KILLED', kill_requested = true,
    app_diagnostic = 'canceled before launch', end_time = bg_now_ms(), update_time = bg_now_ms()
where id = $1 and (state = 'INITIALIZED' or (state = 'PAUSED' and paused_from = 'INITIALIZED'))
returning *;

-- name: request_kill
-- Record a kill for an active batch; the trigger tells the owner. $1 id
update batches set kill_requested = true, update_time = bg_now_ms()
where id = $1 and (state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null))
returning *;

-- name: append_log
-- Append lines and number them in one step; concurrent writers are serialized by the row lock.
-- $3, when not null, is the engine output offset reached, so that a restart replays nothing twice.
-- $4, when not null, must be the owner: an instance that lost a batch stops writing its output.
-- $1 batch id, $2 lines, $3 output offset, $4 owner
with head as (
    update batches set log_lines = log_lines + cardinality($2::text[]),
                       log_offset = coalesce($3, log_offset)
    where id = $1 and ($4::text is null or instance = $4)
    returning log_lines - cardinality($2::text[]) as first_line
)
insert into batch_log_chunks (batch_id, first_line, lines)
select $1, first_line, $2::text[] from head
returning first_line;

-- name: read_log
-- Lines [$2, $2 + $3) of a batch's log: the chunk holding $2, then the chunks starting inside the window.
-- $1 batch id, $2 from, $3 size
select first_line, lines from (
    (select first_line, lines from batch_log_chunks
     where batch_id = $1 and first_line <= $2
     order by first_line desc limit 1)
    union all
    (select first_line, lines from batch_log_chunks
     where batch_id = $1 and first_line > $2 and first_line < $2 + $3
     order by first_line)
) w
order by first_line;

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

-- name: owned_active
-- Active batches owned by an instance, in pages, for recovery. $1 instance, $2 after id, $3 page size
select * from batches
where instance = $1 and state in ('PENDING', 'RUNNING', 'PAUSED') and id > $2
order by id
limit $3;

-- name: kill_requested_owned
-- Active batches of this instance with a pending kill request (missed while disconnected). $1 instance
select id from batches
where instance = $1 and state in ('PENDING', 'RUNNING', 'PAUSED') and kill_requested;

-- name: insert_file_chunk
-- One chunk of an uploaded file. $1 batch id, $2 name, $3 chunk number, $4 bytes
insert into batch_files (batch_id, name, chunk, data) values ($1, $2, $3, $4);

-- name: file_chunks
-- An uploaded file's chunks in order. $1 batch id, $2 name
select data from batch_files where batch_id = $1 and name = $2 order by chunk;

-- name: set_launching
-- Record where a batch is about to be launched, before the launch, so that whoever recovers it can
-- tell "never launched" from "launched, handle not yet stored"; log the line that says so in the same
-- commit. $1 id, $2 instance, $3 handle, $4 the log line
with b as (
    update batches set handle = $3, update_time = bg_now_ms(), log_lines = log_lines + 1
    where id = $1 and instance = $2 and state = 'PENDING'
    returning *
), note as (
    insert into batch_log_chunks (batch_id, first_line, lines) select id, log_lines - 1, array[$4::text] from b
)
select * from b;

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

-- name: purge_terminal
-- Delete up to $2 terminal batches that ended before $1 (epoch ms); logs and files go by cascade.
delete from batches
where id in (
    select id from batches
    where end_time > 0 and end_time < $1 and state in ('FINISHED', 'ERROR', 'CANCELED')
    order by end_time
    limit $2
    for update skip locked
)
returning id;

-- name: purge_log_chunks
-- Delete up to $2 log chunks of terminal batches that ended before $1, so that purging a batch with
-- a huge log never becomes one long statement.
delete from batch_log_chunks
where ctid in (
    select c.ctid from batch_log_chunks c join batches b on b.id = c.batch_id
    where b.end_time > 0 and b.end_time < $1
    limit $2
);

-- name: insert_audit
-- One audit entry. $1 actor, $2 action, $3 target, $4 allowed, $5 source ip, $6 detail
insert into audit_log (actor, action, target, allowed, source_ip, detail) values ($1, $2, $3, $4, $5, $6);

-- name: recent_starts
-- What a user started directly since a time, and the oldest of it (for Retry-After): batches submitted or
-- restarted (not the nodes of runs) and runs triggered through the API (not by a schedule).
-- $1 real user, $2 since
select count(*)::int as n, min(t) as oldest from (
    select create_time as t from batches
    where real_user = $1 and create_time >= $2 and not batch_info ? 'runId'
    union all
    select create_time from runs where real_user = $1 and create_time >= $2 and trigger = 'API'
) started;

-- name: pause_queued
-- Hold a queued batch: no instance claims it until it is resumed. $1 id
update batches set state = 'PAUSED', paused_from = 'INITIALIZED', update_time = bg_now_ms()
where id = $1 and state = 'INITIALIZED'
returning *;

-- name: resume_queued
-- Put a held batch back in the queue. $1 id
update batches set state = 'INITIALIZED', paused_from = null, update_time = bg_now_ms()
where id = $1 and state = 'PAUSED' and paused_from = 'INITIALIZED'
returning *;

-- name: request_control
-- Ask the owner of a launched batch to pause or resume it; the trigger tells the owner.
-- $1 id, $2 PAUSE or RESUME, $3 the states it may be in
update batches set control = $2, update_time = bg_now_ms()
where id = $1 and instance is not null and state = any($3::text[])
returning *;

-- name: set_paused
-- The owner paused the application. $1 id, $2 instance, $3 batch_info to merge
update batches set state = 'PAUSED', paused_from = 'RUNNING', control = null, update_time = bg_now_ms(),
                   batch_info = batch_info || $3
where id = $1 and instance = $2 and state = 'RUNNING'
returning *;

-- name: set_resumed
-- The owner resumed the application. $1 id, $2 instance, $3 batch_info to merge
update batches set state = 'RUNNING', paused_from = null, control = null, update_time = bg_now_ms(),
                   batch_info = batch_info || $3
where id = $1 and instance = $2 and state = 'PAUSED'
returning *;

-- name: clear_control
-- A control request was handled (or refused). $1 id, $2 instance, $3 diagnostic for the batch info
update batches set control = null, batch_info = batch_info || $3
where id = $1 and instance = $2
returning *;

-- name: pending_controls
-- Pause/resume requests for this instance's batches (missed while disconnected). $1 instance
select id, control from batches where instance = $1 and control is not null;

-- name: merge_info
-- Merge facts into batch_info (owner only). $1 id, $2 instance, $3 info
update batches set batch_info = batch_info || $3, update_time = bg_now_ms()
where id = $1 and instance = $2
returning *;

-- name: save_details
-- Snapshot the engine's steps and counters, so they outlive the application. $1 id, $2 instance, $3 details
update batches set details = $3 where id = $1 and instance = $2;

-- name: drop_batch
-- Remove a terminal batch; its log and files go by cascade, the audit log keeps its entries. $1 id
delete from batches where id = $1 and state in ('FINISHED', 'ERROR', 'CANCELED')
returning id;

-- name: copy_files
-- Copy a batch's uploaded files to its restart. $1 from, $2 to
insert into batch_files (batch_id, name, chunk, data)
select $2, name, chunk, data from batch_files where batch_id = $1;

-- name: attempts
-- Every attempt of a batch: the original and its restarts, oldest first. $1 root id (text)
select * from batches where id = ($1::text)::uuid or batch_info ->> 'restartRoot' = $1::text
order by create_time, id;

-- name: insert_session
-- A new login session that ends $3 ms from now (the database's clock, shared by every instance).
-- $1 token hash, $2 user, $3 lifetime ms, $4 source ip
insert into sessions (token_hash, user_name, expires_at, source_ip)
values ($1, $2, bg_now_ms() + $3, $4)
returning token_hash, user_name, created_at, expires_at;

-- name: live_session
-- The session with this token hash, if it is neither expired nor revoked. $1 token hash
select token_hash, user_name, created_at, expires_at from sessions
where token_hash = $1 and revoked_at is null and expires_at > bg_now_ms();

-- name: revoke_session
-- End a session now; nothing is returned when it had ended already. $1 token hash
update sessions set revoked_at = bg_now_ms()
where token_hash = $1 and revoked_at is null and expires_at > bg_now_ms()
returning token_hash;

-- name: purge_sessions
-- Forget sessions that ended more than a day ago, a few at a time. $1 how many
delete from sessions where token_hash in (
    select token_hash from sessions
    where expires_at < bg_now_ms() - 86400000 or revoked_at < bg_now_ms() - 86400000
    limit $1
);

-- name: get_batch_by_seq
-- One batch by its sequence number (the Livy id). $1 seq
select * from batches where seq = $1;

-- name: log_tails
-- The last chunks of several batches' logs (at most $2 chunks each, newest first), enough to hold
-- their last $2 lines: one index scan backwards per batch. $1 batch ids, $2 lines
select t.batch_id, t.first_line, t.lines
from unnest($1::uuid[]) as ids(id)
cross join lateral (
    select c.batch_id, c.first_line, c.lines from batch_log_chunks c
    where c.batch_id = ids.id
    order by c.first_line desc
    limit $2
) t;

-- name: count_by_state
-- Batches by type and state, for the metrics (cached by the caller).
select batch_type, state, sum(n)::bigint as n from batch_counts group by batch_type, state having sum(n) <> 0;

-- name: compact_counts
-- Fold batch_counts' +n/-n rows into one row per (user, type, state). Rows appended meanwhile are not
-- in this statement's snapshot and stay; a concurrent fold skips the rows this one deleted.
with gone as (delete from batch_counts returning batch_user, batch_type, state, n)
insert into batch_counts
select batch_user, batch_type, state, sum(n) from gone group by 1, 2, 3 having sum(n) <> 0;

-- name: compact_time_counts
-- The same fold for batch_time_counts.
with gone as (delete from batch_time_counts returning span, bucket, n)
insert into batch_time_counts
select span, bucket, sum(n) from gone group by 1, 2 having sum(n) <> 0;

-- name: page_from_time
-- $3 batches in create_time order, from the $2-th (0-based) of those created at or after $1.
select * from batches where id in (
    select id from batches where create_time >= $1 order by create_time, id offset $2 limit $3)
order by create_time, id;

-- name: locate_bucket
-- Among the buckets of width $1 numbered in [$3, $4), the one holding row $2 (0-based, in create_time
-- order), given $5 rows before bucket $3: (bucket, rows before it). Nothing if row $2 is not there.
select bucket, before from (
    select bucket, n, sum(n) over (order by bucket) - n + $5 as before
    from (select bucket, sum(n) as n from batch_time_counts
          where span = $1 and bucket >= $3 and bucket < $4
          group by bucket having sum(n) <> 0) per_bucket
) running
where before <= $2 and $2 < before + n;

-- ===== jobs and runs =========================================================================

-- name: insert_job
-- A new job at version 1; nothing is returned if the name is taken.
-- $1 name, $2 owner, $3 description, $4 definition, $5 permissions, $6 project
insert into jobs (name, owner, description, definition, permissions, project)
values ($1, $2, $3, $4, $5, $6)
on conflict (name) do nothing
returning *;

-- name: update_job
-- A new version of a job. $1 name, $2 description, $3 definition, $4 permissions, $5 project
update jobs set version = version + 1, description = $2, definition = $3, permissions = $4, project = $5,
                updated_at = bg_now_ms()
where name = $1
returning *;

-- name: insert_job_version
-- Keep a version for the runs that use it. $1 job, $2 version, $3 definition, $4 author
insert into job_versions (job, version, definition, created_by) values ($1, $2, $3, $4)
on conflict do nothing;

-- name: get_job
-- One job. $1 name
select * from jobs where name = $1;

-- name: get_job_version
-- A job's definition at a version, and who saved it. $1 job, $2 version
select definition, created_by from job_versions where job = $1 and version = $2;

-- name: delete_job
-- Remove a job (its versions stay for its runs). $1 name
delete from jobs where name = $1 returning name;

-- name: active_runs_of_job
-- Runs of a job still going. $1 job
select id from runs where job = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED') order by create_time;

-- name: insert_job_log
-- One entry of a job's history. $1 job, $2 actor, $3 action, $4 detail
insert into job_log (job, actor, action, detail) values ($1, $2, $3, $4);

-- name: insert_run
-- A new run. $1 id, $2 job, $3 version, $4 trigger, $5 submit user, $6 real user, $7 variables,
-- $8 failure action, $9 project, $10 schedule id, $11 fire time
insert into runs (id, job, version, trigger, submit_user, real_user, variables, failure_action, project,
                  schedule_id, fire_time)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
returning *;

-- name: insert_run_nodes
-- A run's nodes, all at once. $1 run id, $2 node ids, $3 states, $4 dependencies (JSON arrays as text)
insert into run_nodes (run_id, node_id, position, state, depends_on)
select $1, n.node_id, n.position, n.state, array(select jsonb_array_elements_text(n.deps::jsonb))
from unnest($2::text[], $3::text[], $4::text[]) with ordinality as n(node_id, state, deps, position);

-- name: get_run
-- One run. $1 id
select * from runs where id = $1;

-- name: run_nodes
-- A run's nodes, in definition order of insertion. $1 run id, $2 changed after (ms; 0 for all)
select * from run_nodes where run_id = $1 and update_time > $2 order by position;

-- name: lock_run
-- Take a run for advancing; concurrent advancers wait, then see the committed result. $1 id
select * from runs where id = $1 for update;

-- name: run_nodes_with_batches
-- A run's nodes with their batches' states, under the run lock. $1 run id
select n.node_id, n.state, n.depends_on, n.batch_id, n.attempt, n.start_time, n.end_time,
       b.state as batch_state, b.app_start_time, b.end_time as batch_end_time
from run_nodes n left join batches b on b.id = n.batch_id
where n.run_id = $1
order by n.position;

-- name: update_run_nodes
-- Several node changes at once. $1 run id, $2 node ids, $3 states, $4 batch ids, $5 attempts,
-- $6 start times, $7 end times
update run_nodes n
set state = u.state, batch_id = u.batch_id, attempt = u.attempt, start_time = u.start_time,
    end_time = u.end_time, update_time = bg_now_ms()
from unnest($2::text[], $3::text[], $4::uuid[], $5::int[], $6::bigint[], $7::bigint[])
     as u(node_id, state, batch_id, attempt, start_time, end_time)
where n.run_id = $1 and n.node_id = u.node_id;

-- name: insert_node_batches
-- The admitted batches of nodes that became ready, all at once, each with its audit row. $1 ids, $2 types,
-- $3 users (each node's effective user), $4 real user, $5 names, $6 resources, $7 class names, $8 confs
-- (JSON text), $9 args (JSON text), $10 priorities, $11 project, $12 batch infos (JSON text)
with b as (
    insert into batches (id, batch_type, batch_user, real_user, name, resource, class_name, conf, args,
                         priority, project, batch_info)
    select b.id, b.batch_type, b.batch_user, $4, b.name, b.resource, b.class_name, b.conf::jsonb, b.args::jsonb,
           b.priority, $11, b.info::jsonb
    from unnest($1::uuid[], $2::text[], $3::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::int[], $12::text[])
         as b(id, batch_type, batch_user, name, resource, class_name, conf, args, priority, info)
    returning id, batch_type, batch_user, real_user, name, batch_info
)
insert into audit_log (actor, action, target, allowed, detail)
select b.real_user, 'submit', b.id::text, true,
       jsonb_build_object('batchType', b.batch_type, 'user', b.batch_user, 'name', b.name,
                          'run', b.batch_info ->> 'runId', 'node', b.batch_info ->> 'nodeId')
from b;

-- name: update_run
-- A run's own state. $1 id, $2 state, $3 start time, $4 end time, $5 paused, $6 attempt, $7 variables
update runs set state = $2, start_time = $3, end_time = $4, paused = $5, attempt = $6, variables = $7,
                update_time = bg_now_ms()
where id = $1
returning *;

-- name: insert_run_events
-- Changes of a run, in order. $1 run id, $2 node ids (null for the run itself), $3 states
insert into run_events (run_id, node_id, state)
select $1, e.node_id, e.state from unnest($2::text[], $3::text[]) with ordinality as e(node_id, state, n)
order by e.n;

-- name: run_events_after
-- A run's events after an id. $1 run id, $2 after id, $3 limit
select id, at, node_id, state from run_events where run_id = $1 and id > $2 order by id limit $3;

-- name: stale_runs
-- Active runs with a node whose batch has moved on without the run noticing (a missed event).
select distinct n.run_id from run_nodes n join batches b on b.id = n.batch_id
join runs r on r.id = n.run_id
where r.state in ('PREPARING', 'RUNNING', 'PAUSED')
  and ((n.state in ('QUEUED', 'RUNNING', 'PAUSED') and b.state in ('FINISHED', 'ERROR', 'CANCELED'))
       or (n.state = 'QUEUED' and b.state = 'RUNNING'))
limit 100;

-- name: preparing_runs
-- Runs created but never advanced (their creator died in between).
select id from runs where state = 'PREPARING' and create_time < bg_now_ms() - 5000 limit 100;

-- name: job_log
-- A job's history, newest first. $1 job, $2 offset, $3 limit
select id, at, actor, action, detail, count(*) over () as total from job_log
where job = $1 order by id desc offset $2 limit $3;

-- name: kill_run_batches
-- Ask the owners of these launched batches to kill them. $1 batch ids
update batches set kill_requested = true, update_time = bg_now_ms()
where id = any($1::uuid[]) and not kill_requested
  and (state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null));

-- name: cancel_run_batches
-- Cancel those of these batches that never left the queue. $1 batch ids, $2 diagnostic
update batches set state = 'CANCELED', app_state = 'KILLED', kill_requested = true, app_diagnostic = $2,
                   end_time = bg_now_ms(), update_time = bg_now_ms()
where id = any($1::uuid[]) and (state = 'INITIALIZED' or (state = 'PAUSED' and paused_from = 'INITIALIZED'));

-- ===== projects ==============================================================================

-- name: insert_project
-- A new project; nothing is returned if the name is taken. $1 name, $2 description, $3 owner, $4 members
insert into projects (name, description, owner, members) values ($1, $2, $3, $4)
on conflict (name) do nothing
returning *;

-- name: update_project
-- New description and members. $1 name, $2 description, $3 members
update projects set description = $2, members = $3, updated_at = bg_now_ms() where name = $1 returning *;

-- name: get_project
-- One project. $1 name
select * from projects where name = $1;

-- name: delete_project
-- Remove a project with its artifacts and log. $1 name
delete from projects where name = $1 returning name;

-- name: delete_project_log
-- A deleted project's log goes with it. $1 name
delete from project_log where project = $1;

-- name: project_live_batches
-- Batches of a project that are not finished. $1 name
select id from batches where project = $1 and state not in ('FINISHED', 'ERROR', 'CANCELED') limit 100;

-- name: project_live_runs
-- Runs of a project's jobs still going. $1 name
select id from runs where project = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED') limit 100;

-- name: member_projects
-- The projects a user is a member of (or owns), with the roles. $1 user
select name, owner, members -> $1 as roles from projects where owner = $1 or members ? $1;

-- name: insert_project_log
-- One entry of a project's log. $1 project, $2 actor, $3 action, $4 detail
insert into project_log (project, actor, action, detail) values ($1, $2, $3, $4);

-- name: project_log
-- A project's log, newest first. $1 project, $2 offset, $3 limit
select id, at, actor, action, detail, count(*) over () as total from project_log
where project = $1 order by id desc offset $2 limit $3;

-- name: next_artifact_version
-- The version the next upload gets; locks the project row so two uploads never take the same one.
-- $1 project
select coalesce((select max(version) from artifacts where project = $1), 0) + 1
from projects where name = $1 for update;

-- name: insert_artifact
-- An artifact's metadata. $1 project, $2 version, $3 size, $4 digest, $5 files, $6 uploader
insert into artifacts (project, version, size, digest, files, uploader) values ($1, $2, $3, $4, $5, $6)
returning project, version, size, digest, files, uploader, created_at;

-- name: insert_artifact_chunk
-- One chunk of an artifact's zip. $1 project, $2 version, $3 chunk, $4 bytes
insert into artifact_chunks (project, version, chunk, data) values ($1, $2, $3, $4);

-- name: list_artifacts
-- A project's artifacts, newest first. $1 project
select project, version, size, digest, files, uploader, created_at from artifacts
where project = $1 order by version desc;

-- name: get_artifact
-- One artifact's metadata; version 0 means the latest. $1 project, $2 version
select project, version, size, digest, files, uploader, created_at from artifacts
where project = $1 and ($2 = 0 or version = $2) order by version desc limit 1;

-- name: artifact_chunks
-- An artifact's zip, chunk by chunk. $1 project, $2 version
select data from artifact_chunks where project = $1 and version = $2 order by chunk;

-- name: finish_artifact
-- Size and digest of a stored artifact, known once all chunks are in. $1 project, $2 version, $3 size, $4 digest
update artifacts set size = $3, digest = $4 where project = $1 and version = $2
returning project, version, size, digest, files, uploader, created_at;

-- name: ring_queue
-- Tell every instance that queued batches are waiting (sent by the coalescing queue bell).
select pg_notify('batchgate_queue', '');

-- ===== schedules (gateway/store/schedules.py, docs/schedules.md) ==============================

-- name: insert_schedule
-- A new schedule. $1 id, $2 job, $3 owner, $4 description, $5 cron, $6 every, $7 timezone, $8 variables,
-- $9 concurrency, $10 catchup, $11 catchup bound, $12 start_at, $13 end_at, $14 anchor, $15 enabled, $16 next_fire
insert into schedules (id, job, owner, description, cron, every, timezone, variables, concurrency, catchup,
                       catchup_bound, start_at, end_at, anchor, enabled, next_fire)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
returning *;

-- name: update_schedule
-- Replace a schedule's settings. $1 id, $2 description, $3 cron, $4 every, $5 timezone, $6 variables,
-- $7 concurrency, $8 catchup, $9 catchup bound, $10 start_at, $11 end_at, $12 anchor, $13 enabled, $14 next_fire,
-- $15 owner (who changed it: its runs are triggered as this user from now on)
update schedules
set description = $2, cron = $3, every = $4, timezone = $5, variables = $6, concurrency = $7, catchup = $8,
    catchup_bound = $9, start_at = $10, end_at = $11, anchor = $12, enabled = $13, next_fire = $14, owner = $15,
    updated_at = bg_now_ms()
where id = $1
returning *;

-- name: get_schedule
-- One schedule. $1 id
select * from schedules where id = $1;

-- name: delete_schedule
-- Remove a schedule (its ticks and SLAs go with it). $1 id
delete from schedules where id = $1 returning *;

-- name: list_schedules
-- Schedules, by job then creation, with the total. $1 job (null: any), $2 reader (null: an admin, who sees
-- all), $3 the reader's projects, $4 offset, $5 limit
select s.*, count(*) over () as total
from schedules s join jobs j on j.name = s.job
where ($1::text is null or s.job = $1)
  and ($2::text is null or j.owner = $2 or j.permissions ? $2 or j.project = any($3::text[]))
order by s.job, s.created_at, s.id
offset $4 limit $5;

-- name: last_ticks
-- The newest tick of each of some schedules. $1 schedule ids
select distinct on (schedule_id) * from schedule_ticks where schedule_id = any($1::uuid[])
order by schedule_id, fire_time desc;

-- name: list_ticks
-- A schedule's ticks, newest first, with the total. $1 schedule id, $2 offset, $3 limit
select *, count(*) over () as total from schedule_ticks where schedule_id = $1
order by fire_time desc offset $2 limit $3;

-- name: next_fire
-- When the earliest enabled schedule fires next (null: none will).
select min(next_fire) from schedules where enabled and next_fire is not null;

-- name: due_schedules
-- Schedules with a tick due. $1 now, $2 limit
select id from schedules where enabled and next_fire is not null and next_fire <= $1 order by next_fire limit $2;

-- name: lock_due_schedule
-- Take a due schedule for this transaction; nothing if another instance has it or it is not due. $1 id, $2 now
select * from schedules where id = $1 and enabled and next_fire is not null and next_fire <= $2
for update skip locked;

-- name: lock_schedule_job
-- Serialize the concurrency decisions of one job's ticks across instances (until the transaction ends). $1 job
select pg_advisory_xact_lock(hashtext('batchgate.schedules'), hashtext($1));

-- name: job_busy
-- What keeps a job busy: its oldest active run, a tick being fired, ticks waiting. $1 job
select (select id from runs where job = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED')
        order by create_time limit 1) as run_id,
       exists (select 1 from schedule_ticks t join schedules s on s.id = t.schedule_id
               where s.job = $1 and t.outcome = 'PENDING') as firing,
       (select count(*) from schedule_ticks t join schedules s on s.id = t.schedule_id
        where s.job = $1 and t.outcome = 'QUEUED') as queued;

-- name: insert_tick
-- Claim one tick; nothing comes back when it was claimed before. $1 schedule id, $2 fire time, $3 instance,
-- $4 outcome, $5 reason
insert into schedule_ticks (schedule_id, fire_time, instance, outcome, reason) values ($1, $2, $3, $4, $5)
on conflict do nothing
returning *;

-- name: advance_schedule
-- Move a schedule past the ticks just claimed. $1 id, $2 next fire (null: none left), $3 last fire
update schedules set next_fire = $2, last_fire = greatest(coalesce(last_fire, $3), $3) where id = $1;

-- name: register_tick_deadlines
-- The deadlines of a schedule's SLAs for one tick, counted from its fire time. $1 schedule id, $2 fire time
insert into sla_deadlines (sla_id, target, kind, start_at, due_at)
select id, $1::uuid::text || '@' || $2::bigint::text, 'TICK', $2::bigint, $2::bigint + duration_ms
from slas where schedule_id = $1
on conflict do nothing;

-- name: finish_tick
-- Record how a claimed tick ended. $1 schedule id, $2 fire time, $3 outcome, $4 reason, $5 run id, $6 instance
update schedule_ticks set outcome = $3, reason = coalesce($4, reason), run_id = $5, updated_at = bg_now_ms()
where schedule_id = $1 and fire_time = $2 and outcome = 'PENDING' and instance = $6
returning *;

-- name: claim_queued_tick
-- Take the oldest queued tick of a job for this instance to fire. $1 job, $2 instance
update schedule_ticks t set outcome = 'PENDING', instance = $2, updated_at = bg_now_ms()
from (select q.schedule_id, q.fire_time from schedule_ticks q join schedules s on s.id = q.schedule_id
      where s.job = $1 and q.outcome = 'QUEUED' order by q.fire_time limit 1 for update of q skip locked) c
where t.schedule_id = c.schedule_id and t.fire_time = c.fire_time
returning t.*;

-- name: skip_queued_ticks
-- Give up a schedule's queued ticks (it was disabled). $1 schedule id, $2 reason
update schedule_ticks set outcome = 'SKIPPED', reason = $2, updated_at = bg_now_ms()
where schedule_id = $1 and outcome = 'QUEUED'
returning fire_time;

-- name: skip_queued_tick
-- Give up one queued tick (its SLA killed it). $1 schedule id, $2 fire time, $3 reason
update schedule_ticks set outcome = 'SKIPPED', reason = $3, updated_at = bg_now_ms()
where schedule_id = $1 and fire_time = $2 and outcome = 'QUEUED'
returning *;

-- name: jobs_with_queued_ticks
-- Jobs that have ticks waiting for a run to end.
select distinct s.job from schedule_ticks t join schedules s on s.id = t.schedule_id where t.outcome = 'QUEUED';

-- name: orphaned_ticks
-- Take over ticks claimed by an instance that died before firing them (its lease ran out), or, with $2,
-- this instance's own from before a restart. $1 instance, $2 include this instance's own
update schedule_ticks t set instance = $1, updated_at = bg_now_ms()
from (select o.schedule_id, o.fire_time from schedule_ticks o
      where o.outcome = 'PENDING'
        and ((o.instance = $1 and $2)
             or (o.instance <> $1 and not exists (select 1 from instances i
                                                  where i.id = o.instance and i.lease_until > bg_now_ms())))
      order by o.fire_time limit 100 for update of o skip locked) c
where t.schedule_id = c.schedule_id and t.fire_time = c.fire_time
returning t.*;

-- name: run_of_tick
-- The run a tick made, if it made one. $1 schedule id, $2 fire time
select id from runs where schedule_id = $1 and fire_time = $2;

-- ===== SLAs ===================================================================================

-- name: insert_sla
-- A new SLA; nothing comes back when its id exists (a batch submitted twice). $1 id, $2 owner, $3 job,
-- $4 schedule id, $5 batch id, $6 node, $7 rule, $8 duration ms, $9 actions, $10 webhook, $11 emails,
-- $12 description
insert into slas (id, owner, job, schedule_id, batch_id, node, rule, duration_ms, actions, webhook, emails,
                  description)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
on conflict (id) do nothing
returning *;

-- name: insert_batch_deadline
-- The deadline of a batch's SLA. $1 SLA id, $2 batch id, $3 counted from, $4 due
insert into sla_deadlines (sla_id, target, kind, start_at, due_at) values ($1, $2::text, 'BATCH', $3, $4)
on conflict do nothing;

-- name: get_sla
-- One SLA with its number of breaches. $1 id
select s.*, (select count(*) from sla_breaches b where b.sla_id = s.id) as breaches from slas s where s.id = $1;

-- name: delete_sla
-- Remove an SLA with its deadlines and breaches. $1 id
delete from slas where id = $1 returning *, 0::bigint as breaches;

-- name: list_slas
-- SLAs, newest first, with the total. $1 job, $2 schedule id, $3 batch id (each null: any), $4 reader
-- (null: an admin), $5 the reader's projects, $6 offset, $7 limit
select s.*, (select count(*) from sla_breaches b where b.sla_id = s.id) as breaches, count(*) over () as total
from slas s left join jobs j on j.name = s.job
where ($1::text is null or s.job = $1) and ($2::uuid is null or s.schedule_id = $2)
  and ($3::uuid is null or s.batch_id = $3)
  and ($4::text is null or s.owner = $4 or j.owner = $4 or j.permissions ? $4 or j.project = any($5::text[]))
order by s.created_at desc, s.id
offset $6 limit $7;

-- name: next_deadline
-- When the earliest open SLA deadline is due (null: none is open).
select min(due_at) from sla_deadlines where not fired;

-- name: claim_deadlines
-- Due deadlines with their SLAs, locked for this transaction (others skip them). $1 now, $2 limit
select d.target, d.kind, d.start_at, d.due_at, s.id as sla_id, s.owner, s.job, s.schedule_id, s.batch_id, s.node,
       s.rule, s.duration_ms, s.actions, s.webhook, s.emails
from sla_deadlines d join slas s on s.id = d.sla_id
where not d.fired and d.due_at <= $1
order by d.due_at limit $2
for update of d skip locked;

-- name: batch_progress
-- How far a batch got. $1 batch id
select state, app_start_time as started_at, end_time as ended_at, state = 'FINISHED' as succeeded
from batches where id = $1;

-- name: run_progress
-- How far a run (or, with $2, one of its nodes) got. $1 run id, $2 node id or null
select r.id as run_id, r.job,
       case when $2::text is null then
           (select min(n.start_time) from run_nodes n where n.run_id = r.id and n.start_time > 0
                   and n.state in ('RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED'))
       else (select case when n.state in ('RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'SKIPPED')
                         and n.start_time > 0 then n.start_time end
             from run_nodes n where n.run_id = r.id and n.node_id = $2) end as started_at,
       case when $2::text is null then case when r.state in ('SUCCEEDED', 'FAILED', 'KILLED') then r.end_time end
       else (select case when n.state in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED') then n.end_time end
             from run_nodes n where n.run_id = r.id and n.node_id = $2) end as ended_at,
       case when $2::text is null then r.state = 'SUCCEEDED'
       else coalesce((select n.state in ('SUCCEEDED', 'SKIPPED') from run_nodes n
                      where n.run_id = r.id and n.node_id = $2), false) end as succeeded,
       (select n.batch_id from run_nodes n where n.run_id = r.id and n.node_id = $2) as batch_id
from runs r where r.id = $1;

-- name: tick_of_deadline
-- The tick behind a schedule SLA's deadline and the run it made. $1 schedule id, $2 fire time
select t.outcome, coalesce(t.run_id, (select id from runs where schedule_id = $1 and fire_time = $2)) as run_id
from schedule_ticks t where t.schedule_id = $1 and t.fire_time = $2;

-- name: insert_breach
-- Record a breach once; nothing comes back when it was recorded before. $1 SLA id, $2 target, $3 kind, $4 job,
-- $5 run id, $6 batch id, $7 node, $8 rule, $9 start, $10 due, $11 instance
insert into sla_breaches (sla_id, target, kind, job, run_id, batch_id, node, rule, start_at, due_at, instance)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
on conflict on constraint sla_breaches_once do nothing
returning *;

-- name: close_deadline
-- A deadline has fired. $1 SLA id, $2 target, $3 outcome (MET, BREACHED, GONE)
update sla_deadlines set fired = true, outcome = $3 where sla_id = $1 and target = $2;

-- name: finish_breach
-- What a breach's actions did. $1 breach id, $2 results
update sla_breaches set actions_done = true, results = $2 where id = $1;

-- name: orphaned_breaches
-- Take over breaches whose actions an instance that died never finished, or, with $2, this instance's own
-- from before a restart. $1 instance, $2 include this instance's own
update sla_breaches b set instance = $1
from (select o.id from sla_breaches o
      where not o.actions_done
        and ((o.instance = $1 and $2)
             or (o.instance <> $1 and not exists (select 1 from instances i
                                                  where i.id = o.instance and i.lease_until > bg_now_ms())))
      order by o.breached_at limit 100 for update of o skip locked) c
where b.id = c.id
returning b.*;

-- name: list_breaches
-- An SLA's breaches, newest first, with the total. $1 SLA id, $2 offset, $3 limit
select *, count(*) over () as total from sla_breaches where sla_id = $1
order by breached_at desc, id desc offset $2 limit $3;

-- name: project_live_schedules
-- Enabled schedules of a project's jobs. $1 name
select s.id from schedules s join jobs j on j.name = s.job where j.project = $1 and s.enabled limit 100;
