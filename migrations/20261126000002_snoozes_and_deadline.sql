-- Waits the provider imposed (rate limits, an open circuit) do not use up attempts; they are
-- counted here so they can be capped.
ALTER TABLE generation_jobs ADD COLUMN snoozes integer NOT NULL DEFAULT 0;

-- Token usage is summed per requester.
CREATE INDEX generation_jobs_requested_by_idx ON generation_jobs (requested_by);

-- Set at a job's first attempt; a job still unfinished past it fails. Waits for a provider
-- outage push it back.
ALTER TABLE generation_jobs ADD COLUMN deadline_at timestamptz;
