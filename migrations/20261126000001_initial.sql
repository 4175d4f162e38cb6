-- Accounts, preferences, coaching links, generation jobs with per-day checkpoints, and menus.
-- PostgreSQL is the system of record; Redis only carries job ids.

CREATE TYPE user_role AS ENUM ('user', 'coach', 'admin');

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          user_role NOT NULL DEFAULT 'user',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- The profile a request is merged with (typed in Rust as MenuOptions, stored validated).
CREATE TABLE preferences (
    user_id              uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    options              jsonb NOT NULL,
    auto_generate_weekly boolean NOT NULL DEFAULT false,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX preferences_weekly_idx ON preferences (user_id) WHERE auto_generate_weekly;

-- A coach invites a client by email; the client accepts, and from then on the coach may submit
-- for them and read their jobs and menus.
CREATE TABLE coach_links (
    id           uuid PRIMARY KEY,
    coach_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_email text NOT NULL,
    client_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    accepted_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((client_id IS NULL) = (accepted_at IS NULL))
);
CREATE UNIQUE INDEX coach_links_pair_key ON coach_links (coach_id, lower(client_email));
CREATE INDEX coach_links_client_idx ON coach_links (client_id) WHERE client_id IS NOT NULL;

CREATE TYPE job_status AS ENUM ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled');

CREATE TABLE generation_jobs (
    id                 uuid PRIMARY KEY,
    owner_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requested_by       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    request            jsonb NOT NULL,
    status             job_status NOT NULL DEFAULT 'queued',
    attempts           integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL CHECK (max_attempts > 0),
    days_total         integer NOT NULL CHECK (days_total BETWEEN 1 AND 7),
    days_done          integer NOT NULL DEFAULT 0,
    last_error_code    text,
    last_error_message text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    next_attempt_at    timestamptz,
    finished_at        timestamptz,
    -- The running attempt's lease: a later delivery may take the job over only once it lapsed.
    lease_expires_at   timestamptz,
    worker_id          text,
    menu_id            uuid,
    llm_calls          integer NOT NULL DEFAULT 0,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    idempotency_key    text,
    batch_id           uuid
);
CREATE UNIQUE INDEX generation_jobs_idempotency_key
    ON generation_jobs (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX generation_jobs_owner_idx ON generation_jobs (owner_id, created_at DESC);
CREATE INDEX generation_jobs_status_idx ON generation_jobs (status, created_at);

-- Each validated day is saved at once, so a retry resumes at the first missing day.
CREATE TABLE job_days (
    job_id            uuid NOT NULL REFERENCES generation_jobs (id) ON DELETE CASCADE,
    day_number        integer NOT NULL CHECK (day_number BETWEEN 1 AND 7),
    day               jsonb NOT NULL,
    attempt           integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, day_number)
);

-- Unique on the job: a redelivered job can never store a second menu.
CREATE TABLE menus (
    id           uuid PRIMARY KEY,
    job_id       uuid NOT NULL UNIQUE REFERENCES generation_jobs (id) ON DELETE CASCADE,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requested_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    request      jsonb NOT NULL,
    plan         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX menus_owner_idx ON menus (owner_id, created_at DESC, id DESC);

-- Who may see a person's jobs and menus: the person, and coaches whose invitation they accepted.
CREATE FUNCTION visible_to(owner uuid, viewer uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT owner = viewer
        OR EXISTS (SELECT 1 FROM coach_links WHERE coach_id = viewer AND client_id = owner)
$$;
