-- SLAs: their rows, the deadlines of their targets (claimed when due, judged once) and the breaches.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: insert_sla
-- A new SLA; nothing comes back when its id exists (a batch submitted twice). $1 id, $2 owner, $3 job,
-- $4 schedule id, $5 batch id, $6 node, $7 rule, $8 duration ms, $9 actions, $10 webhook, $11 emails,
-- $12 description
insert into slas (id, owner, job, schedule_id, batch_id, node, rule, duration_ms, actions, webhook, emails,
                  description)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
on conflict (id) do nothing
returning *;

-- name: insert_batch_deadline
-- The deadline of a batch's SLA. $1 SLA id, $2 batch id, $3 counted from, $4 due
insert into sla_deadlines (sla_id, target, kind, start_at, due_at) values ($1, $2::text, 'BATCH', $3, $4)
on conflict do nothing;

-- name: get_sla
-- One SLA with its number of breaches. $1 id
select s.*, (select count(*) from sla_breaches b where b.sla_id = s.id) as breaches from slas s where s.id = $1;

-- name: delete_sla
-- Remove an SLA with its deadlines and breaches. $1 id
delete from slas where id = $1 returning *, 0::bigint as breaches;

-- name: list_slas
-- SLAs, newest first, with the total. $1 job, $2 schedule id, $3 batch id (each null: any), $4 reader
-- (null: an admin), $5 the reader's projects, $6 offset, $7 limit
select s.*, (select count(*) from sla_breaches b where b.sla_id = s.id) as breaches, count(*) over () as total
from slas s left join jobs j on j.name = s.job
where ($1::text is null or s.job = $1) and ($2::uuid is null or s.schedule_id = $2)
  and ($3::uuid is null or s.batch_id = $3)
  and ($4::text is null or s.owner = $4 or j.owner = $4 or j.permissions ? $4 or j.project = any($5::text[]))
order by s.created_at desc, s.id
offset $6 limit $7;

-- name: next_deadline
-- When the earliest open SLA deadline is due (null: none is open).
select min(due_at) from sla_deadlines where not fired;

-- name: claim_deadlines
-- Due deadlines with their SLAs, locked for this transaction (others skip them). $1 now, $2 limit
select d.target, d.kind, d.start_at, d.due_at, s.id as sla_id, s.owner, s.job, s.schedule_id, s.batch_id, s.node,
       s.rule, s.duration_ms, s.actions, s.webhook, s.emails
from sla_deadlines d join slas s on s.id = d.sla_id
where not d.fired and d.due_at <= $1
order by d.due_at limit $2
for update of d skip locked;

-- name: batch_progress
-- How far a batch got. $1 batch id
select state, app_start_time as started_at, end_time as ended_at, state = 'FINISHED' as succeeded
from batches where id = $1;

-- name: run_progress
-- How far a run (or, with $2, one of its nodes) got. $1 run id, $2 node id or null
select r.id as run_id, r.job,
       case when $2::text is null then
           (select min(n.start_time) from run_nodes n where n.run_id = r.id and n.start_time > 0
                   and n.state in ('RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED'))
       else (select case when n.state in ('RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'SKIPPED')
                         and n.start_time > 0 then n.start_time end
             from run_nodes n where n.run_id = r.id and n.node_id = $2) end as started_at,
       case when $2::text is null then case when r.state in ('SUCCEEDED', 'FAILED', 'KILLED') then r.end_time end
       else (select case when n.state in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED') then n.end_time end
             from run_nodes n where n.run_id = r.id and n.node_id = $2) end as ended_at,
       case when $2::text is null then r.state = 'SUCCEEDED'
       else coalesce((select n.state in ('SUCCEEDED', 'SKIPPED') from run_nodes n
                      where n.run_id = r.id and n.node_id = $2), false) end as succeeded,
       (select n.batch_id from run_nodes n where n.run_id = r.id and n.node_id = $2) as batch_id
from runs r where r.id = $1;

-- name: tick_of_deadline
-- The tick behind a schedule SLA's deadline and the run it made. $1 schedule id, $2 fire time
select t.outcome, coalesce(t.run_id, (select id from runs where schedule_id = $1 and fire_time = $2)) as run_id
from schedule_ticks t where t.schedule_id = $1 and t.fire_time = $2;

-- name: insert_breach
-- Record a breach once; nothing comes back when it was recorded before. $1 SLA id, $2 target, $3 kind, $4 job,
-- $5 run id, $6 batch id, $7 node, $8 rule, $9 start, $10 due, $11 instance
insert into sla_breaches (sla_id, target, kind, job, run_id, batch_id, node, rule, start_at, due_at, instance)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
on conflict on constraint sla_breaches_once do nothing
returning *;

-- name: close_deadline
-- A deadline has fired. $1 SLA id, $2 target, $3 outcome (MET, BREACHED, GONE)
update sla_deadlines set fired = true, outcome = $3 where sla_id = $1 and target = $2;

-- name: finish_breach
-- What a breach's actions did. $1 breach id, $2 results
update sla_breaches set actions_done = true, results = $2 where id = $1;

-- name: orphaned_breaches
-- Take over breaches whose actions an instance that died never finished, or, with $2, this instance's own
-- from before a restart. $1 instance, $2 include this instance's own
update sla_breaches b set instance = $1
from (select o.id from sla_breaches o
      where not o.actions_done
        and ((o.instance = $1 and $2)
             or (o.instance <> $1 and not exists (select 1 from instances i
                                                  where i.id = o.instance and i.lease_until > bg_now_ms())))
      order by o.breached_at limit 100 for update of o skip locked) c
where b.id = c.id
returning b.*;

-- name: list_breaches
-- An SLA's breaches, newest first, with the total. $1 SLA id, $2 offset, $3 limit
select *, count(*) over () as total from sla_breaches where sla_id = $1
order by breached_at desc, id desc offset $2 limit $3;
