-- Claims: the scheduler's transaction under the cross-instance claim lock (limits counted in it).
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: lock_claims
-- Claimers take this lock so that limit checks and claims are one atomic step across instances.
select pg_advisory_xact_lock(8317000002);

-- name: active_counts
-- Running batches per user and type, for the limits. Call under the claim lock.
select batch_user, batch_type, count(*)::int as n from batches
where state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null)
group by batch_user, batch_type;

-- name: claim_candidates
-- Queued batches in claim order, locked for this transaction, skipping ones another claimer holds.
-- $1 how many to look at
select id, batch_user, batch_type from batches
where state = 'INITIALIZED'
order by priority desc, create_time, id
limit $1
for update skip locked;

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
