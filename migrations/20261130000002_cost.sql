-- What the LLM calls cost in money, beside the tokens (issue 12): micro-US-dollars (1e-6 USD,
-- an integer so that sums are exact), priced by the worker at call time from the model's list
-- price on the lane the call went through (`shared::llm::price`). `batch_saved_micros` is what
-- the Batch API's discount saved against the normal lane's price for the same tokens.
ALTER TABLE generation_jobs
    ADD COLUMN cost_micros bigint NOT NULL DEFAULT 0,
    ADD COLUMN batch_saved_micros bigint NOT NULL DEFAULT 0;
ALTER TABLE job_attempts ADD COLUMN cost_micros bigint NOT NULL DEFAULT 0;

-- An attempt's tally takes its cost too: a new argument, so the old function goes (a caller
-- of the old signature would leave the cost out).
DROP FUNCTION tally_attempt(bigint, integer, bigint, bigint, text, text, text);

-- Adds an attempt's cost (calls, tokens, micro-dollars) to its row and, given an outcome, ends
-- it. The first outcome recorded stays (a cancellation closes the attempt before its worker
-- notices). PL/pgSQL, as before, so its plan is kept for the session.
CREATE FUNCTION tally_attempt(
    p_attempt bigint, p_calls integer, p_prompt bigint, p_completion bigint, p_cost bigint,
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
        cost_micros = cost_micros + p_cost,
        ended_at = CASE WHEN p_outcome IS NULL THEN ended_at ELSE coalesce(ended_at, now()) END,
        outcome = coalesce(outcome, p_outcome),
        error_code = coalesce(error_code, p_code),
        error_message = coalesce(error_message, p_message)
    WHERE id = p_attempt
    RETURNING 1 INTO tallied;
    RETURN tallied;
END
$$;
