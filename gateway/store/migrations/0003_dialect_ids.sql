-- floor: 2
-- The Datameer and Azkaban dialects (docs/datameer.md, docs/azkaban.md). An expand step: a new table and a
-- nullable column; the previous release neither reads nor writes them.
-- dialect_ids: the integer ids (and UUIDs) those APIs give jobs, runs, projects and schedules, made the
-- first time a dialect shows one. runs.after_run: a run of a sequence waits for that run (Datameer's
-- sequential trigger); the partial index finds the runs waiting for one that ends.
create table dialect_ids (
    kind text not null,
    key text not null,
    id bigint generated always as identity,
    uid uuid not null default gen_random_uuid(),
    primary key (kind, key),
    constraint dialect_ids_id_key unique (id),
    constraint dialect_ids_uid_key unique (uid)
);
alter table runs add column after_run uuid;
create index runs_after_run_idx on runs (after_run) where after_run is not null;
