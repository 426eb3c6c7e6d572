-- Batches: queue, launch and state, files, retention, counts, the list's deep pages.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

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

-- name: copy_files
-- Copy a batch's uploaded files to its restart. $1 from, $2 to
insert into batch_files (batch_id, name, chunk, data)
select $2, name, chunk, data from batch_files where batch_id = $1;

-- name: get_batch_by_seq
-- One batch by its sequence number (the Livy id). $1 seq
select * from batches where seq = $1;

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

-- name: ring_queue
-- Tell every instance that queued batches are waiting (sent by the coalescing queue bell).
select pg_notify('batchgate_queue', '');
