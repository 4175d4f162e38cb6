-- Sessions behind bearer tokens, so that logging out, changing a password or a role, and
-- disabling an account take effect on the next request rather than when a token expires; and an
-- index for the per-user limit on waiting jobs.
--
-- A session is one login. Its access tokens (short-lived JWTs) name it (`sid`); its refresh
-- token is stored only as a SHA-256 digest and is replaced on every use, so a refresh token
-- used twice (a stolen copy) revokes the session.

ALTER TABLE users ADD COLUMN disabled_at timestamptz;

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_live_by_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- The per-user limit on jobs waiting or running counts them at every submission.
CREATE INDEX generation_jobs_owner_unfinished_idx ON generation_jobs (owner_id)
    WHERE status IN ('queued', 'running', 'retrying');
