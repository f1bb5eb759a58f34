-- salemap on SQLite, migration 4: chains checked on intake
-- (docs/backend-contract.md, "Chains").
--
-- One row per document salemap holds, sale or closing, with its place in
-- its lane's fiscal journal (docs/journal.md): its hash, the prev_hash it
-- names and its grand total. A document's predecessor is the row of its
-- lane and series whose hash is its prev_hash; a row whose predecessor is
-- missing is a link not yet proven (a hole in the chain).
CREATE TABLE links (
    tenant         TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    lane_id        TEXT    NOT NULL,
    series         TEXT    NOT NULL,
    lane_seq       INTEGER NOT NULL,
    -- 'receipt' (a sale, return or void) or 'closing', and its number.
    numbered_by    TEXT    NOT NULL CHECK (numbered_by IN ('receipt', 'closing')),
    number         INTEGER NOT NULL,
    -- SHA-256 (hex) of the document's bytes.
    hash           TEXT    NOT NULL,
    -- NULL for a document from before the journal.
    prev_hash      TEXT,
    -- JSON object currency -> minor units; NULL with prev_hash.
    grand_total    TEXT,
    -- The document's currency (NULL for a closing) and what it does to the
    -- grand total (NULL: a void of a document salemap does not hold).
    currency       TEXT,
    effect         INTEGER,
    -- Its predecessor was not held when it arrived.
    out_of_order   INTEGER NOT NULL DEFAULT 0 CHECK (out_of_order IN (0, 1)),
    -- It follows a predecessor another held document follows (a restored
    -- lane numbering on above head office's numbers).
    forked         INTEGER NOT NULL DEFAULT 0 CHECK (forked IN (0, 1)),
    -- What its predecessor, arriving after it, showed to be wrong.
    problem        TEXT,
    held_at        TEXT    NOT NULL,
    -- In lane order per series: a lane's documents are appended at the
    -- end, and a document's predecessor is the one before it. (A lane
    -- restored from an old copy may repeat a lane_seq: the hash tells its
    -- documents apart.) The id is looked up in posted and closings.
    PRIMARY KEY (tenant, lane_id, series, lane_seq, hash)
) STRICT, WITHOUT ROWID;

-- The documents that follow a given one (a successor that arrived early,
-- a second one in the same place).
CREATE INDEX links_prev ON links (tenant, lane_id, series, prev_hash);

-- What salemap already holds.
INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by, number,
                   hash, prev_hash, grand_total, currency, effect, held_at)
SELECT p.tenant, p.transaction_id, p.lane_id, p.series, p.lane_seq, 'receipt', p.receipt_no,
       p.fingerprint, json_extract(p.envelope, '$.prev_hash'),
       json_extract(p.envelope, '$.grand_total'), p.currency,
       CASE p.kind
         WHEN 'sale' THEN p.total
         WHEN 'return' THEN -p.total
         ELSE (SELECT CASE WHEN r.lane_id = p.lane_id AND r.series = p.series
                                AND r.lane_seq < p.lane_seq
                           THEN CASE r.kind WHEN 'sale' THEN -r.total
                                            WHEN 'return' THEN r.total ELSE 0 END
                           ELSE 0 END
               FROM posted r
               WHERE r.tenant = p.tenant AND r.transaction_id = p.references_id)
       END,
       p.posted_at
FROM posted p;

INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by, number,
                   hash, prev_hash, grand_total, currency, effect, held_at)
SELECT c.tenant, c.transaction_id, c.lane_id, c.series,
       json_extract(c.envelope, '$.lane_seq'), 'closing', c.closing_no,
       c.fingerprint, json_extract(c.envelope, '$.prev_hash'),
       json_extract(c.envelope, '$.grand_total'), NULL, 0, c.posted_at
FROM closings c;

-- How far each lane's chain is proven from its start: the last document
-- such that salemap holds every document of the series from the first
-- (prev_hash 64 zeros) through it, each linked to the one before. It only
-- moves forward, one document at a time, as documents arrive.
CREATE TABLE chain_heads (
    tenant     TEXT    NOT NULL,
    lane_id    TEXT    NOT NULL,
    series     TEXT    NOT NULL,
    head_hash  TEXT    NOT NULL,
    head_id    TEXT    NOT NULL,
    head_lane_seq INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (tenant, lane_id, series)
) STRICT, WITHOUT ROWID;

-- Day certificates: a closing the proven chain has reached. salemap signs
-- them when it serves them (Ed25519 signatures are deterministic), over
-- these columns and its tenant.
CREATE TABLE certificates (
    tenant        TEXT    NOT NULL,
    lane_id       TEXT    NOT NULL,
    series        TEXT    NOT NULL,
    closing_no    INTEGER NOT NULL,
    business_date TEXT    NOT NULL,
    closing_id    TEXT    NOT NULL,
    closing_hash  TEXT    NOT NULL,
    certified_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant, lane_id, series, closing_no)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER certificates_no_change BEFORE UPDATE ON certificates
BEGIN
    SELECT RAISE(ABORT, 'certificates are never changed');
END;

CREATE TRIGGER certificates_no_delete BEFORE DELETE ON certificates
BEGIN
    SELECT RAISE(ABORT, 'certificates are never deleted');
END;

-- Links are never deleted.
CREATE TRIGGER links_no_delete BEFORE DELETE ON links
BEGIN
    SELECT RAISE(ABORT, 'links are never deleted');
END;

-- The heartbeat's highest receipt number per series of a lane: the lane's
-- series, then one index step each, whatever the map holds.
CREATE INDEX doc_counters_lane ON doc_counters (tenant, lane_id);
