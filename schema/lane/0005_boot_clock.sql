-- laned lane store, migration 5: the boot clock in the sync ceiling's
-- checkpoint, so that the downtime of a daemon stopped any way (clean,
-- kill -9, crash) is measured exactly within one boot, whatever the wall
-- clock did meanwhile.

-- The boot the checkpoint was taken in (Linux: the kernel's boot_id), and
-- the boot clock then (CLOCK_BOOTTIME, milliseconds). NULL where the
-- platform has no boot clock.
ALTER TABLE lane_clock ADD COLUMN boot_id TEXT;
ALTER TABLE lane_clock ADD COLUMN boot_ms INTEGER CHECK (boot_ms >= 0);
-- The lane restarted after a reboot with its wall clock behind the
-- checkpoint: how long it was off cannot be known, so it counts as past
-- every offline limit until the next successful exchange clears this.
ALTER TABLE lane_clock ADD COLUMN downtime_unknown INTEGER NOT NULL DEFAULT 0
    CHECK (downtime_unknown IN (0, 1));
