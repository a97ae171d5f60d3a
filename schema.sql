-- MyloWare SQLite schema. Each migration starts with a line `-- migration N: description`
-- and runs, with every other pending one, in one transaction (`myloware migrate`, or at
-- start-up). Migrations are append-only: never edit one that has shipped; add the next.
-- A database whose version is newer than the binary's last migration is refused.

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
-- The state tests are written as OR chains, not IN lists: SQLite builds a temporary B-tree for an
-- IN list of more than two constants on every statement that evaluates it (each insert and each
-- transition), which cost about 40% of the database thread's time per job.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    run_id           TEXT,
    payload          TEXT NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL CHECK (state = 'queued' OR state = 'running' OR state = 'succeeded' OR state = 'dead' OR state = 'cancelled'),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    progress         REAL,
    last_error       TEXT,
    result_url       TEXT,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    resolved_at      INTEGER,
    CHECK ((state = 'running') = (lease_token IS NOT NULL))
);
-- claim: ready jobs of one type by priority then age
CREATE INDEX jobs_ready ON jobs (type, priority DESC, run_at) WHERE state = 'queued';
-- rescuer: expired leases
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
-- an idempotency key blocks duplicates only while a job holding it is unfinished
CREATE UNIQUE INDEX jobs_idempotency ON jobs (type, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'succeeded' OR state = 'cancelled' OR state = 'dead';
CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX jobs_created ON jobs (created_at);

-- side effects of the test-only job type (ENVIRONMENT=test): a second run of a job breaks the key
CREATE TABLE test_effects (
    job_id TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
);

-- migration 3: the audit log (gate decisions, replays, resolves; who is an API key id, never a key)
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_target ON audit_log (target);
