-- Projects, their log and artifacts.
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: insert_project
-- A new project; nothing is returned if the name is taken. $1 name, $2 description, $3 owner, $4 members
insert into projects (name, description, owner, members) values ($1, $2, $3, $4)
on conflict (name) do nothing
returning *;

-- name: update_project
-- New description and members. $1 name, $2 description, $3 members
update projects set description = $2, members = $3, updated_at = bg_now_ms() where name = $1 returning *;

-- name: get_project
-- One project. $1 name
select * from projects where name = $1;

-- name: delete_project
-- Remove a project with its artifacts and log. $1 name
delete from projects where name = $1 returning name;

-- name: delete_project_log
-- A deleted project's log goes with it. $1 name
delete from project_log where project = $1;

-- name: project_live_batches
-- Batches of a project that are not finished. $1 name
select id from batches where project = $1 and state not in ('FINISHED', 'ERROR', 'CANCELED') limit 100;

-- name: project_live_runs
-- Runs of a project's jobs still going. $1 name
select id from runs where project = $1 and state in ('PREPARING', 'RUNNING', 'PAUSED') limit 100;

-- name: member_projects
-- The projects a user is a member of (or owns), with the roles. $1 user
select name, owner, members -> $1 as roles from projects where owner = $1 or members ? $1;

-- name: insert_project_log
-- One entry of a project's log. $1 project, $2 actor, $3 action, $4 detail
insert into project_log (project, actor, action, detail) values ($1, $2, $3, $4);

-- name: project_log
-- A project's log, newest first. $1 project, $2 offset, $3 limit
select id, at, actor, action, detail, count(*) over () as total from project_log
where project = $1 order by id desc offset $2 limit $3;

-- name: next_artifact_version
-- The version the next upload gets; locks the project row so two uploads never take the same one.
-- $1 project
select coalesce((select max(version) from artifacts where project = $1), 0) + 1
from projects where name = $1 for update;

-- name: insert_artifact
-- An artifact's metadata. $1 project, $2 version, $3 size, $4 digest, $5 files, $6 uploader
insert into artifacts (project, version, size, digest, files, uploader) values ($1, $2, $3, $4, $5, $6)
returning project, version, size, digest, files, uploader, created_at;

-- name: insert_artifact_chunk
-- One chunk of an artifact's zip. $1 project, $2 version, $3 chunk, $4 bytes
insert into artifact_chunks (project, version, chunk, data) values ($1, $2, $3, $4);

-- name: list_artifacts
-- A project's artifacts, newest first. $1 project
select project, version, size, digest, files, uploader, created_at from artifacts
where project = $1 order by version desc;

-- name: get_artifact
-- One artifact's metadata; version 0 means the latest. $1 project, $2 version
select project, version, size, digest, files, uploader, created_at from artifacts
where project = $1 and ($2 = 0 or version = $2) order by version desc limit 1;

-- name: artifact_chunks
-- An artifact's zip, chunk by chunk. $1 project, $2 version
select data from artifact_chunks where project = $1 and version = $2 order by chunk;

-- name: finish_artifact
-- Size and digest of a stored artifact, known once all chunks are in. $1 project, $2 version, $3 size, $4 digest
update artifacts set size = $3, digest = $4 where project = $1 and version = $2
returning project, version, size, digest, files, uploader, created_at;

-- name: project_live_schedules
-- Enabled schedules of a project's jobs. $1 name
select s.id from schedules s join jobs j on j.name = s.job where j.project = $1 and s.enabled limit 100;
