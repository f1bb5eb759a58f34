-- salemap on SQLite, migration 5: what head office sees of each lane
-- (docs/backend-contract.md, "Watermarks and holes"). Kept up to date on
-- intake, in the posting transaction, so that reading it costs one row
-- per lane and series however many documents the map holds.

-- Per lane and series.
CREATE TABLE series_marks (
    tenant        TEXT    NOT NULL,
    lane_id       TEXT    NOT NULL,
    series        TEXT    NOT NULL,
    -- Every receipt number 1..watermark is held.
    watermark     INTEGER NOT NULL DEFAULT 0 CHECK (watermark >= 0),
    -- The highest receipt number held.
    highest       INTEGER NOT NULL DEFAULT 0 CHECK (highest >= 0),
    -- Receipt numbers below `highest` not held (the sizes of the holes).
    missing       INTEGER NOT NULL DEFAULT 0 CHECK (missing >= 0),
    -- Closings held, and how many of them are certified.
    closings      INTEGER NOT NULL DEFAULT 0,
    certified     INTEGER NOT NULL DEFAULT 0,
    last_certified_no   INTEGER,
    last_certified_date TEXT,
    -- Documents refused because they contradict the chain (a forked lane).
    conflicts     INTEGER NOT NULL DEFAULT 0,
    last_conflict_at TEXT,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (tenant, lane_id, series)
) STRICT, WITHOUT ROWID;

-- Receipt numbers not held below the highest one held, as ranges
-- first_no..last_no, each with the time salemap first saw it missing (the
-- arrival of a higher number). A range shrinks or splits as its numbers
-- arrive, keeping that time, and goes when it is filled.
CREATE TABLE holes (
    tenant     TEXT    NOT NULL,
    lane_id    TEXT    NOT NULL,
    series     TEXT    NOT NULL,
    first_no   INTEGER NOT NULL CHECK (first_no > 0),
    last_no    INTEGER NOT NULL,
    opened_at  TEXT    NOT NULL,
    CHECK (last_no >= first_no),
    PRIMARY KEY (tenant, lane_id, series, first_no)
) STRICT, WITHOUT ROWID;

-- Per lane: when salemap last heard from it.
CREATE TABLE lanes_seen (
    tenant         TEXT NOT NULL,
    lane_id        TEXT NOT NULL,
    last_heartbeat TEXT,
    last_posted    TEXT,
    PRIMARY KEY (tenant, lane_id)
) STRICT, WITHOUT ROWID;

-- Documents refused because they contradict what salemap holds
-- (chain_conflict, grand_total_mismatch, receipt_no_conflict): a forked
-- lane, shown to head office. Kept as evidence; a repeat counts.
CREATE TABLE conflicts (
    tenant         TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    lane_id        TEXT    NOT NULL,
    series         TEXT    NOT NULL,
    numbered_by    TEXT    NOT NULL CHECK (numbered_by IN ('receipt', 'closing')),
    number         INTEGER NOT NULL,
    hash           TEXT    NOT NULL,
    code           TEXT    NOT NULL,
    holder         TEXT,
    first_seen     TEXT    NOT NULL,
    last_seen      TEXT    NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant, transaction_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX conflicts_lane ON conflicts (tenant, lane_id, last_seen);

-- What the map already holds.
INSERT INTO series_marks (tenant, lane_id, series, highest, missing, updated_at)
SELECT tenant, lane_id, series, MAX(receipt_no),
       MAX(receipt_no) - COUNT(DISTINCT receipt_no), MAX(posted_at)
FROM posted GROUP BY tenant, lane_id, series;

INSERT INTO holes (tenant, lane_id, series, first_no, last_no, opened_at)
SELECT tenant, lane_id, series, prev + 1, receipt_no - 1, posted_at
FROM (SELECT tenant, lane_id, series, receipt_no, posted_at,
             LAG(receipt_no, 1, 0) OVER (PARTITION BY tenant, lane_id, series
                                         ORDER BY receipt_no) AS prev
      FROM posted) AS p
WHERE receipt_no > prev + 1;

UPDATE series_marks SET watermark = COALESCE(
    (SELECT h.first_no - 1 FROM holes h
     WHERE h.tenant = series_marks.tenant AND h.lane_id = series_marks.lane_id
       AND h.series = series_marks.series
     ORDER BY h.first_no LIMIT 1),
    highest);

INSERT INTO series_marks (tenant, lane_id, series, updated_at)
SELECT tenant, lane_id, series, MAX(posted_at) FROM closings
GROUP BY tenant, lane_id, series
ON CONFLICT DO NOTHING;

UPDATE series_marks SET
    closings = (SELECT COUNT(*) FROM closings c
                WHERE c.tenant = series_marks.tenant AND c.lane_id = series_marks.lane_id
                  AND c.series = series_marks.series),
    certified = (SELECT COUNT(*) FROM certificates c
                 WHERE c.tenant = series_marks.tenant AND c.lane_id = series_marks.lane_id
                   AND c.series = series_marks.series),
    last_certified_no = (SELECT MAX(closing_no) FROM certificates c
                         WHERE c.tenant = series_marks.tenant
                           AND c.lane_id = series_marks.lane_id
                           AND c.series = series_marks.series);

UPDATE series_marks SET last_certified_date = (
    SELECT c.business_date FROM certificates c
    WHERE c.tenant = series_marks.tenant AND c.lane_id = series_marks.lane_id
      AND c.series = series_marks.series AND c.closing_no = series_marks.last_certified_no);

INSERT INTO lanes_seen (tenant, lane_id, last_posted)
SELECT tenant, lane_id, MAX(updated_at) FROM series_marks GROUP BY tenant, lane_id;

-- The documents of a lane's business day in order of series and receipt
-- number, paged (GET /v1/lanes/{lane}/days/{date}/documents), and its
-- totals: one index for both.
CREATE INDEX posted_lane_day_receipts
    ON posted (tenant, lane_id, business_date, series, receipt_no, transaction_id);
DROP INDEX posted_lane_day;
