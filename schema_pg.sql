-- MyloWare Postgres schema (the WITH_POSTGRES=1 build; schema.sql is the SQLite one). Same
-- mechanism: each migration starts with a line `-- migration N: description` and runs, with
-- every other pending one, in one transaction (`myloware migrate`, or at start-up), under an
-- advisory lock so that processes starting together migrate once. Append-only: never edit one
-- that has shipped; add the next. The numbers follow schema.sql's, so a version means the same
-- tables on both backends: a SQLite migration N needs a migration N here (one that changes
-- nothing in Postgres still gets its line and a comment, as 5 does). Tables live in the first
-- schema of the connection's search_path.

-- migration 1: schema version table and the health probe row
CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);

CREATE TABLE health_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  TEXT NOT NULL,
    pid INTEGER NOT NULL
);

-- migration 2: the durable job queue (states as in src/queue/queue.h; times are ms since the epoch)
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    seq              BIGSERIAL NOT NULL, -- insertion order: the claim's last tie-breaker
    type             TEXT NOT NULL,
    run_id           TEXT,
    payload          TEXT NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at BIGINT,
    progress         DOUBLE PRECISION,
    last_error       TEXT,
    result_url       TEXT,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    resolved_at      BIGINT,
    CHECK ((state = 'running') = (lease_token IS NOT NULL))
);
-- claim: ready jobs of one type by priority then age
CREATE INDEX jobs_ready ON jobs (type, priority DESC, run_at, seq) WHERE state = 'queued';
-- rescuer: expired leases
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
-- an idempotency key blocks duplicates only while a job holding it is unfinished
CREATE UNIQUE INDEX jobs_idempotency ON jobs (type, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'cancelled', 'dead');
CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX jobs_created ON jobs (created_at);

-- a job that becomes queued wakes every listening dispatcher (LISTEN myloware_jobs, payload:
-- the type); Postgres sends it at commit and folds repeats within one transaction
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('myloware_jobs', NEW.type);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_notify();
CREATE TRIGGER jobs_notify_queued AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.state = 'queued' AND OLD.state <> 'queued') EXECUTE FUNCTION jobs_notify();

-- side effects of the test-only job type (ENVIRONMENT=test): a second run of a job breaks the key
CREATE TABLE test_effects (
    job_id TEXT PRIMARY KEY,
    at     BIGINT NOT NULL
);

-- migration 3: the audit log (gate decisions, replays, resolves; who is an API key id, never a key)
CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_target ON audit_log (target);

-- migration 4: runs, run events, artifacts, provider tasks, the webhook inbox, idempotency keys, feedback
-- (statuses and steps as in src/workflow/run.h; times are ms since the epoch)
CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    workflow          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'awaiting_ideation_approval',
                          'awaiting_video_generation', 'awaiting_render', 'awaiting_publish_approval',
                          'awaiting_publish', 'completed', 'failed', 'rejected', 'cancelled')),
    current_step      TEXT CHECK (current_step IS NULL OR current_step IN ('ideation', 'production',
                          'wait_for_videos', 'editing', 'wait_for_render', 'publish_approval', 'publishing',
                          'completed')),
    brief             TEXT NOT NULL,
    user_id           TEXT,
    telegram_chat_id  TEXT,
    artifacts         TEXT NOT NULL DEFAULT '{}',
    context           TEXT NOT NULL DEFAULT '{}',
    error             TEXT,
    clips_expected    INTEGER NOT NULL DEFAULT 0 CHECK (clips_expected >= 0),
    clips_ready       INTEGER NOT NULL DEFAULT 0 CHECK (clips_ready >= 0),
    public_token      TEXT UNIQUE,
    public_expires_at BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_status ON runs (status, updated_at);

-- every change of status or step and every new artifact; id is the SSE event id
CREATE TABLE run_events (
    id      BIGSERIAL PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('run', 'artifact')),
    status  TEXT,
    step    TEXT,
    message TEXT,
    data    TEXT NOT NULL DEFAULT '{}',
    at      BIGINT NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    persona    TEXT,
    content    TEXT,
    uri        TEXT,
    metadata   TEXT NOT NULL DEFAULT '{}',
    dedupe     TEXT, -- one artifact per run and key (a clip per video index)
    seq        BIGSERIAL NOT NULL, -- insertion order (one sequence for all runs)
    created_at BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id, seq);
CREATE UNIQUE INDEX artifacts_dedupe ON artifacts (run_id, dedupe) WHERE dedupe IS NOT NULL;

-- provider task ids (video tasks, render jobs) and the run and clip index they belong to
CREATE TABLE run_tasks (
    provider    TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    video_index INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, task_id)
);
CREATE INDEX run_tasks_run ON run_tasks (run_id, video_index);

-- webhook deliveries, deduplicated forever by provider + delivery id; 'early' ones (task not
-- known yet) are applied when their task id is registered within WEBHOOK_EARLY_TTL_S
CREATE TABLE webhook_inbox (
    id          BIGSERIAL PRIMARY KEY,
    provider    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event_type  TEXT,
    task_id     TEXT,
    run_id      TEXT,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('accepted', 'ignored', 'early', 'applied')),
    received_at BIGINT NOT NULL,
    applied_at  BIGINT,
    UNIQUE (provider, delivery_id)
);
CREATE INDEX webhook_inbox_early ON webhook_inbox (provider, task_id, received_at) WHERE status = 'early';

-- Idempotency-Key answers, per API key, kept 24 h; status NULL while the first is in flight
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE feedback (
    id          TEXT PRIMARY KEY,
    seq         BIGSERIAL NOT NULL, -- insertion order: the listing's tie-breaker
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    artifact_id TEXT,
    rating      INTEGER NOT NULL CHECK (rating IN (1, 5)),
    comment     TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX feedback_run ON feedback (run_id, created_at);

-- migration 5: jobs with the state tests as OR chains (SQLite only: its IN lists cost a temporary
-- B-tree per statement; Postgres plans IN lists well, so nothing changes here)
SELECT 1;
