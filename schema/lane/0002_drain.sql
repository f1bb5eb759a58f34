-- laned lane store, migration 2: delivery state of the drain.

-- Lane-level delivery state (one row), persisted so that a restart keeps
-- the retry schedule and status still says what went wrong.
CREATE TABLE drain_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    -- Last exchange the back-end answered successfully (post or heartbeat).
    last_success_at      TEXT,
    -- Last time the drain tried anything.
    last_attempt_at      TEXT,
    last_error_code      TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    -- A lane-level fault (401, 403, 404 on the sale route): the drain is
    -- paused until the configuration is fixed or an operator asks to retry.
    fault_code           TEXT,
    fault_message        TEXT,
    -- When the drain may next try after a transient failure (UTC).
    next_attempt_at      TEXT
) STRICT;

INSERT INTO drain_state (id) VALUES (1);

-- Re-checks of stuck sales look them up by state and due time.
CREATE INDEX sales_stuck_due ON sales (next_attempt_at) WHERE state = 'stuck';
