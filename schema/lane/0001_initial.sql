-- laned lane store, migration 1: the initial schema.
--
-- Never edit a migration that has landed; add a new numbered file instead.
-- Each file runs in one transaction together with the bump of
-- PRAGMA user_version to its number (see src/store/migrate.rs).

-- Identity of the lane that owns this database. Written once at first start;
-- a daemon configured with another lane id refuses to open the file, so two
-- tills can never end up numbering receipts into one another's series.
CREATE TABLE lane_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- One row per sale, return or void the till handed us. Rows are never
-- deleted (DESIGN §2.4); they only change state.
CREATE TABLE sales (
    -- Local sequence: the order of delivery to the back-end. AUTOINCREMENT so
    -- that a number is never handed out twice, even in theory.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- v4 UUID, lower-case hyphenated; the idempotency key end to end.
    transaction_id  TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL CHECK (kind IN ('sale', 'return', 'void')),
    -- The transaction id a return or void refers to.
    references_id   TEXT,
    series          TEXT    NOT NULL,
    receipt_no      INTEGER NOT NULL CHECK (receipt_no >= 1),
    -- The exact envelope bytes sent to the back-end on every attempt.
    body            BLOB    NOT NULL,
    body_sha256     TEXT    NOT NULL,
    -- Fingerprint of the sale as accepted from the till (canonical JSON);
    -- a repeat with the same id compares against it.
    sale_sha256     TEXT    NOT NULL,
    -- "key:<Idempotency-Key>" or "legacy:<fingerprint>" for POST /v1/sales.
    client_key      TEXT    UNIQUE,
    currency        TEXT    NOT NULL,
    total           INTEGER NOT NULL,
    business_date   TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'posted', 'stuck', 'resolved')),
    doc_no          TEXT,
    posted_at       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error_code TEXT,
    last_error      TEXT,
    UNIQUE (series, receipt_no)
) STRICT;

CREATE INDEX sales_state_seq ON sales (state, seq);
CREATE INDEX sales_references ON sales (references_id) WHERE references_id IS NOT NULL;

-- One row per delivery attempt (filled by the drain).
CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    seq            INTEGER NOT NULL REFERENCES sales (seq),
    started_at     TEXT    NOT NULL,
    duration_ms    INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    http_status    INTEGER,
    error_code     TEXT,
    message        TEXT
) STRICT;

CREATE INDEX attempts_seq ON attempts (seq);

-- Last receipt number issued per series. Bumped in the same transaction that
-- stores the sale, so a number is issued if and only if its sale exists.
CREATE TABLE counters (
    series TEXT PRIMARY KEY NOT NULL,
    last   INTEGER NOT NULL CHECK (last >= 0)
) STRICT;

-- The offline clock of DESIGN §5 (one row).
CREATE TABLE lane_clock (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    offline_ms          INTEGER NOT NULL DEFAULT 0,
    checkpoint_wall     TEXT,
    last_success_at     TEXT,
    anomalies           INTEGER NOT NULL DEFAULT 0,
    last_anomaly_at     TEXT,
    last_anomaly_back_ms INTEGER
) STRICT;

INSERT INTO lane_clock (id) VALUES (1);

-- Operator actions: who, when, what, why. Append-only.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    transaction_id TEXT,
    reason         TEXT,
    details        TEXT
) STRICT;

-- Invariant 4, enforced by the database itself: no code path, bug or
-- hand-typed SQL can delete a sale or rewrite the audit trail.
CREATE TRIGGER sales_are_never_deleted BEFORE DELETE ON sales
BEGIN
    SELECT RAISE(ABORT, 'sales are never deleted');
END;

CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
