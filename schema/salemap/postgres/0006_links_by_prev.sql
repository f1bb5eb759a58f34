-- salemap on PostgreSQL, migration 6: a link is found by the hash it
-- names as its predecessor through an index that shares no leading
-- columns with the primary key. With both starting (tenant, lane_id,
-- series), a database without statistics yet (fresh, or restored from a
-- dump) costs the two the same, and the planner took the primary key:
-- every lookup read the whole series, each batch slower than the last
-- until autovacuum first analysed the table. The lookups name the lane
-- and series in a way no index serves (src/salemap/store/postgres.rs,
-- `facts` and `advance`), so this index is the only way in.
DROP INDEX links_prev;
CREATE INDEX links_prev ON links (tenant, prev_hash);
