-- The summary views (gateway/store/stats.py): batch counts over time and against the limits.
-- Every query of this file reads batches through an index: create_time, end_time (ended ones) or state
-- (active ones). The visibility clause is the list's: $4 the reader (null: everyone), $5 their projects.

-- name: stats_created
-- Batches created in [$1, $2), per bucket of $3 ms (0-based from $1) and their state now.
select ((create_time - $1) / $3)::int as bucket, state, count(*)::int as n
from batches
where create_time >= $1 and create_time < $2
  and ($4::text is null or batch_user = $4 or real_user = $4 or project = any($5::text[]))
group by 1, 2;

-- name: stats_ended
-- Batches ended in [$1, $2), per bucket of $3 ms and their end state.
select ((end_time - $1) / $3)::int as bucket, state, count(*)::int as n
from batches
where end_time >= $1 and end_time < $2
  and ($4::text is null or batch_user = $4 or real_user = $4 or project = any($5::text[]))
group by 1, 2;

-- name: stats_active
-- Per bucket of $3 ms in [$1, $2), how many batches were queued (created, not yet started) and running
-- at some moment of it; $6 is now (epoch ms), the end of what has not ended. Each batch's interval is
-- spread over the buckets it touches: those ended since $1, and those not ended at all.
with spans as (
    select create_time, app_start_time, end_time from batches
    where end_time >= $1 and create_time < $2
      and ($4::text is null or batch_user = $4 or real_user = $4 or project = any($5::text[]))
    union all
    select create_time, app_start_time, end_time from batches
    where state in ('INITIALIZED', 'PAUSED', 'PENDING', 'RUNNING') and create_time < $2
      and ($4::text is null or batch_user = $4 or real_user = $4 or project = any($5::text[]))
), intervals as (
    select 'queued' as kind, create_time as s,
           case when app_start_time > 0 then app_start_time when end_time > 0 then end_time else $6 end as e
    from spans
    union all
    select 'running', app_start_time, case when end_time > 0 then end_time else $6 end
    from spans where app_start_time > 0
)
select kind, b::int as bucket, count(*)::int as n
from intervals,
     generate_series(greatest(0, (s - $1) / $3), least(($2 - 1 - $1) / $3, (e - $1) / $3)) as b
where e >= $1 and s < $2
group by 1, 2;

-- name: limit_usage
-- Batches counted against the limits (as active_counts in queries.sql does) and queued, per user and type.
select batch_user, batch_type,
       count(*) filter (where state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null))::int
           as running,
       count(*) filter (where state = 'INITIALIZED')::int as queued
from batches
where state in ('INITIALIZED', 'PAUSED', 'PENDING', 'RUNNING')
group by 1, 2;
