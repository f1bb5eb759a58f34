-- laned lane store, migration 3: the rest of the sync ceiling's checkpoint
-- (DESIGN §5). The lane_clock row of migration 1 keeps the offline time,
-- the wall time of the checkpoint and the clock anomalies.

-- Lane time at the checkpoint: a wall-clock estimate that never goes back
-- (it ignores a clock set back), for the month of the budget and the age
-- of unsent sales.
ALTER TABLE lane_clock ADD COLUMN lane_time TEXT;
-- Whether the last exchange with the back-end had succeeded.
ALTER TABLE lane_clock ADD COLUMN online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1));
-- Offline time booked to one calendar month ('YYYY-MM', lane time zone).
ALTER TABLE lane_clock ADD COLUMN budget_month TEXT;
ALTER TABLE lane_clock ADD COLUMN budget_month_ms INTEGER NOT NULL DEFAULT 0 CHECK (budget_month_ms >= 0);
