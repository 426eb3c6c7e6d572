-- Jobs, their versions and history; runs, their nodes and events.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: insert_job
-- A new job at version 1; nothing is returned if the name is taken.
-- $1 name, $2 owner, $3 description, $4 definition, $5 permissions, $6 project
insert into jobs (name, owner, description, definition, permissions, project)
values ($1, $2, $3, $4, $5, $6)
on conflict (name) do nothing
returning *;

-- name: update_job
-- A new version of a job. $1 name, $2 description, $3 definition, $4 permissions, $5 project
update jobs set version = version + 1, description = $2, definition = $3, permissions = $4, project = $5,
                updated_at = bg_now_ms()
where name = $1
returning *;

-- name: insert_job_version
-- Keep a version for the runs that use it. $1 job, $2 version, $3 definition, $4 author
insert into job_versions (job, version, definition, created_by) values ($1, $2, $3, $4)
on conflict do nothing;

-- name: get_job
-- One job. $1 name
select * from jobs where name = $1;

-- name: get_job_version
-- A job's definition at a version, and who saved it. $1 job, $2 version
select definition, created_by from job_versions where job = $1 and version = $2;

-- name: delete_job
-- Remove a job (its versions stay for its runs). $1 name
delete from jobs where name = $1 returning name;

-- name: delete_runs_of_job
-- Remove the records of a job's ended runs (their nodes and events go with them). $1 job
delete from runs where job = $1 and state in ('SUCCEEDED', 'FAILED', 'KILLED') returning id;

-- name: active_runs_of_job
-- Runs of a job still going. $1 job
select id from runs where job = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED') order by create_time;

-- name: insert_job_log
-- One entry of a job's history. $1 job, $2 actor, $3 action, $4 detail
insert into job_log (job, actor, action, detail) values ($1, $2, $3, $4);

-- name: insert_run
-- A new run. $1 id, $2 job, $3 version, $4 trigger, $5 submit user, $6 real user, $7 variables,
-- $8 failure action, $9 project, $10 schedule id, $11 fire time, $12 the run it waits for (a sequence)
insert into runs (id, job, version, trigger, submit_user, real_user, variables, failure_action, project,
                  schedule_id, fire_time, after_run)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
returning *;

-- name: insert_run_nodes
-- A run's nodes, all at once. $1 run id, $2 node ids, $3 states, $4 dependencies (JSON arrays as text)
insert into run_nodes (run_id, node_id, position, state, depends_on)
select $1, n.node_id, n.position, n.state, array(select jsonb_array_elements_text(n.deps::jsonb))
from unnest($2::text[], $3::text[], $4::text[]) with ordinality as n(node_id, state, deps, position);

-- name: get_run
-- One run. $1 id
select * from runs where id = $1;

-- name: run_nodes
-- A run's nodes, in definition order of insertion. $1 run id, $2 changed after (ms; 0 for all)
select * from run_nodes where run_id = $1 and update_time > $2 order by position;

-- name: lock_run
-- Take a run for advancing; concurrent advancers wait, then see the committed result. $1 id
select * from runs where id = $1 for update;

-- name: run_nodes_with_batches
-- A run's nodes with their batches' states, under the run lock. $1 run id
select n.node_id, n.state, n.depends_on, n.batch_id, n.attempt, n.start_time, n.end_time,
       b.state as batch_state, b.app_start_time, b.end_time as batch_end_time
from run_nodes n left join batches b on b.id = n.batch_id
where n.run_id = $1
order by n.position;

-- name: update_run_nodes
-- Several node changes at once. $1 run id, $2 node ids, $3 states, $4 batch ids, $5 attempts,
-- $6 start times, $7 end times
update run_nodes n
set state = u.state, batch_id = u.batch_id, attempt = u.attempt, start_time = u.start_time,
    end_time = u.end_time, update_time = bg_now_ms()
from unnest($2::text[], $3::text[], $4::uuid[], $5::int[], $6::bigint[], $7::bigint[])
     as u(node_id, state, batch_id, attempt, start_time, end_time)
where n.run_id = $1 and n.node_id = u.node_id;

-- name: insert_node_batches
-- The admitted batches of nodes that became ready, all at once, each with its audit row. $1 ids, $2 types,
-- $3 users (each node's effective user), $4 real user, $5 names, $6 resources, $7 class names, $8 confs
-- (JSON text), $9 args (JSON text), $10 priorities, $11 project, $12 batch infos (JSON text)
with b as (
    insert into batches (id, batch_type, batch_user, real_user, name, resource, class_name, conf, args,
                         priority, project, batch_info)
    select b.id, b.batch_type, b.batch_user, $4, b.name, b.resource, b.class_name, b.conf::jsonb, b.args::jsonb,
           b.priority, $11, b.info::jsonb
    from unnest($1::uuid[], $2::text[], $3::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::int[], $12::text[])
         as b(id, batch_type, batch_user, name, resource, class_name, conf, args, priority, info)
    returning id, batch_type, batch_user, real_user, name, batch_info
)
insert into audit_log (actor, action, target, allowed, detail)
select b.real_user, 'submit', b.id::text, true,
       jsonb_build_object('batchType', b.batch_type, 'user', b.batch_user, 'name', b.name,
                          'run', b.batch_info ->> 'runId', 'node', b.batch_info ->> 'nodeId')
from b;

-- name: update_run
-- A run's own state. $1 id, $2 state, $3 start time, $4 end time, $5 paused, $6 attempt, $7 variables
update runs set state = $2, start_time = $3, end_time = $4, paused = $5, attempt = $6, variables = $7,
                update_time = bg_now_ms()
where id = $1
returning *;

-- name: insert_run_events
-- Changes of a run, in order. $1 run id, $2 node ids (null for the run itself), $3 states
insert into run_events (run_id, node_id, state)
select $1, e.node_id, e.state from unnest($2::text[], $3::text[]) with ordinality as e(node_id, state, n)
order by e.n;

-- name: run_events_after
-- A run's events after an id. $1 run id, $2 after id, $3 limit
select id, at, node_id, state from run_events where run_id = $1 and id > $2 order by id limit $3;

-- name: stale_runs
-- Active runs with a node whose batch has moved on without the run noticing (a missed event).
select distinct n.run_id from run_nodes n join batches b on b.id = n.batch_id
join runs r on r.id = n.run_id
where r.state in ('PREPARING', 'RUNNING', 'PAUSED')
  and ((n.state in ('QUEUED', 'RUNNING', 'PAUSED') and b.state in ('FINISHED', 'ERROR', 'CANCELED'))
       or (n.state = 'QUEUED' and b.state = 'RUNNING'))
limit 100;

-- name: preparing_runs
-- Runs created but never advanced (their creator died in between), or waiting in a sequence for a run
-- that has ended (the wake-up was missed); not those still waiting for a run under way.
select r.id from runs r
where r.state = 'PREPARING' and r.create_time < bg_now_ms() - 5000
  and (r.after_run is null or not exists (
      select 1 from runs p where p.id = r.after_run and p.state in ('PREPARING', 'RUNNING', 'PAUSED')))
limit 100;

-- name: run_state
-- Another run's state (the run a run of a sequence waits for). $1 id
select state from runs where id = $1;

-- name: waiting_runs
-- Runs of a sequence waiting for this run to end. $1 id
select id from runs where after_run = $1 and state = 'PREPARING';

-- name: job_log
-- A job's history, newest first. $1 job, $2 offset, $3 limit
select id, at, actor, action, detail, count(*) over () as total from job_log
where job = $1 order by id desc offset $2 limit $3;

-- name: kill_run_batches
-- Ask the owners of these launched batches to kill them. $1 batch ids
update batches set kill_requested = true, update_time = bg_now_ms()
where id = any($1::uuid[]) and not kill_requested
  and (state in ('PENDING', 'RUNNING') or (state = 'PAUSED' and instance is not null));

-- name: cancel_run_batches
-- Cancel those of these batches that never left the queue. $1 batch ids, $2 diagnostic
update batches set state = 'CANCELED', app_state = 'KILLED', kill_requested = true, app_diagnostic = $2,
                   end_time = bg_now_ms(), update_time = bg_now_ms()
where id = any($1::uuid[]) and (state = 'INITIALIZED' or (state = 'PAUSED' and paused_from = 'INITIALIZED'));
