-- Schedules and ticks (the deadlines a tick registers for its SLAs too); SLAs themselves are in slas.sql.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: insert_schedule
-- A new schedule. $1 id, $2 job, $3 owner, $4 description, $5 cron, $6 every, $7 timezone, $8 variables,
-- $9 concurrency, $10 catchup, $11 catchup bound, $12 start_at, $13 end_at, $14 anchor, $15 enabled, $16 next_fire
insert into schedules (id, job, owner, description, cron, every, timezone, variables, concurrency, catchup,
                       catchup_bound, start_at, end_at, anchor, enabled, next_fire)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
returning *;

-- name: update_schedule
-- Replace a schedule's settings. $1 id, $2 description, $3 cron, $4 every, $5 timezone, $6 variables,
-- $7 concurrency, $8 catchup, $9 catchup bound, $10 start_at, $11 end_at, $12 anchor, $13 enabled, $14 next_fire,
-- $15 owner (who changed it: its runs are triggered as this user from now on)
update schedules
set description = $2, cron = $3, every = $4, timezone = $5, variables = $6, concurrency = $7, catchup = $8,
    catchup_bound = $9, start_at = $10, end_at = $11, anchor = $12, enabled = $13, next_fire = $14, owner = $15,
    updated_at = bg_now_ms()
where id = $1
returning *;

-- name: get_schedule
-- One schedule. $1 id
select * from schedules where id = $1;

-- name: delete_schedule
-- Remove a schedule (its ticks and SLAs go with it). $1 id
delete from schedules where id = $1 returning *;

-- name: list_schedules
-- Schedules, by job then creation, with the total. $1 job (null: any), $2 reader (null: an admin, who sees
-- all), $3 the reader's projects, $4 offset, $5 limit
select s.*, count(*) over () as total
from schedules s join jobs j on j.name = s.job
where ($1::text is null or s.job = $1)
  and ($2::text is null or j.owner = $2 or j.permissions ? $2 or j.project = any($3::text[]))
order by s.job, s.created_at, s.id
offset $4 limit $5;

-- name: last_ticks
-- The newest tick of each of some schedules. $1 schedule ids
select distinct on (schedule_id) * from schedule_ticks where schedule_id = any($1::uuid[])
order by schedule_id, fire_time desc;

-- name: list_ticks
-- A schedule's ticks, newest first, with the total. $1 schedule id, $2 offset, $3 limit
select *, count(*) over () as total from schedule_ticks where schedule_id = $1
order by fire_time desc offset $2 limit $3;

-- name: next_fire
-- When the earliest enabled schedule fires next (null: none will).
select min(next_fire) from schedules where enabled and next_fire is not null;

-- name: due_schedules
-- Schedules with a tick due. $1 now, $2 limit
select id from schedules where enabled and next_fire is not null and next_fire <= $1 order by next_fire limit $2;

-- name: lock_due_schedule
-- Take a due schedule for this transaction; nothing if another instance has it or it is not due. $1 id, $2 now
select * from schedules where id = $1 and enabled and next_fire is not null and next_fire <= $2
for update skip locked;

-- name: lock_schedule_job
-- Serialize the concurrency decisions of one job's ticks across instances (until the transaction ends). $1 job
select pg_advisory_xact_lock(hashtext('batchgate.schedules'), hashtext($1));

-- name: job_busy
-- What keeps a job busy: its oldest active run, a tick being fired, ticks waiting. $1 job
select (select id from runs where job = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED')
        order by create_time limit 1) as run_id,
       exists (select 1 from schedule_ticks t join schedules s on s.id = t.schedule_id
               where s.job = $1 and t.outcome = 'PENDING') as firing,
       (select count(*) from schedule_ticks t join schedules s on s.id = t.schedule_id
        where s.job = $1 and t.outcome = 'QUEUED') as queued;

-- name: insert_tick
-- Claim one tick; nothing comes back when it was claimed before. $1 schedule id, $2 fire time, $3 instance,
-- $4 outcome, $5 reason
insert into schedule_ticks (schedule_id, fire_time, instance, outcome, reason) values ($1, $2, $3, $4, $5)
on conflict do nothing
returning *;

-- name: advance_schedule
-- Move a schedule past the ticks just claimed. $1 id, $2 next fire (null: none left), $3 last fire
update schedules set next_fire = $2, last_fire = greatest(coalesce(last_fire, $3), $3) where id = $1;

-- name: register_tick_deadlines
-- The deadlines of a schedule's SLAs for one tick, counted from its fire time. $1 schedule id, $2 fire time
insert into sla_deadlines (sla_id, target, kind, start_at, due_at)
select id, $1::uuid::text || '@' || $2::bigint::text, 'TICK', $2::bigint, $2::bigint + duration_ms
from slas where schedule_id = $1
on conflict do nothing;

-- name: finish_tick
-- Record how a claimed tick ended. $1 schedule id, $2 fire time, $3 outcome, $4 reason, $5 run id, $6 instance
update schedule_ticks set outcome = $3, reason = coalesce($4, reason), run_id = $5, updated_at = bg_now_ms()
where schedule_id = $1 and fire_time = $2 and outcome = 'PENDING' and instance = $6
returning *;

-- name: claim_queued_tick
-- Take the oldest queued tick of a job for this instance to fire. $1 job, $2 instance
update schedule_ticks t set outcome = 'PENDING', instance = $2, updated_at = bg_now_ms()
from (select q.schedule_id, q.fire_time from schedule_ticks q join schedules s on s.id = q.schedule_id
      where s.job = $1 and q.outcome = 'QUEUED' order by q.fire_time limit 1 for update of q skip locked) c
where t.schedule_id = c.schedule_id and t.fire_time = c.fire_time
returning t.*;

-- name: skip_queued_ticks
-- Give up a schedule's queued ticks (it was disabled). $1 schedule id, $2 reason
update schedule_ticks set outcome = 'SKIPPED', reason = $2, updated_at = bg_now_ms()
where schedule_id = $1 and outcome = 'QUEUED'
returning fire_time;

-- name: skip_queued_tick
-- Give up one queued tick (its SLA killed it). $1 schedule id, $2 fire time, $3 reason
update schedule_ticks set outcome = 'SKIPPED', reason = $3, updated_at = bg_now_ms()
where schedule_id = $1 and fire_time = $2 and outcome = 'QUEUED'
returning *;

-- name: jobs_with_queued_ticks
-- Jobs that have ticks waiting for a run to end.
select distinct s.job from schedule_ticks t join schedules s on s.id = t.schedule_id where t.outcome = 'QUEUED';

-- name: orphaned_ticks
-- Take over ticks claimed by an instance that died before firing them (its lease ran out), or, with $2,
-- this instance's own from before a restart. $1 instance, $2 include this instance's own
update schedule_ticks t set instance = $1, updated_at = bg_now_ms()
from (select o.schedule_id, o.fire_time from schedule_ticks o
      where o.outcome = 'PENDING'
        and ((o.instance = $1 and $2)
             or (o.instance <> $1 and not exists (select 1 from instances i
                                                  where i.id = o.instance and i.lease_until > bg_now_ms())))
      order by o.fire_time limit 100 for update of o skip locked) c
where t.schedule_id = c.schedule_id and t.fire_time = c.fire_time
returning t.*;

-- name: run_of_tick
-- The run a tick made, if it made one. $1 schedule id, $2 fire time
select id from runs where schedule_id = $1 and fire_time = $2;
