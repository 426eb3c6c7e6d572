-- Job control on batches: pause, resume, drop, control requests and what the owner does with them,
-- a restart's attempts.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

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

-- name: attempts
-- Every attempt of a batch: the original and its restarts, oldest first. $1 root id (text)
select * from batches where id = ($1::text)::uuid or batch_info ->> 'restartRoot' = $1::text
order by create_time, id;
