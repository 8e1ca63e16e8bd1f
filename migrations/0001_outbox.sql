-- The outbox. Producers may insert with only (kind, payload); every other column has a
-- default. Times are Unix milliseconds, except not_before, which producers write as
-- RFC 3339 text or Unix seconds and ffrelay reads when it checks the row.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    ordering_key     TEXT,
    not_before       TEXT,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_flight', 'delivered', 'failed', 'held', 'cancelled')),
    -- 0 until ffrelay has validated the row and derived its keys; rows written by
    -- ffrelay itself start at 1.
    checked          INTEGER NOT NULL DEFAULT 0,
    batch_key        TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    reset_hits       INTEGER,
    approved         INTEGER NOT NULL DEFAULT 0,
    -- A job is unfinished (pending, in flight or held) exactly when finished_at is NULL,
    -- so that the ordering indexes below need no update when a job is claimed. A producer
    -- insert that sets a final status or finished_at fails here at once. Other columns
    -- that belong to ffrelay are checked when the row is taken in, and such a row fails
    -- with the reason. Triggers would say it at insert time, but they cost each insert
    -- about 40 % (measured with SQLite 3.40 from Python).
    CONSTRAINT status_matches_finished_at
        CHECK ((status IN ('pending', 'in_flight', 'held')) = (finished_at IS NULL))
);

-- Claiming scans only due pending rows, in due order.
CREATE INDEX jobs_pending_due ON jobs (next_attempt_at, id) WHERE status = 'pending';
-- Rows that still need the intake check.
CREATE INDEX jobs_unchecked ON jobs (id) WHERE checked = 0;
-- Per-key ordering: the oldest unfinished job of a key goes first.
CREATE INDEX jobs_unfinished_key ON jobs (ordering_key, id)
    WHERE finished_at IS NULL AND ordering_key IS NOT NULL;
-- The reset barrier: is any older job unfinished?
CREATE INDEX jobs_unfinished ON jobs (id) WHERE finished_at IS NULL;
-- Batch claims: due pending jobs that may share a request.
CREATE INDEX jobs_pending_batch ON jobs (batch_key, next_attempt_at, id)
    WHERE status = 'pending' AND batch_key IS NOT NULL;
-- Listing, stats, queue depth and lease recovery (in-flight rows are few).
CREATE INDEX jobs_status_id ON jobs (status, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- One row per job per try. request_id names the HTTP request the job was part of.
CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    job_id         INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    request_id     TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER NOT NULL,
    http_status    INTEGER,
    error          TEXT,
    response       TEXT,
    latency_ms     INTEGER NOT NULL,
    outcome        TEXT    NOT NULL
);
CREATE INDEX attempts_job ON attempts (job_id, id);

-- The API tokens in use, so that a restart keeps a refreshed token.
CREATE TABLE api_tokens (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    access_token   TEXT    NOT NULL,
    refresh_token  TEXT    NOT NULL,
    expires_at     INTEGER,
    -- Digest of the configured tokens these were derived from; a change means the
    -- operator supplied new tokens, which then win over the stored ones.
    source_digest  TEXT    NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- Runs of `ffrelay serve` that may own leases, with the delivery state each reports
-- ('running', 'paused', 'breaker_open', 'stopping') so that the CLI can show it.
CREATE TABLE runs (
    id             TEXT    PRIMARY KEY,
    pid            INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'running',
    state_reason   TEXT,
    updated_at     INTEGER NOT NULL DEFAULT 0
);
