-- The batch lane (issue 12): a weekly batch may run through the provider's Batch API (half the
-- price, answers within 24 hours) instead of one Chat Completions call per day. Its jobs are
-- gathered into provider batches, one whole-menu request per job; what comes back is saved as
-- the jobs' days, and the jobs then finish on the normal lane (which asks again only for the
-- days missing or refused). Source of the API's shapes and limits:
-- https://platform.openai.com/docs/api-reference/batch and https://platform.openai.com/docs/guides/batch

-- Which lane a batch run's jobs take: `normal` (Chat Completions, day by day) or `provider`
-- (the Batch API first). Recorded when the run is created, so whoever enqueues it uses it.
ALTER TABLE batch_runs ADD COLUMN lane text NOT NULL DEFAULT 'normal'
    CHECK (lane IN ('normal', 'provider'));

-- One provider batch: the jobs gathered into one input file and one `POST /v1/batches`.
CREATE TABLE provider_batches (
    -- Ours, written before any call, and sent as the batch's metadata (`menus_batch`) so a
    -- worker that crashed between creating the batch and storing its id finds it again.
    id                uuid PRIMARY KEY,
    -- The configured endpoint's name and the model every line asks.
    endpoint          text NOT NULL,
    model             text NOT NULL,
    -- `preparing`: jobs assigned, not yet accepted by the provider; `submitted`: the
    -- provider's batch exists (`provider_batch_id`); `finished`: it reached a final status
    -- (its files are known); `collected`: every job's answer was saved or sent on.
    status            text NOT NULL DEFAULT 'preparing'
        CHECK (status IN ('preparing', 'submitted', 'finished', 'collected')),
    -- The provider's status when last seen: validating, in_progress, finalizing, completed,
    -- expired, cancelling, cancelled, failed; or, for a batch that never ran, `refused` (the
    -- provider turned the file or the batch down) or `empty` (its jobs were all cancelled
    -- before it was sent).
    provider_status   text,
    input_file_id     text,
    provider_batch_id text UNIQUE,
    output_file_id    text,
    error_file_id     text,
    -- Lines in the input file, its size in bytes, and the prompt tokens its lines will be
    -- billed (counted as the provider counts them; the provider's limit on enqueued tokens
    -- per model is checked against the open batches' sum).
    requests          integer NOT NULL CHECK (requests > 0),
    bytes             bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    -- Lines answered, lines failed (an error line), lines expired or never run.
    completed         integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    expired           integer NOT NULL DEFAULT 0,
    -- What its answers cost at the batch price, and what that saved against the normal
    -- lane's price, in micro-US-dollars.
    cost_micros       bigint NOT NULL DEFAULT 0,
    saved_micros      bigint NOT NULL DEFAULT 0,
    -- The worker driving it (its worker id) and until when: one worker per batch; when it
    -- dies its lease lapses and another takes over. Every write is fenced by the owner.
    lease_owner       text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    submitted_at      timestamptz,
    finished_at       timestamptz,
    collected_at      timestamptz
);
-- The batches still to drive, and the open ones' tokens per endpoint and model.
CREATE INDEX provider_batches_open_idx ON provider_batches (endpoint, model)
    WHERE status <> 'collected';

-- A job of a provider-lane run waits for the provider (`provider_lane`): no worker claims it
-- and the reconciler does not push it, until its provider batch is collected. Its provider
-- batch, once gathered.
ALTER TABLE generation_jobs
    ADD COLUMN provider_lane boolean NOT NULL DEFAULT false,
    ADD COLUMN provider_batch_id uuid REFERENCES provider_batches (id) ON DELETE SET NULL,
    -- Why the batch lane's answer for a day was refused, by day number:
    -- {"3": ["problem", …]}. The normal lane's first ask of that day lists them.
    ADD COLUMN day_problems jsonb NOT NULL DEFAULT '{}';
-- Jobs waiting to be gathered, and a provider batch's jobs.
CREATE INDEX generation_jobs_provider_lane_idx ON generation_jobs (provider_batch_id, id)
    WHERE provider_lane;
