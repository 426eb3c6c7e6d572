-- floor: 2
-- Character offsets for the log store (Azkaban's fetchExecJobLogs pages a log by characters, docs/azkaban.md
-- "Logs"): each chunk keeps how many characters it holds (chars: every line and the newline that ends it,
-- in Unicode code points) and where it starts (first_char: the characters of the batch's log before it),
-- so that the chunk holding character N is one index seek. An expand step: two nullable columns, an index
-- and a trigger; the previous release neither reads nor writes them, and its appends are counted by the
-- trigger like this release's.
-- No backfill here: counting means reading every stored line, too long for a migration holding the table.
-- A chunk written before this version has null counts; a batch's log is counted once, the first time a
-- character window of it is read (logs.sql count_log_chars), and the trigger counts every chunk appended
-- after a counted one. So the counted chunks of a batch are always a prefix of its log.
alter table batch_log_chunks add column chars bigint;
alter table batch_log_chunks add column first_char bigint;
create index batch_log_chunks_chars_idx on batch_log_chunks (batch_id, first_char)
    where first_char is not null;
create function bg_log_chunk_chars() returns trigger language plpgsql as
$$
begin
    new.chars := (select coalesce(sum(char_length(l) + 1), 0) from unnest(new.lines) as l);
    -- Appends of a batch are serialized by its row lock, and each query here sees what committed before it.
    select c.first_char + c.chars into new.first_char from batch_log_chunks c
    where c.batch_id = new.batch_id and c.first_line < new.first_line
    order by c.first_line desc limit 1;
    if not found then
        new.first_char := 0;
    end if;
    return new;
end
$$;
create trigger batch_log_chunks_chars before insert on batch_log_chunks
    for each row execute function bg_log_chunk_chars();
