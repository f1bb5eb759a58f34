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
    PRIMARY KEY (tenant, transaction_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX links_hash ON links (tenant, lane_id, series, hash);
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

-- Links are never deleted.
CREATE TRIGGER links_no_delete BEFORE DELETE ON links
BEGIN
    SELECT RAISE(ABORT, 'links are never deleted');
END;
