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

-- name: log_uncounted
-- Whether a batch's log has chunks written before the character counts existed: its last chunk is not
-- counted (the counted chunks are a prefix). One index seek backwards; no row when there is no log.
-- $1 batch id
select first_char is null as uncounted from batch_log_chunks
where batch_id = $1
order by first_line desc
limit 1;

-- name: lock_log
-- Hold a batch's appends (they take its row lock) while its log is counted. $1 batch id
select id from batches where id = $1 for update;

-- name: count_log_chars
-- Count the characters of a batch's log written before the counts existed: every chunk's length and the
-- running sum before it, in one pass over the batch's chunks. Run after lock_log, in its transaction.
-- $1 batch id
with counted as (
    select c.first_line, s.chars, sum(s.chars) over (order by c.first_line) - s.chars as first_char
    from batch_log_chunks c
    cross join lateral (
        select coalesce(c.chars, (select coalesce(sum(char_length(l) + 1), 0) from unnest(c.lines) as l)) as chars
    ) s
    where c.batch_id = $1
)
update batch_log_chunks c set chars = counted.chars, first_char = counted.first_char
from counted
where c.batch_id = $1 and c.first_line = counted.first_line and c.first_char is null;

-- name: log_char_end
-- The length in characters of a batch's counted log: where its last chunk ends (one index seek backwards).
-- $1 batch id
select first_char + chars from batch_log_chunks
where batch_id = $1
order by first_line desc
limit 1;

-- name: read_log_chars
-- The chunks holding characters [$2, $2 + $3) of a batch's counted log, each with the offset of its first
-- character, in order: the last chunk starting at or before $2 (one index seek), and those after it that
-- start inside the window. $1 batch id, $2 from, $3 size
select first_char, lines from batch_log_chunks
where batch_id = $1 and first_char is not null and first_char < $2::bigint + $3::bigint
  and first_char >= coalesce((select max(first_char) from batch_log_chunks
                              where batch_id = $1 and first_char is not null and first_char <= $2::bigint), 0)
order by first_line;
