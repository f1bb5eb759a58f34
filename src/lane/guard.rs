//! The live sync ceiling: one [`Ceiling`] shared by the drain (which reports
//! each exchange), the API (which asks the state before taking a sale) and
//! a small task that checkpoints the offline clock every minute and at
//! shutdown, and wakes when a threshold is due so state changes are logged
//! when they happen, once each.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::common::clock::Clock;
use crate::lane::ceiling::{
    Anomalies, Checkpoint, LaneState, Limits, Month, OfflineClock, Rule, next_change, verdict,
};
use crate::lane::messages::{Locale, Part, Phrase, Words};
use crate::lane::metrics::Metrics;
use crate::lane::store::{RestoreGuard, Store, StoreError};

/// How often the offline clock is written to disk while running. A crash
/// loses at most this much offline time.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// Why the ceiling could not start.
#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    /// The checkpoint or the oldest unsent sale could not be read.
    #[error("cannot read the lane clock")]
    Store(#[from] StoreError),
}

/// The back-end's clock as its last answer's `Date` header gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackendClock {
    /// Back-end time minus the till's wall clock, in whole seconds (positive: the
    /// till's clock is behind).
    pub offset_seconds: i64,
    /// When that answer came (the till's wall clock).
    pub observed_at: Timestamp,
}

/// The ceiling as of now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The lane state.
    pub state: LaneState,
    /// Limits apply (a back-end is configured).
    pub enforced: bool,
    /// The limits in force.
    pub limits: Limits,
    /// Time since the last successful exchange, downtime included.
    pub offline: Duration,
    /// The nearest limit and the time left before it.
    pub nearest: Option<(Rule, Duration)>,
    /// Offline time booked to the current month, and which month.
    pub month: (Option<Month>, Duration),
    /// The lane's time zone (for the month).
    pub time_zone: String,
    /// Clock anomalies seen.
    pub anomalies: Anomalies,
    /// Part of the offline time cannot be known (restarted after a reboot
    /// with the wall clock behind the last checkpoint): suspended until the
    /// back-end is reached.
    pub downtime_unknown: bool,
    /// Age of the oldest pending or stuck sale, by lane time.
    pub oldest_unsent_age: Option<Duration>,
    /// The back-end's clock, from the last answer with a `Date` header.
    pub backend_clock: Option<BackendClock>,
}

/// The ceiling's judgement of an offline clock.
fn judge(
    limits: &Limits,
    enforced: bool,
    time_zone: &str,
    offline: &OfflineClock,
    oldest_unsent_at: Option<Timestamp>,
    backend_clock: Option<BackendClock>,
) -> Snapshot {
    let inputs = offline.inputs(oldest_unsent_at);
    let (state, nearest) = if enforced {
        let v = verdict(limits, inputs);
        (v.state, v.nearest)
    } else if inputs.online {
        (LaneState::Online, None)
    } else {
        (LaneState::Offline, None)
    };
    Snapshot {
        state,
        enforced,
        limits: *limits,
        offline: inputs.offline,
        nearest,
        month: offline.month(),
        time_zone: time_zone.to_owned(),
        anomalies: offline.anomalies(),
        downtime_unknown: inputs.downtime_unknown,
        oldest_unsent_age: inputs.oldest_unsent,
        backend_clock,
    }
}

/// The ceiling as the daemon would judge it if it started now, from what
/// the database holds (the last checkpoint of the offline clock and the
/// oldest unsent sale): `laned status`, the daemon running or not. A
/// running daemon checkpoints every minute, so the two agree to within
/// [`CHECKPOINT_EVERY`].
pub fn assess(
    checkpoint: &Checkpoint,
    oldest_unsent_at: Option<Timestamp>,
    limits: Limits,
    tz: TimeZone,
    enforced: bool,
    clock: &dyn Clock,
) -> Snapshot {
    let time_zone = tz.iana_name().unwrap_or("local").to_owned();
    let offline = OfflineClock::resume(
        checkpoint,
        tz,
        clock.wall(),
        clock.monotonic(),
        clock.boot(),
    );
    judge(
        &limits,
        enforced,
        &time_zone,
        &offline,
        oldest_unsent_at,
        None,
    )
}

/// Handle to the live ceiling; cheap to clone.
#[derive(Clone)]
pub struct Ceiling {
    inner: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    enforced: bool,
    time_zone: String,
    clock: Arc<dyn Clock>,
    live: Mutex<Live>,
    changed: Notify,
    /// Checkpoints written: a readiness signal for tests and tools.
    checkpoints: watch::Sender<u64>,
}

struct Live {
    offline: OfflineClock,
    oldest_unsent_at: Option<Timestamp>,
    backend_clock: Option<BackendClock>,
    /// The state last logged.
    logged: Option<LaneState>,
    /// `online` and the state as of the last checkpoint written: a change
    /// of either is checkpointed at once.
    checkpointed: (bool, Option<LaneState>),
}

impl Ceiling {
    /// Resumes the offline clock from the store's checkpoint. With
    /// `enforced` false (no back-end configured) the time is still counted
    /// and shown, but no limit applies.
    pub async fn start(
        store: &Store,
        limits: Limits,
        tz: TimeZone,
        clock: Arc<dyn Clock>,
        enforced: bool,
    ) -> Result<Ceiling, CeilingError> {
        let cp = store.load_clock().await?;
        let oldest = store.oldest_unsent().await?;
        let time_zone = tz.iana_name().unwrap_or("local").to_owned();
        let offline = OfflineClock::resume(&cp, tz, clock.wall(), clock.monotonic(), clock.boot());
        let c = Ceiling {
            inner: Arc::new(Shared {
                limits,
                enforced,
                time_zone,
                clock,
                live: Mutex::new(Live {
                    offline,
                    oldest_unsent_at: oldest,
                    backend_clock: None,
                    logged: None,
                    checkpointed: (cp.online, None),
                }),
                changed: Notify::new(),
                checkpoints: watch::Sender::new(0),
            }),
        };
        let (a, unknown) = {
            let live = c.lock();
            (live.offline.anomalies(), live.offline.downtime_unknown())
        };
        let back_seconds = a.last_back.map_or(0, |d| d.as_secs());
        if unknown && !cp.downtime_unknown {
            tracing::error!(
                back_seconds,
                "the till restarted with its wall clock behind the last checkpoint of the \
                 offline clock, so how long it was off cannot be known; it counts as past \
                 every offline limit until the back-end is reached"
            );
        } else if a.count > cp.anomalies.count {
            tracing::warn!(
                back_seconds,
                "the wall clock was set back while laned was stopped; the downtime was \
                 measured with the boot clock instead and counts in full"
            );
        }
        // This run's first checkpoint is written before the lane serves.
        // A run killed before its checkpoint task first ran left nothing of
        // this boot's clock behind, and a lane that had never checkpointed
        // then started its offline time over at the next start: a crash
        // loop could hide real offline time from the ceiling.
        let first = c.lock().offline.checkpoint();
        store.save_clock(first).await?;
        c.snapshot();
        Ok(c)
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        // The state stays consistent under a panic elsewhere: every update
        // is a few assignments.
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The state now (and logs a change of state, once).
    pub fn snapshot(&self) -> Snapshot {
        let s = &self.inner;
        let mut live = self.lock();
        live.offline.observe(s.clock.wall(), s.clock.monotonic());
        self.evaluate(&mut live)
    }

    fn evaluate(&self, live: &mut Live) -> Snapshot {
        let s = &self.inner;
        let snap = judge(
            &s.limits,
            s.enforced,
            &s.time_zone,
            &live.offline,
            live.oldest_unsent_at,
            live.backend_clock,
        );
        let state = snap.state;
        if live.logged != Some(state) {
            log_state(live.logged, &snap);
            live.logged = Some(state);
        }
        snap
    }

    /// A successful exchange with the back-end (a post, a batch, a
    /// heartbeat): offline time is zero again, and a suspended lane sells
    /// again at once.
    pub fn exchange_ok(&self) {
        let s = &self.inner;
        let mut live = self.lock();
        live.offline.success(s.clock.wall(), s.clock.monotonic());
        self.evaluate(&mut live);
        drop(live);
        s.changed.notify_one();
    }

    /// A failed exchange: the lane is offline (since the last success).
    pub fn exchange_failed(&self) {
        let s = &self.inner;
        let mut live = self.lock();
        live.offline.failure(s.clock.wall(), s.clock.monotonic());
        self.evaluate(&mut live);
        drop(live);
        s.changed.notify_one();
    }

    /// The `Date` header of a back-end answer that just arrived.
    pub fn backend_date(&self, date: Timestamp) {
        let now = self.inner.clock.wall();
        let offset_seconds = date.duration_since(now).as_secs();
        self.lock().backend_clock = Some(BackendClock {
            offset_seconds,
            observed_at: now,
        });
    }

    /// The oldest pending or stuck sale changed (`recorded_at`, wall time).
    pub fn set_oldest_unsent(&self, recorded_at: Option<Timestamp>) {
        let mut live = self.lock();
        if live.oldest_unsent_at != recorded_at {
            live.oldest_unsent_at = recorded_at;
            drop(live);
            self.inner.changed.notify_one();
        }
    }

    /// A new sale was stored: it is the oldest unsent one if there was none.
    pub fn sale_recorded(&self, recorded_at: Timestamp) {
        let mut live = self.lock();
        if live.oldest_unsent_at.is_none() {
            live.oldest_unsent_at = Some(recorded_at);
            drop(live);
            self.inner.changed.notify_one();
        }
    }

    /// Checkpoints written so far (a readiness signal: a test that moved
    /// the clock waits for the checkpoint that follows).
    pub fn checkpoints(&self) -> watch::Receiver<u64> {
        self.inner.checkpoints.subscribe()
    }

    /// The oldest unsent sale matters only to `max_unsent_age`.
    pub fn tracks_unsent(&self) -> bool {
        self.inner.limits.max_unsent_age.is_some()
    }

    /// Runs the checkpoint task until `shutdown` is true, then writes a last
    /// checkpoint.
    pub fn spawn(
        &self,
        store: Store,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run(store, shutdown))
    }

    async fn run(self, store: Store, mut shutdown: watch::Receiver<bool>) {
        let clock = self.inner.clock.clone();
        let mut next_checkpoint = clock.monotonic();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mono = clock.monotonic();
            let (cp, wake_in) = {
                let mut live = self.lock();
                live.offline.observe(clock.wall(), mono);
                let snap = self.evaluate(&mut live);
                let now = (live.offline.online(), Some(snap.state));
                let due = mono >= next_checkpoint || live.checkpointed != now;
                let cp = due.then(|| {
                    live.checkpointed = now;
                    live.offline.checkpoint()
                });
                let inputs = live.offline.inputs(live.oldest_unsent_at);
                let wake_in = if snap.enforced {
                    next_change(&self.inner.limits, inputs)
                } else {
                    None
                };
                (cp, wake_in)
            };
            if let Some(cp) = cp {
                next_checkpoint = mono + CHECKPOINT_EVERY;
                match store.save_clock(cp).await {
                    Ok(()) => self.inner.checkpoints.send_modify(|n| *n += 1),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot checkpoint the offline clock; trying again in a minute")
                    }
                }
            }
            let wake = wake_in.map_or(next_checkpoint, |d| next_checkpoint.min(mono + d));
            let sleep = clock.sleep_until(wake);
            tokio::select! {
                () = sleep => {}
                () = self.inner.changed.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        let cp = {
            let mut live = self.lock();
            live.offline.observe(clock.wall(), clock.monotonic());
            live.offline.checkpoint()
        };
        if let Err(e) = store.save_clock(cp).await {
            tracing::error!(error = %e, "cannot write the last checkpoint of the offline clock");
        }
    }
}

/// Logs a change of state, with the reason, at a level that matches it.
fn log_state(from: Option<LaneState>, s: &Snapshot) {
    let from = from.map_or("(start)", LaneState::as_str);
    let to = s.state.as_str();
    let offline_seconds = s.offline.as_secs();
    match s.state {
        LaneState::Online => tracing::info!(from, to, "lane online: the back-end answered"),
        LaneState::Offline => tracing::info!(
            from,
            to,
            offline_seconds,
            "lane offline: no successful exchange with the back-end yet, or the last one failed"
        ),
        LaneState::Warning => tracing::warn!(
            from,
            to,
            offline_seconds,
            warn_after_seconds = s.limits.warn_after.as_secs(),
            "lane warning: offline for longer than warn_after; it will stop taking sales at the \
             sync ceiling unless the back-end is reached"
        ),
        LaneState::Suspended => {
            let rule = s.nearest.map_or("sync_ceiling", |(r, _)| r.as_str());
            tracing::error!(
                from,
                to,
                rule,
                offline_seconds,
                "lane suspended: {}; new sales are refused until the back-end is reached",
                Words(Locale::En).say(&reason(s))
            );
        }
    }
}

/// Why a lane is suspended, as a sentence a cashier understands (in the
/// reader's language: `messages::Words::say`).
pub fn reason(s: &Snapshot) -> Phrase {
    let rule = s.nearest.map(|(r, _)| r);
    match rule {
        Some(Rule::MaxUnsentAge) => Phrase::new("reason-max-unsent-age")
            .arg(
                "age",
                Part::Duration(s.oldest_unsent_age.unwrap_or_default()),
            )
            .arg(
                "limit",
                Part::Duration(s.limits.max_unsent_age.unwrap_or_default()),
            ),
        Some(Rule::MonthlyOfflineBudget) => Phrase::new("reason-monthly-budget")
            .arg("used", Part::Duration(s.month.1))
            .arg(
                "limit",
                Part::Duration(s.limits.monthly_offline_budget.unwrap_or_default()),
            ),
        Some(Rule::DowntimeUnknown) => Phrase::new("reason-downtime-unknown"),
        Some(Rule::SyncCeiling) | None => Phrase::new("reason-sync-ceiling")
            .arg("offline", Part::Duration(s.offline))
            .arg(
                "limit",
                Part::Duration(s.limits.sync_ceiling.unwrap_or_default()),
            ),
    }
}

#[cfg(test)]
mod tests {
    use super::Ceiling;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::common::clock::{Clock, ManualClock};
    use crate::lane::ceiling::Limits;
    use crate::lane::store::{LaneIdentity, Store};

    /// A run `kill -9`ed before its checkpoint task ever ran (a crash loop
    /// on a lane that has never checkpointed) still counts its offline
    /// time at the next start: the first checkpoint is written by `start`.
    #[tokio::test]
    async fn a_run_killed_before_its_checkpoint_task_ran_still_counts_its_offline_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-30T08:00:00Z".parse().unwrap()));
        let start = || async {
            let id = LaneIdentity {
                lane_id: "L03".into(),
                series: "L03".into(),
            };
            let (store, lock) = Store::open(dir.path(), id, clock.clone()).unwrap();
            let c = Ceiling::start(
                &store,
                Limits::default(),
                jiff::tz::TimeZone::UTC,
                clock.clone() as Arc<dyn Clock>,
                true,
            )
            .await
            .unwrap();
            (c, store, lock)
        };
        let (c, store, lock) = start().await;
        // Killed: the checkpoint task was never spawned.
        drop(c);
        store.close().await;
        drop(lock);
        clock.advance(Duration::from_secs(600));
        let (c, store, _lock) = start().await;
        let offline = c.snapshot().offline;
        assert!(offline >= Duration::from_secs(600), "{offline:?}");
        store.close().await;
    }
}

/// How long new sales wait after start for the drain's first comparison of
/// the lane's receipt numbers with the back-end's: long enough for a
/// back-end that answers, short enough that a till whose link is down is
/// not kept waiting (it then sells offline-first).
pub const NUMBER_CHECK_WAIT: Duration = Duration::from_secs(5);

/// The lane's receipt numbers against the back-end's, shared by the drain
/// (which compares them, at start and at every heartbeat) and the API
/// (which holds new sales until the first comparison since start has been
/// tried, for at most [`NUMBER_CHECK_WAIT`], and refuses them while the
/// restored-lane guard is raised).
#[derive(Clone, Debug)]
pub struct Numbers {
    guard: Arc<watch::Sender<Option<RestoreGuard>>>,
    tried: Arc<watch::Sender<bool>>,
}

impl Numbers {
    /// `guard`: one raised earlier, which holds until acknowledged.
    /// `to_check`: a back-end is configured, so there is something to
    /// compare with.
    pub fn new(guard: Option<RestoreGuard>, to_check: bool) -> Numbers {
        Numbers {
            guard: Arc::new(watch::Sender::new(guard)),
            tried: Arc::new(watch::Sender::new(!to_check)),
        }
    }

    /// The restored-lane guard, if raised.
    pub fn guard(&self) -> Option<RestoreGuard> {
        self.guard.borrow().clone()
    }

    /// Replaces the guard (the drain's comparison, an acknowledgement).
    pub fn set_guard(&self, guard: Option<RestoreGuard>) {
        self.guard.send_replace(guard);
    }

    /// The drain tried the first comparison since start (it may have
    /// failed).
    pub fn mark_tried(&self) {
        self.tried.send_replace(true);
    }

    /// The first comparison since start has been tried.
    pub fn was_tried(&self) -> bool {
        *self.tried.borrow()
    }

    /// Waits until the first comparison since start has been tried, or
    /// `clock` reaches `deadline` (monotonic), whichever comes first.
    pub async fn first_check(&self, clock: &dyn Clock, deadline: Duration) {
        let mut rx = self.tried.subscribe();
        if *rx.borrow_and_update() {
            return;
        }
        tokio::select! {
            // An error means the drain is gone: nothing to wait for.
            _ = rx.wait_for(|tried| *tried) => {}
            () = clock.sleep_until(deadline) => {
                tracing::warn!(
                    wait_seconds = NUMBER_CHECK_WAIT.as_secs(),
                    "the back-end has not answered the start-up comparison of receipt numbers; \
                     taking sales offline-first (a lane restored from an old copy is then caught \
                     as receipt_no_conflict when its sales are delivered)"
                );
            }
        }
    }
}

/// What a running lane's parts share (the drain, the API): its store and
/// clock, the live guards (the sync ceiling, the receipt numbers check) and
/// its metrics. One per daemon; cheap to clone.
#[derive(Clone)]
pub struct Lane {
    /// The store.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The sync ceiling.
    pub ceiling: Ceiling,
    /// The receipt numbers check and the restored-lane guard.
    pub numbers: Numbers,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// The automatic day closing, for the status report.
    pub closing: ClosingSchedule,
}

/// The automatic day closing as the status report shows it.
#[derive(Debug, Clone)]
pub struct ClosingSchedule {
    /// Its local time (`close_day_at`), if set.
    pub at: Option<jiff::civil::Time>,
    /// When its task runs next, as the task published it (`None` while it
    /// does not run).
    pub next: tokio::sync::watch::Receiver<Option<jiff::Timestamp>>,
}
