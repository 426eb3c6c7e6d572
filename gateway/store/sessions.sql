-- Login sessions (tokens stored as hashes).
-- Named queries (gateway/store/queries.py loads each file once); $n are parameters.

-- name: insert_session
-- A new login session that ends $3 ms from now (the database's clock, shared by every instance).
-- $1 token hash, $2 user, $3 lifetime ms, $4 source ip
insert into sessions (token_hash, user_name, expires_at, source_ip)
values ($1, $2, bg_now_ms() + $3, $4)
returning token_hash, user_name, created_at, expires_at;

-- name: live_session
-- The session with this token hash, if it is neither expired nor revoked. $1 token hash
select token_hash, user_name, created_at, expires_at from sessions
where token_hash = $1 and revoked_at is null and expires_at > bg_now_ms();

-- name: revoke_session
-- End a session now; nothing is returned when it had ended already. $1 token hash
update sessions set revoked_at = bg_now_ms()
where token_hash = $1 and revoked_at is null and expires_at > bg_now_ms()
returning token_hash;

-- name: purge_sessions
-- Forget sessions that ended more than a day ago, a few at a time. $1 how many
delete from sessions where token_hash in (
    select token_hash from sessions
    where expires_at < bg_now_ms() - 86400000 or revoked_at < bg_now_ms() - 86400000
    limit $1
);
