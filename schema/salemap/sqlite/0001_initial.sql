-- salemap on SQLite, migration 1: the posted sale map (DESIGN §7).

-- One row per transaction id ever posted, kept forever: the map that turns
-- at-least-once delivery into exactly-once posting. The primary key is the
-- gate: a post inserts its row first, and a duplicate finds it there.
CREATE TABLE posted (
    tenant         TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    lane_id        TEXT NOT NULL,
    series         TEXT NOT NULL,
    receipt_no     INTEGER NOT NULL CHECK (receipt_no > 0),
    lane_seq       INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('sale', 'return', 'void')),
    references_id  TEXT,
    business_date  TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total          INTEGER NOT NULL,
    -- SHA-256 (hex) of the envelope bytes as received: a repeat with other
    -- bytes is a payload mismatch, not a replay.
    fingerprint    TEXT NOT NULL,
    envelope       TEXT NOT NULL,
    -- Set in the same transaction as the insert (never NULL once committed).
    doc_no         TEXT,
    posted_at      TEXT NOT NULL,
    -- The void that cancelled this document, if any.
    voided_by      TEXT,
    PRIMARY KEY (tenant, transaction_id)
) STRICT, WITHOUT ROWID;

-- A lane that issues a receipt number twice (restored from an old copy)
-- is caught here; a voided document does not block a later post.
CREATE UNIQUE INDEX posted_live_receipt
    ON posted (tenant, lane_id, series, receipt_no) WHERE voided_by IS NULL;

-- Heartbeat (highest number per series) and day totals.
CREATE INDEX posted_lane_series ON posted (tenant, lane_id, series, receipt_no);
CREATE INDEX posted_lane_day ON posted (tenant, lane_id, business_date);

-- Document numbers per (tenant, series): taken only by the transaction that
-- won the gate, so a rollback leaves no gap.
CREATE TABLE doc_counters (
    tenant   TEXT NOT NULL,
    series   TEXT NOT NULL,
    last_no  INTEGER NOT NULL DEFAULT 0 CHECK (last_no >= 0),
    PRIMARY KEY (tenant, series)
) STRICT, WITHOUT ROWID;

-- Nothing posted is ever deleted.
CREATE TRIGGER posted_no_delete BEFORE DELETE ON posted
BEGIN
    SELECT RAISE(ABORT, 'posted documents are never deleted');
END;
