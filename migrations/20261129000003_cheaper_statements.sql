-- What a job's statements cost PostgreSQL, measured by bench/src/bin/throughput.rs (issue 9).

-- A SQL function that updates is planned afresh at every call (it cannot be inlined); PL/pgSQL
-- keeps its plan for the session. Same signature, same effect.
CREATE OR REPLACE FUNCTION tally_attempt(
    p_attempt bigint, p_calls integer, p_prompt bigint, p_completion bigint,
    p_outcome text, p_code text, p_message text
) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    tallied integer;
BEGIN
    UPDATE job_attempts
    SET llm_calls = llm_calls + p_calls,
        prompt_tokens = prompt_tokens + p_prompt,
        completion_tokens = completion_tokens + p_completion,
        ended_at = CASE WHEN p_outcome IS NULL THEN ended_at ELSE coalesce(ended_at, now()) END,
        outcome = coalesce(outcome, p_outcome),
        error_code = coalesce(error_code, p_code),
        error_message = coalesce(error_message, p_message)
    WHERE id = p_attempt
    RETURNING 1 INTO tallied;
    RETURN tallied;
END
$$;

-- A day (≈ 4 kB of JSON) and a menu are compressed when stored; lz4 costs a fraction of the
-- default pglz's CPU. Rows written before keep their compression.
ALTER TABLE job_days ALTER COLUMN day SET COMPRESSION lz4;
ALTER TABLE menus ALTER COLUMN plan SET COMPRESSION lz4;
ALTER TABLE menus ALTER COLUMN request SET COMPRESSION lz4;
ALTER TABLE generation_jobs ALTER COLUMN request SET COMPRESSION lz4;

-- A job row is updated a few times in its life (claim, each day, the end); room left in each
-- page lets updates that touch no indexed column stay on the page (HOT) and skip the indexes.
ALTER TABLE generation_jobs SET (fillfactor = 80);
