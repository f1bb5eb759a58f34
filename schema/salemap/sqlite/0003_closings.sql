-- salemap on SQLite, migration 3: day closings (docs/backend-contract.md).
-- A lane's closing is a document of its fiscal journal (docs/journal.md):
-- stored once per id, with its exact bytes, and at most one per lane,
-- series and closing number. Closings take no document number of the
-- series' sales; theirs is the series and the closing number.

CREATE TABLE closings (
    tenant         TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    lane_id        TEXT NOT NULL,
    series         TEXT NOT NULL,
    closing_no     INTEGER NOT NULL CHECK (closing_no > 0),
    business_date  TEXT NOT NULL,
    -- SHA-256 (hex) of the envelope bytes as received.
    fingerprint    TEXT NOT NULL,
    envelope       TEXT NOT NULL,
    doc_no         TEXT NOT NULL,
    posted_at      TEXT NOT NULL,
    PRIMARY KEY (tenant, transaction_id)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX closings_number ON closings (tenant, lane_id, series, closing_no);

-- Closings are never deleted or changed.
CREATE TRIGGER closings_no_delete BEFORE DELETE ON closings
BEGIN
    SELECT RAISE(ABORT, 'closings are never deleted');
END;

CREATE TRIGGER closings_no_update BEFORE UPDATE ON closings
BEGIN
    SELECT RAISE(ABORT, 'closings are never changed');
END;
