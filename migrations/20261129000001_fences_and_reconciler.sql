-- The fence: the id of the running attempt's row in job_attempts. A claim takes a new one from
-- the attempts' sequence, so it never repeats for a job (an admin's requeue with reset_attempts
-- resets the attempt budget, `attempts`, not the fence). Every write of an attempt is conditioned
-- on it, so a stale attempt (its lease lost, its job cancelled or requeued) changes nothing.
ALTER TABLE generation_jobs ADD COLUMN fence bigint;
UPDATE generation_jobs g
SET fence = (SELECT max(id) FROM job_attempts a WHERE a.job_id = g.id)
WHERE status = 'running';

-- The reconciler walks the unfinished jobs (by id, a page at a time) to push again those Redis
-- lost; finished jobs, the vast majority, stay out of its way.
CREATE INDEX generation_jobs_unfinished_idx ON generation_jobs (id)
    WHERE status IN ('queued', 'running', 'retrying');

-- Attempts are now named by their fence (their own id), not by the job and a number that a
-- requeue with reset may repeat.
DROP FUNCTION tally_attempt(uuid, integer, integer, bigint, bigint, text, text, text);

-- Adds an attempt's cost to its row and, given an outcome, ends it. The first outcome recorded
-- stays (a cancellation closes the attempt before its worker notices).
CREATE FUNCTION tally_attempt(
    p_attempt bigint, p_calls integer, p_prompt bigint, p_completion bigint,
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
    WHERE id = p_attempt
    RETURNING 1
$$;
