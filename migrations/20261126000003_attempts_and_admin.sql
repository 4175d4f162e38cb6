-- Every attempt of every job, for admins: when it ran, where, how it ended and what it cost.
CREATE TABLE job_attempts (
    id                bigserial PRIMARY KEY,
    job_id            uuid NOT NULL REFERENCES generation_jobs (id) ON DELETE CASCADE,
    -- The job's attempt count when this attempt started (an attempt given back uncounted
    -- shares its number with the next).
    number            integer NOT NULL,
    worker_id         text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    -- succeeded, retrying, failed, snoozed, handed_back, cancelled, abandoned
    outcome           text,
    error_code        text,
    error_message     text,
    llm_calls         integer NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0
);
CREATE INDEX job_attempts_job_idx ON job_attempts (job_id, id);
-- A claim closes the previous open attempt and opens its own in one statement, so "one open
-- attempt per job" is kept by the writes, not by a unique index (checked row by row, it would
-- see both for an instant).
CREATE INDEX job_attempts_open_idx ON job_attempts (job_id) WHERE ended_at IS NULL;

-- When the job last became claimable (created, retried, requeued, given back): its wait in the
-- queue runs from here to the next claim.
ALTER TABLE generation_jobs ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
UPDATE generation_jobs SET queued_at = coalesce(next_attempt_at, created_at);

-- What admins did, and to how many jobs.
CREATE TABLE admin_actions (
    id         bigserial PRIMARY KEY,
    admin_id   uuid NOT NULL REFERENCES users (id),
    action     text NOT NULL,
    job_id     uuid,
    filter     jsonb,
    affected   integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_actions_recent_idx ON admin_actions (created_at DESC, id DESC);
CREATE INDEX generation_jobs_error_code_idx ON generation_jobs (last_error_code) WHERE last_error_code IS NOT NULL;
CREATE INDEX generation_jobs_batch_idx ON generation_jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Adds an attempt's cost to its row and, given an outcome, ends it. The attempt is the latest
-- one with this number (an attempt given back uncounted shares its number with the next). The
-- first outcome recorded stays (a cancellation closes the attempt before its worker notices).
CREATE FUNCTION tally_attempt(
    p_job uuid, p_number integer, p_calls integer, p_prompt bigint, p_completion bigint,
    p_outcome text, p_code text, p_message text
) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    UPDATE job_attempts
    SET llm_calls = llm_calls + p_calls,
        prompt_tokens = prompt_tokens + p_prompt,
        completion_tokens = completion_tokens + p_completion,
        ended_at = CASE WHEN p_outcome IS NULL THEN ended_at ELSE coalesce(ended_at, now()) END,
        outcome = coalesce(outcome, p_outcome),
        error_code = coalesce(error_code, p_code),
        error_message = coalesce(error_message, p_message)
    WHERE id = (SELECT max(id) FROM job_attempts WHERE job_id = p_job AND number = p_number)
    RETURNING 1
$$;
CREATE INDEX generation_jobs_finished_idx ON generation_jobs (finished_at) WHERE finished_at IS NOT NULL;
