-- laned lane store, migration 7: the fiscal journal's heads.
--
-- From this version on, every envelope carries `prev_hash` (the SHA-256 of
-- the previous document of its series' exact bytes) and `grand_total` (the
-- series' cumulative net per currency after it); docs/journal.md states the
-- format. These tables hold each series' head, so that the next document is
-- chained without reading the history: written in the same transaction as
-- the document itself. Envelopes stored before this migration stay
-- byte-identical; the first new document of a series links to the hash of
-- the last stored one, and its grand total includes them.

CREATE TABLE journal_head (
    series    TEXT PRIMARY KEY NOT NULL,
    -- Lowercase hex SHA-256 of the series' last document's bytes.
    last_hash TEXT NOT NULL CHECK (length(last_hash) = 64)
) STRICT;

CREATE TABLE journal_total (
    series   TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    -- The series' cumulative net in this currency, minor units.
    amount   INTEGER NOT NULL,
    PRIMARY KEY (series, currency)
) STRICT, WITHOUT ROWID;

INSERT INTO journal_head (series, last_hash)
SELECT s.series, s.body_sha256 FROM sales s
WHERE s.seq = (SELECT max(seq) FROM sales WHERE series = s.series);

-- A sale adds its total, a return subtracts it, a void subtracts the
-- signed total of the document it voids when that document is earlier in
-- the same series (and nothing otherwise).
INSERT INTO journal_total (series, currency, amount)
SELECT s.series, s.currency,
       sum(CASE s.kind
             WHEN 'sale' THEN s.total
             WHEN 'return' THEN -s.total
             ELSE -coalesce((SELECT CASE r.kind WHEN 'sale' THEN r.total
                                                WHEN 'return' THEN -r.total ELSE 0 END
                             FROM sales r
                             WHERE r.transaction_id = s.references_id
                               AND r.series = s.series AND r.seq < s.seq), 0)
           END)
FROM sales s GROUP BY s.series, s.currency;
