-- Checks on rows that producers insert with SQL. A producer may set kind, payload,
-- idempotency_key, ordering_key and not_before; every other column belongs to ffrelay.
--
-- Without these checks, a row inserted as 'delivered' or 'held' was never sent, a row
-- inserted as 'in_flight' had no lease and blocked its ordering key and every later reset
-- for good, and a BLOB in a text column (a Python bytes value, for example) could not be
-- read back, so the claim that met it failed on every try. Type affinity has already
-- converted numbers to text in TEXT columns when a BEFORE trigger runs, so only BLOBs are
-- rejected there.
--
-- NOTE: a producer that sets checked = 1 skips the payload check at claim time. ffrelay
-- inserts its own jobs with checked = 1, so SQL cannot tell the two apart.

CREATE TRIGGER jobs_insert_checks BEFORE INSERT ON jobs
BEGIN
    SELECT RAISE(ABORT, 'invalid jobs.status on insert: leave status out of the INSERT, ffrelay starts every job as pending')
    WHERE NEW.status <> 'pending';
    SELECT RAISE(ABORT, 'invalid jobs.kind or jobs.payload: expected text, got a BLOB; bind a string, not bytes')
    WHERE typeof(NEW.kind) = 'blob' OR typeof(NEW.payload) = 'blob';
    SELECT RAISE(ABORT, 'invalid jobs.idempotency_key, ordering_key or not_before: expected text or NULL, got a BLOB; bind a string, not bytes')
    WHERE typeof(NEW.idempotency_key) = 'blob' OR typeof(NEW.ordering_key) = 'blob'
       OR typeof(NEW.not_before) = 'blob';
    SELECT RAISE(ABORT, 'invalid jobs row: attempts, next_attempt_at, created_at, updated_at, checked and approved are set by ffrelay; leave them out of the INSERT')
    WHERE typeof(NEW.attempts) <> 'integer' OR typeof(NEW.next_attempt_at) <> 'integer'
       OR typeof(NEW.created_at) <> 'integer' OR typeof(NEW.updated_at) <> 'integer'
       OR typeof(NEW.checked) <> 'integer' OR NEW.attempts <> 0 OR NEW.approved IS NOT 0;
    SELECT RAISE(ABORT, 'invalid jobs row: lease_owner, lease_expires_at, finished_at, last_error, reset_hits and batch_key are set by ffrelay; leave them out of the INSERT')
    WHERE NEW.lease_owner IS NOT NULL OR NEW.lease_expires_at IS NOT NULL
       OR NEW.finished_at IS NOT NULL OR NEW.last_error IS NOT NULL
       OR NEW.reset_hits IS NOT NULL OR (NEW.checked = 0 AND NEW.batch_key IS NOT NULL);
END;

-- The same text checks when a producer rewrites a row it inserted.
CREATE TRIGGER jobs_update_checks BEFORE UPDATE OF kind, payload, idempotency_key, ordering_key, not_before ON jobs
BEGIN
    SELECT RAISE(ABORT, 'invalid jobs.kind, payload, idempotency_key, ordering_key or not_before: expected text, got a BLOB; bind a string, not bytes')
    WHERE typeof(NEW.kind) = 'blob' OR typeof(NEW.payload) = 'blob'
       OR typeof(NEW.idempotency_key) = 'blob' OR typeof(NEW.ordering_key) = 'blob'
       OR typeof(NEW.not_before) = 'blob';
END;

-- Repair rows that earlier versions accepted. Unchecked rows that are not pending never
-- reached a worker, so they fail with the reason and an operator can retry them. In-flight
-- rows without a lease owner belong to no run, so they return to pending. BLOBs in text
-- columns become text, which the intake check then validates.
UPDATE jobs
SET status = 'failed', checked = 1,
    last_error = 'rejected at intake: inserted with status ' || status || '; retry it to send it',
    finished_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE checked = 0 AND status <> 'pending';
UPDATE jobs SET status = 'pending', lease_expires_at = NULL
WHERE status = 'in_flight' AND lease_owner IS NULL;
UPDATE jobs
SET kind = CAST(kind AS TEXT), payload = CAST(payload AS TEXT),
    idempotency_key = CAST(idempotency_key AS TEXT), ordering_key = CAST(ordering_key AS TEXT),
    not_before = CAST(not_before AS TEXT)
WHERE typeof(kind) = 'blob' OR typeof(payload) = 'blob' OR typeof(idempotency_key) = 'blob'
   OR typeof(ordering_key) = 'blob' OR typeof(not_before) = 'blob';
