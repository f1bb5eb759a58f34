-- salemap on PostgreSQL, migration 5: what head office sees of each lane
-- (docs/backend-contract.md, "Watermarks and holes"). Kept up to date on
-- intake, in the posting transaction, so that reading it costs one row
-- per lane and series however many documents the map holds.

-- Per lane and series.
CREATE TABLE series_marks (
    tenant        text    NOT NULL,
    lane_id       text    NOT NULL,
    series        text    NOT NULL,
    -- Every receipt number 1..watermark is held.
    watermark     bigint NOT NULL DEFAULT 0 CHECK (watermark >= 0),
    -- The highest receipt number held.
    highest       bigint NOT NULL DEFAULT 0 CHECK (highest >= 0),
    -- Receipt numbers below `highest` not held (the sizes of the holes).
    missing       bigint NOT NULL DEFAULT 0 CHECK (missing >= 0),
    -- Closings held, and how many of them are certified.
    closings      bigint NOT NULL DEFAULT 0,
    certified     bigint NOT NULL DEFAULT 0,
    last_certified_no   bigint,
    last_certified_date text,
    -- Documents refused because they contradict the chain (a forked lane).
    conflicts     bigint NOT NULL DEFAULT 0,
    last_conflict_at text,
    updated_at    text    NOT NULL,
    PRIMARY KEY (tenant, lane_id, series)
);

-- Receipt numbers not held below the highest one held, as ranges
-- first_no..last_no, each with the time salemap first saw it missing (the
-- arrival of a higher number). A range shrinks or splits as its numbers
-- arrive, keeping that time, and goes when it is filled.
CREATE TABLE holes (
    tenant     text    NOT NULL,
    lane_id    text    NOT NULL,
    series     text    NOT NULL,
    first_no   bigint NOT NULL CHECK (first_no > 0),
    last_no    bigint NOT NULL,
    opened_at  text    NOT NULL,
    CHECK (last_no >= first_no),
    PRIMARY KEY (tenant, lane_id, series, first_no)
);

-- Per lane: when salemap last heard from it.
CREATE TABLE lanes_seen (
    tenant         text NOT NULL,
    lane_id        text NOT NULL,
    last_heartbeat text,
    last_posted    text,
    PRIMARY KEY (tenant, lane_id)
);

-- Documents refused because they contradict what salemap holds
-- (chain_conflict, grand_total_mismatch, receipt_no_conflict): a forked
-- lane, shown to head office. Kept as evidence; a repeat counts.
CREATE TABLE conflicts (
    tenant         text    NOT NULL,
    transaction_id text    NOT NULL,
    lane_id        text    NOT NULL,
    series         text    NOT NULL,
    numbered_by    text    NOT NULL CHECK (numbered_by IN ('receipt', 'closing')),
    number         bigint NOT NULL,
    hash           text    NOT NULL,
    code           text    NOT NULL,
    holder         text,
    first_seen     text    NOT NULL,
    last_seen      text    NOT NULL,
    attempts       bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant, transaction_id)
);

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
