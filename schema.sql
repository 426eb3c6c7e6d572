-- batchgate: the whole schema of a fresh database.
-- gateway.store.migrate applies it to an empty database only, and stamps that database with every schema
-- version (a row of schema_version each). A database made by an older release gets the numbered files of
-- gateway/store/migrations/ instead. A change to the schema is a new migration file plus the same change
-- here; a test compares a fresh database with a migrated one (docs/operations.md, Upgrades).

-- One row per applied schema version. code_floor: the oldest code, by the newest schema version it knows,
-- that still works on the database after this version.
create table if not exists schema_version (
    version integer primary key,
    applied_at timestamptz not null default now(),
    name text not null default '',
    code_floor integer not null default 1
);

create or replace function bg_now_ms() returns bigint language sql volatile as
$$ select (extract(epoch from clock_timestamp()) * 1000)::bigint $$;

-- One row per running gateway process. The lease is what other instances look at to decide
-- whether the owner of a batch is still alive.
create table if not exists instances (
    id text primary key,
    address text not null,
    started_at bigint not null default bg_now_ms(),
    heartbeat_at bigint not null default bg_now_ms(),
    lease_until bigint not null,
    draining boolean not null default false,
    schema_known integer not null default 1             -- the newest schema version its code knows
);

-- A batch row is also its queue entry: state INITIALIZED means queued.
create table if not exists batches (
    id uuid primary key,
    seq bigint generated always as identity unique,      -- Livy's integer id
    batch_type text not null,
    batch_user text not null,                             -- the effective (proxy) user
    real_user text not null,                              -- who authenticated
    name text,
    resource text not null,
    class_name text,
    conf jsonb not null default '{}',
    args jsonb not null default '[]',
    priority integer not null default 0,
    project text,
    state text not null default 'INITIALIZED',
    app_id text,
    app_url text,
    app_state text,
    app_diagnostic text,
    app_start_time bigint not null default 0,
    instance text,                                        -- kyuubiInstance: the owner while PENDING/RUNNING
    create_time bigint not null default bg_now_ms(),
    claim_time bigint not null default 0,
    launch_time bigint not null default 0,
    end_time bigint not null default 0,
    update_time bigint not null default bg_now_ms(),
    kill_requested boolean not null default false,
    handle jsonb,                                         -- what an engine needs to re-attach after a restart
    batch_info jsonb not null default '{}',
    wait_reason text,                                     -- why a queued batch is still waiting
    log_lines bigint not null default 0,
    log_offset bigint not null default 0,                 -- bytes of engine output already in the log
    control text,                                         -- a pending PAUSE or RESUME for the owner
    paused_from text,                                     -- INITIALIZED or RUNNING while PAUSED
    details jsonb not null default '{}',                  -- the engine's steps and counters, snapshotted
    duration bigint generated always as (case when end_time > 0 then end_time - create_time end) stored,
    constraint batches_state_check check (state in
        ('INITIALIZED', 'PAUSED', 'PENDING', 'RUNNING', 'FINISHED', 'ERROR', 'CANCELED'))
);

-- end_time rides along so that a time-range list (createTime..endTime) is counted and paged from the index
-- alone; it costs no HOT updates, since end_time is indexed anyway.
create index if not exists batches_create_end_idx on batches (create_time, id) include (end_time);
create index if not exists batches_user_create_time_idx on batches (batch_user, create_time, id);
create index if not exists batches_state_create_time_idx on batches (state, create_time, id);
create index if not exists batches_name_create_time_idx on batches (name, create_time, id);
create index if not exists batches_end_time_idx on batches (end_time) where end_time > 0;
create index if not exists batches_queue_idx on batches (priority desc, create_time)
    where state = 'INITIALIZED';
create index if not exists batches_active_idx on batches (instance)
    where state in ('PENDING', 'RUNNING', 'PAUSED');
create index if not exists batches_end_time_sort_idx on batches (end_time, id);
create index if not exists batches_duration_idx on batches (duration, id);
create index if not exists batches_name_sort_idx on batches (name, id);
-- Names are split into words on the same characters the key search splits on: Postgres' own parser
-- would read "build-2024" as the word "build" and the number "-2024", so "2024" would never match.
create index if not exists batches_name_terms_idx on batches
    using gin (to_tsvector('simple', regexp_replace(coalesce(name, ''), '[^0-9A-Za-z]+', ' ', 'g')));
create index if not exists batches_restart_root_idx on batches ((batch_info ->> 'restartRoot'))
    where batch_info ? 'restartRoot';

-- Logs are numbered chunks of lines: reading from line N is an index seek, whatever N is.
create table if not exists batch_log_chunks (
    batch_id uuid not null references batches (id) on delete cascade,
    first_line bigint not null,
    lines text[] not null,
    -- Characters (code points) of the chunk's lines, each with the newline that ends it, and of the batch's
    -- log before the chunk: a character window is an index seek. Null on chunks written before schema
    -- version 4 until the batch's log is first read by characters (migrations/0004_log_chunk_chars.sql).
    chars bigint,
    first_char bigint,
    primary key (batch_id, first_line)
);
create index if not exists batch_log_chunks_chars_idx on batch_log_chunks (batch_id, first_char)
    where first_char is not null;

-- Every chunk appended is counted, after the chunk before it (appends of a batch hold its row lock).
create or replace function bg_log_chunk_chars() returns trigger language plpgsql as
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

drop trigger if exists batch_log_chunks_chars on batch_log_chunks;
create trigger batch_log_chunks_chars before insert on batch_log_chunks
    for each row execute function bg_log_chunk_chars();

-- Files uploaded with a batch, kept in the database so that whichever instance claims the batch
-- can materialize them in its working dir.
create table if not exists batch_files (
    batch_id uuid not null references batches (id) on delete cascade,
    name text not null,
    chunk integer not null,
    data bytea not null,
    primary key (batch_id, name, chunk)
);

-- Who did what, when, from where: submits, kills, denied attempts. Append-only.
create table if not exists audit_log (
    id bigint generated always as identity primary key,
    at bigint not null default bg_now_ms(),
    actor text not null,
    action text not null,
    target text,
    allowed boolean not null default true,
    source_ip text,
    detail jsonb not null default '{}'
);
create index if not exists audit_log_at_idx on audit_log (at, id);
create index if not exists audit_log_actor_at_idx on audit_log (actor, at, id);
create index if not exists audit_log_target_idx on audit_log (target, at, id);
create index if not exists batches_real_user_create_time_idx on batches (real_user, create_time);

-- Login sessions (POST /api/v1/sessions). Only the SHA-256 of a token is kept: a copy of this table
-- logs nobody in. A session ends when it expires or is revoked; rows are purged a day later.
create table if not exists sessions (
    token_hash bytea primary key,
    user_name text not null,
    created_at bigint not null default bg_now_ms(),
    expires_at bigint not null,
    revoked_at bigint,
    source_ip text
);
create index if not exists sessions_expires_at_idx on sessions (expires_at);

-- Projects group batches and jobs; members hold roles on everything in them.
create table if not exists projects (
    name text primary key,
    description text,
    owner text not null,
    members jsonb not null default '{}',              -- {user: [READ, EXECUTE, WRITE, SCHEDULE, ADMIN]}
    created_at bigint not null default bg_now_ms(),
    updated_at bigint not null default bg_now_ms()
);

-- Versioned code bundles (zip files), kept in the database so that every instance can read them.
create table if not exists artifacts (
    project text not null references projects (name) on delete cascade,
    version integer not null,
    size bigint not null,
    digest text not null,
    files jsonb not null,                             -- the file names in the zip
    uploader text not null,
    created_at bigint not null default bg_now_ms(),
    primary key (project, version)
);

create table if not exists artifact_chunks (
    project text not null,
    version integer not null,
    chunk integer not null,
    data bytea not null,
    primary key (project, version, chunk),
    foreign key (project, version) references artifacts (project, version) on delete cascade
);

-- Who did what in a project, written in the same transaction as the change it records.
create table if not exists project_log (
    id bigint generated always as identity primary key,
    project text not null,
    at bigint not null default bg_now_ms(),
    actor text not null,
    action text not null,
    detail jsonb not null default '{}'
);
create index if not exists project_log_project_idx on project_log (project, id);
create index if not exists batches_project_idx on batches (project, create_time, id) where project is not null;

-- Jobs: named, versioned definitions. A run keeps the version it started with (job_versions).
create table if not exists jobs (
    name text primary key,
    owner text not null,
    version integer not null default 1,
    description text,
    definition jsonb not null,                       -- {nodes, variables, failureAction}
    permissions jsonb not null default '{}',         -- {user: [READ, EXECUTE, WRITE, SCHEDULE]}
    project text,
    created_at bigint not null default bg_now_ms(),
    updated_at bigint not null default bg_now_ms()
);
create index if not exists jobs_owner_idx on jobs (owner, name);
create index if not exists jobs_project_idx on jobs (project, name);

create table if not exists job_versions (
    job text not null,
    version integer not null,
    definition jsonb not null,
    created_by text not null,
    created_at bigint not null default bg_now_ms(),
    primary key (job, version)
);

-- A job's own history: created, updated, triggered, deleted, scheduled ... by whom and when.
create table if not exists job_log (
    id bigint generated always as identity primary key,
    job text not null,
    at bigint not null default bg_now_ms(),
    actor text not null,
    action text not null,
    detail jsonb not null default '{}'
);
create index if not exists job_log_job_idx on job_log (job, id);

-- A run is one execution of one job version; each node becomes an ordinary batch.
create table if not exists runs (
    id uuid primary key,
    job text not null,
    version integer not null,
    state text not null default 'PREPARING',
    trigger text not null default 'API',
    submit_user text not null,
    real_user text not null,
    variables jsonb not null default '{}',
    failure_action text not null,
    paused boolean not null default false,
    attempt integer not null default 1,
    project text,
    schedule_id uuid,
    fire_time bigint,
    create_time bigint not null default bg_now_ms(),
    start_time bigint not null default 0,
    end_time bigint not null default 0,
    update_time bigint not null default bg_now_ms(),
    after_run uuid,                                   -- a sequence: this run starts once that one succeeded
    constraint runs_state_check check (state in
        ('PREPARING', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'KILLED'))
);
create index if not exists runs_job_idx on runs (job, create_time desc, id);
create index if not exists runs_state_idx on runs (state, create_time desc, id);
create index if not exists runs_create_time_idx on runs (create_time desc, id);
create index if not exists runs_active_idx on runs (id) where state in ('PREPARING', 'RUNNING', 'PAUSED');
create index if not exists runs_after_run_idx on runs (after_run) where after_run is not null;

create table if not exists run_nodes (
    run_id uuid not null references runs (id) on delete cascade,
    node_id text not null,
    position integer not null default 0,             -- the node's place in the job definition
    state text not null default 'READY',
    depends_on text[] not null default '{}',
    batch_id uuid,
    attempt integer not null default 1,
    start_time bigint not null default 0,
    end_time bigint not null default 0,
    update_time bigint not null default bg_now_ms(),
    primary key (run_id, node_id),
    constraint run_nodes_state_check check (state in
        ('READY', 'QUEUED', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED'))
);
create index if not exists run_nodes_batch_idx on run_nodes (batch_id) where batch_id is not null;

-- Every change of a run or one of its nodes, in order: the source of the run's event stream.
create table if not exists run_events (
    id bigint generated always as identity primary key,
    run_id uuid not null references runs (id) on delete cascade,
    at bigint not null default bg_now_ms(),
    node_id text,
    state text not null,
    detail jsonb not null default '{}'
);
create index if not exists run_events_run_idx on run_events (run_id, id);

create or replace function bg_run_events_notify() returns trigger language plpgsql as
$$
begin
    perform pg_notify('batchgate_run', new.run_id::text || ' ' || new.id::text);
    return new;
end
$$;

drop trigger if exists run_events_notify on run_events;
create trigger run_events_notify after insert on run_events
    for each row execute function bg_run_events_notify();

-- Schedules (docs/schedules.md): a job fires by itself, by a cron expression or a period, in a zone.
-- next_fire is the next tick nobody has claimed yet: every instance sleeps until min(next_fire).
create table if not exists schedules (
    id uuid primary key,
    job text not null references jobs (name) on delete cascade,
    owner text not null,                              -- runs are triggered as this user
    description text,
    cron text,
    every text,
    timezone text not null default 'UTC',
    variables jsonb not null default '{}',
    concurrency text not null default 'SKIP',
    catchup text not null default 'LAST',
    catchup_bound integer not null default 10,
    start_at bigint,
    end_at bigint,
    anchor bigint not null,                           -- where a period counts from
    enabled boolean not null default true,
    next_fire bigint,                                 -- null: nothing left to fire (or disabled)
    last_fire bigint,
    created_at bigint not null default bg_now_ms(),
    updated_at bigint not null default bg_now_ms(),
    constraint schedules_timing_check check ((cron is null) <> (every is null)),
    constraint schedules_concurrency_check check (concurrency in ('SKIP', 'QUEUE', 'ALLOW')),
    constraint schedules_catchup_check check (catchup in ('NONE', 'LAST', 'ALL'))
);
create index if not exists schedules_next_fire_idx on schedules (next_fire) where enabled and next_fire is not null;
create index if not exists schedules_job_idx on schedules (job);

-- One row per schedule and fire time: inserting it is the claim, so a tick fires once across instances.
-- outcome: PENDING (claimed, being fired), QUEUED (waits for the job's active run), FIRED, SKIPPED, FAILED.
create table if not exists schedule_ticks (
    schedule_id uuid not null references schedules (id) on delete cascade,
    fire_time bigint not null,
    instance text not null,
    outcome text not null,
    reason text,
    run_id uuid,
    claimed_at bigint not null default bg_now_ms(),
    updated_at bigint not null default bg_now_ms(),
    primary key (schedule_id, fire_time)
);
create index if not exists schedule_ticks_open_idx on schedule_ticks (outcome, fire_time)
    where outcome in ('PENDING', 'QUEUED');
-- A run per tick at most, whatever happens to the instance that fired it.
create unique index if not exists runs_schedule_tick_idx on runs (schedule_id, fire_time)
    where schedule_id is not null;

-- SLAs: a rule with a duration on a job (each run), a node of it, a schedule (each tick, from its fire
-- time) or one batch (from its conf). Deadlines are rows, so every instance's timer sees them.
create table if not exists slas (
    id uuid primary key,
    owner text not null,
    job text references jobs (name) on delete cascade,
    schedule_id uuid references schedules (id) on delete cascade,
    batch_id uuid,                                    -- no foreign key: retention purges batches
    node text,
    rule text not null,
    duration_ms bigint not null,
    actions text[] not null,
    webhook text,
    emails text[] not null default '{}',
    description text,
    created_at bigint not null default bg_now_ms(),
    constraint slas_target_check check (num_nonnulls(job, batch_id) = 1),
    constraint slas_rule_check check (rule in ('START_WITHIN', 'FINISH_WITHIN', 'SUCCEED_WITHIN'))
);
create index if not exists slas_job_idx on slas (job) where job is not null;
create index if not exists slas_schedule_idx on slas (schedule_id) where schedule_id is not null;
create index if not exists slas_batch_idx on slas (batch_id) where batch_id is not null;

-- target: a run id (RUN), a batch id (BATCH) or "<schedule id>@<fire time>" (TICK).
create table if not exists sla_deadlines (
    sla_id uuid not null references slas (id) on delete cascade,
    target text not null,
    kind text not null,
    start_at bigint not null,
    due_at bigint not null,
    fired boolean not null default false,
    outcome text,                                     -- MET, BREACHED or GONE once fired
    primary key (sla_id, target)
);
create index if not exists sla_deadlines_due_idx on sla_deadlines (due_at) where not fired;

-- A breach is recorded once per SLA and target; its actions run after, and record what they did.
create table if not exists sla_breaches (
    id bigint generated always as identity primary key,
    sla_id uuid not null references slas (id) on delete cascade,
    target text not null,
    kind text not null,
    job text,
    run_id uuid,
    batch_id uuid,
    node text,
    rule text not null,
    start_at bigint not null,
    due_at bigint not null,
    breached_at bigint not null default bg_now_ms(),
    instance text not null,
    actions_done boolean not null default false,
    results jsonb not null default '{}',
    constraint sla_breaches_once unique (sla_id, target)
);
create index if not exists sla_breaches_open_idx on sla_breaches (breached_at) where not actions_done;

-- Every run of a job with SLAs gets its deadlines in the transaction that creates it.
create or replace function bg_runs_sla_deadlines() returns trigger language plpgsql as
$$
begin
    insert into sla_deadlines (sla_id, target, kind, start_at, due_at)
    select s.id, new.id::text, 'RUN', new.create_time, new.create_time + s.duration_ms
    from slas s where s.job = new.job and s.schedule_id is null
    on conflict do nothing;
    return new;
end
$$;

drop trigger if exists runs_sla_deadlines on runs;
create trigger runs_sla_deadlines after insert on runs
    for each row execute function bg_runs_sla_deadlines();

-- batchgate_schedule: "<schedule id>" when a schedule changed, "run-ended <job>" when a run of a job
-- with schedules ended (a queued tick may fire now). batchgate_deadline: "<due_at>" for a new deadline.
create or replace function bg_schedules_notify() returns trigger language plpgsql as
$$
begin
    perform pg_notify('batchgate_schedule', coalesce(new.id, old.id)::text);
    return null;
end
$$;

drop trigger if exists schedules_notify on schedules;
create trigger schedules_notify after insert or update or delete on schedules
    for each row execute function bg_schedules_notify();

create or replace function bg_runs_ended_notify() returns trigger language plpgsql as
$$
begin
    if new.state in ('SUCCEEDED', 'FAILED', 'KILLED') and old.state not in ('SUCCEEDED', 'FAILED', 'KILLED')
       and exists (select 1 from schedules where job = new.job) then
        perform pg_notify('batchgate_schedule', 'run-ended ' || new.job);
    end if;
    return null;
end
$$;

drop trigger if exists runs_ended_notify on runs;
create trigger runs_ended_notify after update of state on runs
    for each row execute function bg_runs_ended_notify();

create or replace function bg_deadlines_notify() returns trigger language plpgsql as
$$
begin
    perform pg_notify('batchgate_deadline', new.due_at::text);
    return null;
end
$$;

drop trigger if exists sla_deadlines_notify on sla_deadlines;
create trigger sla_deadlines_notify after insert on sla_deadlines
    for each row execute function bg_deadlines_notify();

-- Every writer wakes every instance through these notifications; nobody polls for them.
--   batchgate_queue: a batch became claimable, or capacity was freed
--   batchgate_state: "<id> <state>" after a state change
--   batchgate_kill:  "<instance> <id>" when a kill is requested for a batch that instance owns
--   batchgate_log:   "<id> <log_lines>" after lines were appended
--   batchgate_control: "<instance> <id> <PAUSE|RESUME>" when a running batch is paused or resumed
--   batchgate_run_batch: "<run id> <batch id>" when a node batch of a run changes state
--   batchgate_run:   "<run id> <event id>" after a run or node change was recorded
--   batchgate_schedule: "<schedule id>" after a schedule changed; "run-ended <job>" (schedules above)
--   batchgate_deadline: "<due_at>" after an SLA deadline was registered
create or replace function bg_batches_notify() returns trigger language plpgsql as
$$
begin
    if tg_op = 'INSERT' then
        -- No NOTIFY here: a notifying commit takes a database-wide lock, which would serialize every
        -- submit. Submitters ring the queue bell instead (gateway/listener.py QueueBell), coalesced.
        return new;
    end if;
    if new.state is distinct from old.state or new.app_state is distinct from old.app_state
       or new.app_id is distinct from old.app_id then
        perform pg_notify('batchgate_state', new.id::text || ' ' || new.state);
        if new.batch_info ? 'runId' and new.state is distinct from old.state then
            perform pg_notify('batchgate_run_batch', (new.batch_info ->> 'runId') || ' ' || new.id::text);
        end if;
        if new.state = 'INITIALIZED'
           or (old.state in ('PENDING', 'RUNNING') and new.state not in ('PENDING', 'RUNNING')) then
            perform pg_notify('batchgate_queue', '');
        end if;
    end if;
    if new.kill_requested and not old.kill_requested and new.instance is not null then
        perform pg_notify('batchgate_kill', new.instance || ' ' || new.id::text);
    end if;
    if new.control is not null and new.control is distinct from old.control and new.instance is not null then
        perform pg_notify('batchgate_control', new.instance || ' ' || new.id::text || ' ' || new.control);
    end if;
    if new.log_lines <> old.log_lines then
        perform pg_notify('batchgate_log', new.id::text || ' ' || new.log_lines::text);
    end if;
    return new;
end
$$;

drop trigger if exists batches_notify on batches;
create trigger batches_notify after insert or update on batches
    for each row execute function bg_batches_notify();

-- batch_time_counts: how many batches were created in each hour and each minute. An unfiltered list
-- deep in its pages finds the minute holding row N from these sums and walks only inside it, instead of
-- skipping N index entries (Store.list_batches). create_time never changes, so only inserts and deletes
-- count; appended and folded like batch_counts.
create or replace function bg_time_spans() returns table (span bigint) language sql immutable as
$$ values (3600000::bigint), (60000::bigint) $$;

-- Exact numbers of batches per (user, type, state), so that a list's total is a sum over a few rows
-- instead of count(*) over millions. Writers only append +n/-n rows (no hot row for concurrent submits
-- to queue on); Store.compact_counts folds them every few seconds.
create table if not exists batch_counts (
    batch_user text not null,
    batch_type text not null,
    state text not null,
    n bigint not null
);

create table if not exists batch_time_counts (
    span bigint not null,                         -- bucket width in ms: an hour or a minute
    bucket bigint not null,                       -- create_time / span
    n bigint not null
);

create or replace function bg_batches_count_insert() returns trigger language plpgsql as
$$
begin
    insert into batch_counts select batch_user, batch_type, state, count(*) from new_rows group by 1, 2, 3;
    insert into batch_time_counts
    select s.span, r.create_time / s.span, count(*) from new_rows r, bg_time_spans() s group by 1, 2;
    return null;
end
$$;

create or replace function bg_batches_count_update() returns trigger language plpgsql as
$$
begin
    insert into batch_counts values (old.batch_user, old.batch_type, old.state, -1),
                                    (new.batch_user, new.batch_type, new.state, 1);
    return null;
end
$$;

create or replace function bg_batches_count_delete() returns trigger language plpgsql as
$$
begin
    insert into batch_counts select batch_user, batch_type, state, -count(*) from old_rows group by 1, 2, 3;
    insert into batch_time_counts
    select s.span, r.create_time / s.span, -count(*) from old_rows r, bg_time_spans() s group by 1, 2;
    return null;
end
$$;

-- Inserts and deletes come in bulk too (fills, the retention purge): one statement, one insert here.
-- Updates come one row at a time, and most (log appends, heartbeats) change no counted column: a row
-- trigger with a WHEN clause costs those nothing.
drop trigger if exists batches_count_insert on batches;
create trigger batches_count_insert after insert on batches
    referencing new table as new_rows for each statement execute function bg_batches_count_insert();
drop trigger if exists batches_count_update on batches;
create trigger batches_count_update after update on batches for each row
    when ((old.state, old.batch_user, old.batch_type) is distinct from (new.state, new.batch_user, new.batch_type))
    execute function bg_batches_count_update();
drop trigger if exists batches_count_delete on batches;
create trigger batches_count_delete after delete on batches
    referencing old table as old_rows for each statement execute function bg_batches_count_delete();

-- Numbers (and UUIDs) for what batchgate names otherwise, where another system's API needs them
-- (docs/datameer.md, docs/azkaban.md): Datameer's file-id, uuid and job-execution-id, Azkaban's
-- projectId, execid and scheduleId. A row is made the first time a dialect shows the thing; `key` is
-- the thing's own id in its kind (a run's id; a job's or a project's name and creation time).
create table if not exists dialect_ids (
    kind text not null,
    key text not null,
    id bigint generated always as identity,
    uid uuid not null default gen_random_uuid(),
    primary key (kind, key),
    constraint dialect_ids_id_key unique (id),
    constraint dialect_ids_uid_key unique (uid)
);
