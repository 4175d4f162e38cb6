-- The weekly batch (issue 8): one row per batch run, exactly once per (schedule, fire time);
-- the weekday each person's weekly menu starts on; one batch job per person and batch; and the
-- per-person cap on running jobs that the claim enforces.

-- ISO weekday (1 = Monday … 7 = Sunday) the weekly menu starts on.
ALTER TABLE preferences ADD COLUMN weekly_start_day smallint NOT NULL DEFAULT 1
    CHECK (weekly_start_day BETWEEN 1 AND 7);

CREATE TABLE batch_runs (
    id               uuid PRIMARY KEY,
    -- The schedule's name, or `manual` for a batch started by hand.
    schedule         text NOT NULL,
    -- The tick it fired for; for a manual batch, its period's first day at midnight in the
    -- schedule's zone (so the same period is the same batch).
    fire_at          timestamptz NOT NULL,
    -- Menus start on each person's weekday within the seven days from here.
    period_start     date NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('schedule', 'catch_up', 'manual')),
    triggered_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    -- `enqueuing` until every opted-in person was considered; `skipped`: a missed tick
    -- outside the catch-up window (nothing was enqueued).
    status           text NOT NULL CHECK (status IN ('enqueuing', 'enqueued', 'skipped')),
    targeted         integer NOT NULL DEFAULT 0,
    skipped          integer NOT NULL DEFAULT 0,
    -- Skipped people by reason: {"invalid_preferences": 3, …}.
    skip_reasons     jsonb NOT NULL DEFAULT '{}',
    -- The last person (by id) the enqueue went past: a resumed enqueue starts after it.
    cursor           uuid,
    -- Fence of the process enqueuing (a new one for each take-over) and its lease.
    enqueuer         uuid,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz,
    UNIQUE (schedule, fire_at)
);
CREATE INDEX batch_runs_recent_idx ON batch_runs (created_at DESC, id DESC);
CREATE INDEX batch_runs_enqueuing_idx ON batch_runs (lease_expires_at) WHERE status = 'enqueuing';

-- One job per person and batch: a rerun or a resumed enqueue adds none. And one batch job per
-- person and menu start date, whichever batch: a manual batch and the schedule's for the same
-- week (or two overlapping manual periods) never generate a person's week twice.
DROP INDEX generation_jobs_batch_idx;
CREATE UNIQUE INDEX generation_jobs_batch_owner_key ON generation_jobs (batch_id, owner_id)
    WHERE batch_id IS NOT NULL;
CREATE UNIQUE INDEX generation_jobs_batch_week_key
    ON generation_jobs (owner_id, (request->>'start_date')) WHERE batch_id IS NOT NULL;
ALTER TABLE generation_jobs ADD CONSTRAINT generation_jobs_batch_id_fkey
    FOREIGN KEY (batch_id) REFERENCES batch_runs (id) ON DELETE SET NULL;

-- Running jobs by owner, for the cap.
CREATE INDEX generation_jobs_owner_running_idx ON generation_jobs (owner_id) WHERE status = 'running';

-- Whether `p_owner` may start another job (`p_job`, not counted) under a cap of `p_cap` running
-- jobs (0: no cap). Takes a per-owner lock held to the end of the calling transaction, then
-- counts with a fresh snapshot (a VOLATILE PL/pgSQL function takes one per statement), so two
-- claims of the same owner's jobs racing cannot both see room for one. Attempts whose lease
-- lapsed (their worker died) do not count.
CREATE FUNCTION owner_has_room(p_owner uuid, p_job uuid, p_cap integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_cap <= 0 THEN
        RETURN true;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_owner::text, 2026112908));
    RETURN (SELECT count(*) FROM generation_jobs
            WHERE owner_id = p_owner AND status = 'running' AND id <> p_job
              AND lease_expires_at >= now()) < p_cap;
END
$$;
