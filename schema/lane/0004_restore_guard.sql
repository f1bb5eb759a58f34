-- laned lane store, migration 4: the guard against a lane restored from an
-- old copy of its database (issue 5). The back-end's heartbeat reports the
-- highest receipt number it holds per series; if that is above this lane's
-- counter, the lane's data is older than what it already issued. New sales
-- are refused (no number may be issued twice) until an operator
-- acknowledges; numbering then continues above the back-end's number.
-- Rows are kept: an acknowledged guard is history.
CREATE TABLE restore_guard (
    id              INTEGER PRIMARY KEY,
    detected_at     TEXT NOT NULL,
    -- JSON: {"SERIES": {"lane": last number here, "backend": last number there}}
    series          TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    reason          TEXT,
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
) STRICT;

-- At most one guard is active at a time.
CREATE UNIQUE INDEX restore_guard_active ON restore_guard ((acknowledged_at IS NULL))
    WHERE acknowledged_at IS NULL;
