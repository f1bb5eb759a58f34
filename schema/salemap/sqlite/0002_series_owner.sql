-- salemap on SQLite, migration 2: a receipt series belongs to one lane.
-- The first lane to post in a series owns it; another lane's post in it is
-- refused (403 series_of_another_lane), so no lane can take another's
-- document numbers.

ALTER TABLE doc_counters ADD COLUMN lane_id TEXT;

-- Existing series: the lane of their first document.
UPDATE doc_counters SET lane_id = (
    SELECT p.lane_id FROM posted p
    WHERE p.tenant = doc_counters.tenant AND p.series = doc_counters.series
    ORDER BY p.posted_at, p.lane_seq LIMIT 1);
