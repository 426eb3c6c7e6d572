-- Batch logs: numbered lines in chunks.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

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

-- name: purge_log_chunks
-- Delete up to $2 log chunks of terminal batches that ended before $1, so that purging a batch with
-- a huge log never becomes one long statement.
delete from batch_log_chunks
where ctid in (
    select c.ctid from batch_log_chunks c join batches b on b.id = c.batch_id
    where b.end_time > 0 and b.end_time < $1
    limit $2
);

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
