-- The audit log, and what users started (for rate limits).
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

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
