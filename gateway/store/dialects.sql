-- The numbers and UUIDs other systems' APIs give what batchgate names otherwise (table dialect_ids;
-- gateway/store/dialects.py).

-- name: dialect_ids
-- The numbers of things of one kind, made for those that have none yet. A key whose row another
-- transaction is inserting at the same moment is missing from the answer (ask again).
-- $1 kind, $2 keys
with wanted as (select distinct unnest($2::text[]) as key),
made as (
    insert into dialect_ids (kind, key) select $1, key from wanted
    on conflict do nothing
    returning key, id, uid
)
select key, id, uid from made
union all
select d.key, d.id, d.uid from dialect_ids d join wanted w on w.key = d.key where d.kind = $1;

-- name: dialect_key
-- What a number names. $1 kind, $2 number
select key from dialect_ids where kind = $1 and id = $2;

-- name: dialect_key_by_uid
-- What a UUID names. $1 kind, $2 uid
select key from dialect_ids where kind = $1 and uid = $2;

-- name: forget_dialect_ids
-- Numbers of things that are gone. $1 kind, $2 keys
delete from dialect_ids where kind = $1 and key = any($2::text[]);
