//! Automatic day closings (docs/journal.md, "Closing a day"): at the local
//! time the operator configures (`close_day_at`), the lane closes every
//! business day before the current one that has documents and no closing,
//! oldest first, as `laned close-day --through` would. Day D is due from
//! `close_day_at` on D + 1, so the setting is a time after the night's last
//! sale (a shop trading until 22:00 sets 23:30 or 03:00); closing the
//! current day early stays a deliberate act (`laned close-day`).
//!
//! A lane that was off at that time catches up when it starts. Nothing is
//! polled: the task sleeps on the [`Clock`] until the next closing time and
//! reads the wall clock again when it wakes, so a clock set forward while
//! it sleeps closes nothing before the real time, and a clock set back
//! closes only days already due by the clock it then reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use tokio::sync::watch;

use crate::common::clock::Clock;
use crate::lane::drain::DrainHandle;
use crate::lane::store::closing::{CloseOutcome, CloseRequest};
use crate::lane::store::{Store, StoreError};

/// Who the audit log and the closing name for an automatic closing.
pub const ACTOR: &str = "laned (close_day_at)";

/// After a failed attempt (a disk full, a database busy), the next one.
const RETRY: Duration = Duration::from_secs(300);

/// The last business day due for closing at `now`: day D is due from
/// `at` local time on D + 1 (`None`: no day can be, at the calendar's
/// very beginning).
pub fn due_through(now: Timestamp, at: Time, zone: &TimeZone) -> Option<Date> {
    let today = now.to_zoned(zone.clone()).date();
    let yesterday = today.yesterday().ok()?;
    if reached(today, at, zone, now) {
        Some(yesterday)
    } else {
        yesterday.yesterday().ok()
    }
}

/// Whether `at` on `day` (in `zone`; a time a clock change skips is taken
/// as the same time after the change: 03:30 becomes 04:30) has come by
/// `now`.
fn reached(day: Date, at: Time, zone: &TimeZone, now: Timestamp) -> bool {
    day.to_datetime(at)
        .to_zoned(zone.clone())
        .map(|z| z.timestamp() <= now)
        .unwrap_or(true)
}

/// How long from `now` until `at` next comes round in `zone`.
pub fn until_next(now: Timestamp, at: Time, zone: &TimeZone) -> Duration {
    let today = now.to_zoned(zone.clone()).date();
    std::iter::successors(Some(today), |d| d.tomorrow().ok())
        .take(3)
        .filter_map(|d| d.to_datetime(at).to_zoned(zone.clone()).ok())
        .map(|z| z.timestamp())
        .find(|t| *t > now)
        .and_then(|t| Duration::try_from(t.duration_since(now)).ok())
        // Past the calendar's end: look again in a day.
        .unwrap_or(Duration::from_secs(86_400))
}

/// Closes every day due at `now`; how many were closed.
pub async fn close_due(
    store: &Store,
    now: Timestamp,
    at: Time,
    zone: &TimeZone,
) -> Result<usize, StoreError> {
    let Some(through) = due_through(now, at, zone) else {
        return Ok(0);
    };
    let today = now.to_zoned(zone.clone()).date().to_string();
    let mut closed = 0;
    for day in store.open_days(through.to_string()).await? {
        let outcome = store
            .close_day(CloseRequest {
                business_date: day.clone(),
                today: today.clone(),
                counted: BTreeMap::new(),
                actor: ACTOR.into(),
            })
            .await?;
        match (&outcome, outcome.refusal()) {
            (CloseOutcome::Closed { closing }, _) => {
                closed += 1;
                tracing::info!(actor = ACTOR, series = %closing.series,
                    closing_no = closing.closing_no, business_date = %closing.business_date,
                    "business day closed");
            }
            (_, Some((code, message))) => {
                // A closing made meanwhile by hand, for one: nothing to do.
                tracing::info!(business_date = %day, code, "automatic closing skipped: {message}");
            }
            (_, None) => {}
        }
    }
    Ok(closed)
}

/// Runs the automatic closing until `stop` turns true: at start (a lane
/// off at closing time catches up), then at each `at` in `zone`. Before
/// each sleep it publishes on `next` the wall time it will wake at.
pub fn spawn(
    store: Store,
    clock: Arc<dyn Clock>,
    at: Time,
    zone: TimeZone,
    drain: Option<DrainHandle>,
    next: watch::Sender<Option<Timestamp>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = clock.wall();
            let wait = match close_due(&store, now, at, &zone).await {
                Ok(closed) => {
                    if closed > 0
                        && let Some(d) = &drain
                    {
                        d.wake();
                    }
                    until_next(now, at, &zone)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "automatic day closing failed; trying again in 5 minutes");
                    RETRY
                }
            };
            // The wall time it wakes at, for the status report.
            next.send_replace(
                jiff::SignedDuration::try_from(wait)
                    .ok()
                    .and_then(|w| now.checked_add(w).ok()),
            );
            let deadline = clock.monotonic() + wait;
            tokio::select! {
                () = clock.sleep_until(deadline) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_is_due_from_the_closing_time_of_the_next_day_in_the_lanes_zone() {
        let nairobi = TimeZone::get("Africa/Nairobi").unwrap();
        let at: Time = "03:00".parse().unwrap();
        // 02:59 in Nairobi on the 23rd: the 22nd is not due yet.
        let before = ts("2026-11-22T23:59:00Z");
        assert_eq!(
            due_through(before, at, &nairobi),
            Some("2026-11-21".parse().unwrap())
        );
        assert_eq!(until_next(before, at, &nairobi), Duration::from_secs(60));
        // 03:00 on the 23rd: it is, and the next closing is a day away.
        let at_time = ts("2026-11-23T00:00:00Z");
        assert_eq!(
            due_through(at_time, at, &nairobi),
            Some("2026-11-22".parse().unwrap())
        );
        assert_eq!(
            until_next(at_time, at, &nairobi),
            Duration::from_secs(86_400)
        );
        // A time the clock change skips (Kyiv, 29 March 2026, 03:00 →
        // 04:00): 03:30 is taken as 04:30 summer time, 01:30 UTC.
        let kyiv = TimeZone::get("Europe/Kyiv").unwrap();
        let gap: Time = "03:30".parse().unwrap();
        let night = ts("2026-03-28T23:00:00Z"); // 01:00 in Kyiv
        assert_eq!(
            due_through(night, gap, &kyiv),
            Some("2026-03-27".parse().unwrap())
        );
        assert_eq!(until_next(night, gap, &kyiv), Duration::from_secs(9000));
    }
}
