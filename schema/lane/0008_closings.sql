-- laned lane store, migration 8: day closings of the fiscal journal.
--
-- A closing is a document of the chain (docs/journal.md): the figures of
-- one business day of one series, numbered gap-free per series by
-- `closing_no`, recorded once and never changed. It takes its place in
-- lane order from the same sequence as the sales (`seq`), so delivery
-- and verification read sales and closings merged by `seq`.

CREATE TABLE closings (
    seq             INTEGER PRIMARY KEY,
    transaction_id  TEXT    NOT NULL UNIQUE,
    series          TEXT    NOT NULL,
    closing_no      INTEGER NOT NULL CHECK (closing_no >= 1),
    business_date   TEXT    NOT NULL,
    -- The exact envelope bytes, as chained and as sent.
    body            BLOB    NOT NULL,
    body_sha256     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    -- Who closed the day (the audit log has the same).
    actor           TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'posted', 'stuck')),
    doc_no          TEXT,
    posted_at       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error_code TEXT,
    last_error      TEXT,
    UNIQUE (series, closing_no),
    UNIQUE (series, business_date)
) STRICT;

CREATE INDEX closings_state_seq ON closings (state, seq);

-- Closings are immutable: never deleted, and what they say never changes
-- (only their delivery state does).
CREATE TRIGGER closings_are_never_deleted BEFORE DELETE ON closings
BEGIN
    SELECT RAISE(ABORT, 'closings are never deleted');
END;

CREATE TRIGGER closings_are_immutable BEFORE UPDATE OF
    seq, transaction_id, series, closing_no, business_date, body, body_sha256, recorded_at, actor
ON closings
BEGIN
    SELECT RAISE(ABORT, 'closings are immutable');
END;
