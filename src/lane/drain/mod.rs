//! The drain: one task that delivers stored sales to the back-end in lane
//! order, exactly once (each sale keeps its id and bytes on every attempt),
//! through outages and restarts (docs/backend-contract.md).
//!
//! It sleeps until something can change its mind: a new sale, an operator's
//! "sync now", a config reload, the end of a backoff, the next stuck
//! re-check or the next heartbeat. There is no polling loop: an idle lane's
//! drain wakes only for heartbeats.

pub mod backoff;
pub mod classify;
pub mod client;
pub mod trust;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::common::clock::Clock;
use crate::common::secret::Secret;
use crate::lane::config::{DrainConfig, OnReject};
use crate::lane::guard::{Ceiling, Lane, Numbers};
use crate::lane::store::{
    AttemptRecord, Candidate, ClosingCandidate, ClosingDelivery, Delivery, DrainState, SaleState,
    Store, StoreError,
};
use backoff::Backoff;
use classify::Outcome;
use client::BatchAnswer;

pub use classify::Outcome as DeliveryOutcome;
pub use client::{Answer, BackendClient, ClientError};

/// How long the drain waits before trying again after its own store failed
/// (a busy or full disk); the back-end is not to blame, so no backoff state.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// Failed exchanges in a row (none getting anything through) before the
/// drain logs a warning, and after which it logs the recovery.
const FAILURES_WORTH_A_WARNING: i64 = 3;

/// Handle to a running drain.
#[derive(Clone, Debug)]
pub struct DrainHandle {
    wake: Arc<Notify>,
    probe: Arc<AtomicBool>,
    sync: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    rounds: watch::Receiver<u64>,
    client: Arc<BackendClient>,
}

impl DrainHandle {
    /// Wakes the drain: there is something new to send.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the drain and, if delivery is paused by a lane-level fault,
    /// has it probe the back-end at once (an operator's sync, a reload).
    pub fn probe(&self) {
        self.probe.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// An operator asked for a sync (or sent a stuck sale back): probe, and
    /// at the start of the next round clear the retry schedule and make
    /// stuck sales due again, so that an attempt already on the wire, if
    /// it is refused, does not swallow the request.
    pub fn sync(&self) {
        self.sync.store(true, Ordering::Relaxed);
        self.probe();
    }

    /// How many times the drain has woken up and looked for work. Tests use
    /// it to prove an idle lane does nothing between heartbeats.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Completed rounds (a look that sent, probed or decided to sleep, with
    /// its outcome recorded). A readiness signal for tests and tools.
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.clone()
    }

    /// Replaces the back-end token (config reload) and wakes the drain.
    pub fn set_token(&self, token: Option<Secret>) {
        self.client.set_token(token);
        self.probe();
    }

    /// The back-end's base URL, without credentials.
    pub fn backend_url(&self) -> &str {
        self.client.base()
    }
}

/// What the drain does next.
enum Wait {
    /// Look again at once (there may be more to send).
    Now,
    /// Sleep until this monotonic instant of the clock, or a wake-up.
    Until(Duration),
}

struct Drain {
    store: Store,
    client: Arc<BackendClient>,
    cfg: DrainConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    probe: Arc<AtomicBool>,
    sync: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    rounds: watch::Sender<u64>,
    ceiling: Ceiling,
    /// The receipt numbers check, shared with the API.
    numbers: Numbers,
    /// The back-end's receipt numbers were compared since start.
    numbers_checked: bool,
    metrics: Arc<crate::lane::metrics::Metrics>,
    backoff: Backoff,
    /// The back-end has no batch route: send single PUTs from now on.
    single: bool,
    /// Monotonic time of the next heartbeat (when idle).
    next_heartbeat: Duration,
    /// Monotonic time the current exchange started: the next heartbeat is
    /// scheduled from it, so the cadence does not drift with latency.
    exchange_started: Duration,
    /// The key the back-end's acknowledgements must verify against.
    trust: trust::Trust,
}

/// Starts the drain of `lane`, delivering through `client`.
pub fn spawn(
    lane: Lane,
    client: Arc<BackendClient>,
    cfg: DrainConfig,
    shutdown: watch::Receiver<bool>,
) -> (DrainHandle, tokio::task::JoinHandle<()>) {
    let Lane {
        store,
        clock,
        ceiling,
        numbers,
        metrics,
        closing: _,
    } = lane;
    let wake = Arc::new(Notify::new());
    let probe = Arc::new(AtomicBool::new(false));
    let sync = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicU64::new(0));
    let (rounds, rounds_rx) = watch::channel(0);
    let handle = DrainHandle {
        wake: wake.clone(),
        probe: probe.clone(),
        sync: sync.clone(),
        ticks: ticks.clone(),
        rounds: rounds_rx,
        client: client.clone(),
    };
    let cfg_key = cfg.backend_key.clone();
    let drain = Drain {
        backoff: Backoff {
            base: cfg.backoff_base,
            cap: cfg.backoff_cap,
            retry_after_cap: cfg.retry_after_cap,
        },
        store,
        client,
        cfg,
        next_heartbeat: clock.monotonic(),
        exchange_started: clock.monotonic(),
        clock,
        wake,
        probe,
        sync,
        ticks,
        rounds,
        ceiling,
        numbers,
        trust: trust::Trust {
            configured: cfg_key,
            ..trust::Trust::default()
        },
        numbers_checked: false,
        metrics,
        single: false,
    };
    (handle, tokio::spawn(drain.run(shutdown)))
}

impl Drain {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(backend = %self.client.base(), "drain started");
        // The key pinned before (it holds until the back-end's heartbeat
        // says otherwise); a configured key replaces it once the back-end
        // confirms it.
        match self.store.pinned_key().await {
            Ok(Some((keys, _))) => {
                let matches_config = self
                    .trust
                    .configured
                    .as_ref()
                    .is_none_or(|c| *c == keys.signing_key);
                if matches_config {
                    self.trust.pin(keys);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pinned back-end key; it is read again at the next heartbeat");
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.ticks.fetch_add(1, Ordering::Relaxed);
            let wait = tokio::select! {
                w = self.step() => w,
                // Dropping a step mid-request is safe: the sale stays
                // pending and its next attempt is answered as a replay.
                _ = shutdown.changed() => break,
            };
            let wait = wait.unwrap_or_else(|e| {
                tracing::error!(error = %e, "the drain could not use the store; trying again shortly");
                Wait::Until(self.clock.monotonic() + STORE_RETRY)
            });
            self.rounds.send_modify(|r| *r += 1);
            if let Wait::Until(deadline) = wait {
                let sleep = self.clock.sleep_until(deadline);
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = sleep => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        tracing::info!("drain stopped");
    }

    /// One look: send a batch, send a heartbeat, or decide how long to sleep.
    async fn step(&mut self) -> Result<Wait, StoreError> {
        // Only an operator's sync or a reload asks for a probe; a new sale
        // does not lift a pause.
        let probe = self.probe.swap(false, Ordering::Relaxed);
        let now = self.clock.wall();
        let mono = self.clock.monotonic();
        if self.sync.swap(false, Ordering::Relaxed) {
            self.store.rearm_for_sync(now).await?;
        }
        let state = self.store.drain_state().await?;
        // First thing after start: ask the back-end which receipt numbers
        // it holds, before the lane sends anything (or, through the API,
        // takes a new sale), whatever retry schedule an earlier run left.
        if !self.numbers.was_tried() {
            self.heartbeat(state).await?;
            return Ok(Wait::Now);
        }
        if state.fault_code.is_some() {
            // Paused: no sale is sent. Probe the link with a heartbeat when
            // asked (reload, operator) or at the heartbeat interval.
            if probe || mono >= self.next_heartbeat {
                self.heartbeat(state).await?;
                return Ok(Wait::Now);
            }
            return Ok(Wait::Until(self.next_heartbeat));
        }
        if let Some(until) = state.next_attempt_at
            && until > now
        {
            // The schedule is wall time (it survives restarts). One further
            // away than the longest delay the drain ever sets can only come
            // from a clock set back since: ignore it rather than wait for
            // the clock to catch up.
            let wait = until_from(now, until);
            if wait <= self.cfg.backoff_cap.max(self.cfg.retry_after_cap) {
                return Ok(Wait::Until(mono + wait));
            }
        }
        // First thing after start (once any retry schedule is due): ask the
        // back-end which receipt numbers it holds, before sending anything.
        if !self.numbers_checked && mono >= self.next_heartbeat {
            self.heartbeat(state).await?;
            return Ok(Wait::Now);
        }
        let policy = self.cfg.on_reject;
        let mut plan = self
            .store
            .plan_delivery(now, self.cfg.stuck_recheck, self.cfg.batch_size, policy)
            .await?;
        if !plan.sales.is_empty() {
            // A batch body stays within the contract's limit; the sales left
            // out go in the next round, in the same order.
            let fits = batch_prefix(
                &self.store.identity().lane_id,
                plan.sales.iter().map(|s| s.body.len()),
                crate::contract::MAX_BATCH_BYTES,
            );
            plan.sales.truncate(fits);
            self.deliver(plan.sales, state).await?;
            return Ok(Wait::Now);
        }
        if let Some(c) = plan.closing {
            self.deliver_closing(c, state).await?;
            return Ok(Wait::Now);
        }
        if mono >= self.next_heartbeat {
            self.heartbeat(state).await?;
            return Ok(Wait::Now);
        }
        let recheck = plan
            .next_recheck_at
            .map(|t| mono + until_from(now, t).min(self.cfg.stuck_recheck));
        Ok(Wait::Until(recheck.map_or(self.next_heartbeat, |r| {
            r.min(self.next_heartbeat)
        })))
    }

    async fn heartbeat(&mut self, mut state: DrainState) -> Result<(), StoreError> {
        let now = self.clock.wall();
        self.exchange_started = self.clock.monotonic();
        let answer = self.client.heartbeat(now).await;
        self.note_backend_date();
        let answer = match answer {
            Ok(hb) => self.check_keys(hb, now).await?,
            Err(a) => Err(a),
        };
        // Sales waiting for the first comparison go ahead once it has been
        // tried: after the comparison on success, offline-first on failure.
        let first = !self.numbers.was_tried();
        // The start-up comparison does not wait for an earlier run's retry
        // schedule, nor does it lift it: sales still wait for it (a
        // back-end's Retry-After is about sales, not heartbeats).
        let kept = state.next_attempt_at.filter(|t| first && *t > now);
        state.last_attempt_at = Some(now);
        match answer {
            Ok(hb) => {
                if state.fault_code.is_some() {
                    tracing::info!("the back-end accepts the lane again; resuming delivery");
                }
                self.succeeded(&mut state, now);
                state.next_attempt_at = kept;
                self.store.set_drain_state(state).await?;
                let checked = self.check_numbers(hb.last_receipt_no, now).await;
                self.numbers.mark_tried();
                return checked;
            }
            Err(a) => {
                let delay = self.failed(&mut state, &a.outcome, false);
                // While failing, probe again after the backoff, but never
                // later than the regular heartbeat.
                self.next_heartbeat =
                    self.exchange_started + delay.min(self.cfg.heartbeat_interval);
                // A link that is down holds back sales too: they wait for the
                // same backoff instead of each new sale trying at once.
                state.next_attempt_at = match a.outcome {
                    Outcome::LaneFault { .. } => None,
                    _ => Some(now + delay),
                };
                if let (Some(k), Some(new)) = (kept, state.next_attempt_at)
                    && k > new
                {
                    state.next_attempt_at = kept;
                }
                if first {
                    tracing::warn!(
                        code = %a.outcome.code(),
                        "could not compare receipt numbers with the back-end at start; taking \
                         sales offline-first"
                    );
                }
            }
        }
        let saved = self.store.set_drain_state(state).await;
        self.numbers.mark_tried();
        saved
    }

    /// The heartbeat's signing key against the key the lane trusts: the
    /// first one is pinned; another one is a lane-level fault
    /// (`bad_ack`), since no answer it signs would be taken.
    async fn check_keys(
        &mut self,
        hb: crate::contract::Heartbeat,
        now: jiff::Timestamp,
    ) -> Result<Result<crate::contract::Heartbeat, Answer>, StoreError> {
        match self.trust.check(hb.keys.as_ref()) {
            trust::KeyCheck::Same => Ok(Ok(hb)),
            trust::KeyCheck::Pin(keys, configured) => {
                let source = if configured {
                    crate::lane::store::acks::KeySource::Config
                } else {
                    crate::lane::store::acks::KeySource::FirstContact
                };
                self.store.pin_key(keys.clone(), source, now).await?;
                tracing::info!(key_id = %keys.signing_key.key_id, tenant = %keys.tenant, "pinned the back-end's signing key");
                self.trust.pin(keys);
                Ok(Ok(hb))
            }
            trust::KeyCheck::Refuse(message) => Ok(Err(Answer {
                outcome: Outcome::LaneFault {
                    code: trust::BAD_ACK.into(),
                    message,
                },
                http_status: Some(200),
            })),
        }
    }

    /// Compares the back-end's highest receipt numbers with the lane's own
    /// (at start and at every heartbeat): a back-end ahead means this
    /// lane's data is an old copy, and new sales must wait.
    async fn check_numbers(
        &mut self,
        backend: std::collections::BTreeMap<String, i64>,
        now: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        self.numbers_checked = true;
        let guard = self.store.check_receipt_numbers(backend, now).await?;
        if let Some(g) = &guard
            && self.numbers.guard().as_ref() != Some(g)
        {
            tracing::error!(
                series = %serde_json::to_string(&g.series).unwrap_or_default(),
                "the back-end holds higher receipt numbers than this lane: its data was \
                 restored from an old copy; new sales are refused until an operator \
                 acknowledges (POST /v1/admin/acknowledge-restore)"
            );
        }
        self.numbers.set_guard(guard);
        Ok(())
    }

    /// Sends `sales` (batch, or single PUTs) and records what came of them.
    async fn deliver(
        &mut self,
        sales: Vec<Candidate>,
        mut state: DrainState,
    ) -> Result<(), StoreError> {
        let now = self.clock.wall();
        self.exchange_started = self.clock.monotonic();
        let sent = self.send(&sales, now).await;
        let lane_id = self.client.lane_id().to_owned();
        let trust = &self.trust;
        // The signatures checked together, on every core: they are most of
        // a round's CPU, and the back-end waits for this round's end.
        let statuses: Vec<Option<u16>> = sent.iter().map(|a| a.http_status).collect();
        let checks: Vec<trust::Check<'_>> = sent
            .into_iter()
            .zip(&sales)
            .map(|(a, s)| trust::Check {
                outcome: a.outcome,
                series: &s.series,
                number: crate::contract::ack::Number::Receipt(s.receipt_no),
                body: &s.body,
            })
            .collect();
        let (answers, acks): (Vec<Answer>, Vec<Option<String>>) =
            crate::common::par::chunks(checks, |chunk| trust.verify_all(&lane_id, chunk))
                .into_iter()
                .zip(statuses)
                .map(|(v, http_status)| {
                    (
                        Answer {
                            outcome: v.outcome,
                            http_status,
                        },
                        v.ack,
                    )
                })
                .unzip();
        let took = self.clock.monotonic().saturating_sub(self.exchange_started);
        let duration_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        self.note_backend_date();
        state.last_attempt_at = Some(now);

        let retry = answers
            .iter()
            .find(|a| matches!(a.outcome, Outcome::Retry { .. }));
        let fault = answers
            .iter()
            .find(|a| matches!(a.outcome, Outcome::LaneFault { .. }));
        let answered = answers
            .iter()
            .any(|a| matches!(a.outcome, Outcome::Posted { .. } | Outcome::Stuck { .. }));
        let retry_at = match (fault, retry) {
            (Some(f), _) => {
                self.failed(&mut state, &f.outcome, answered);
                None
            }
            (None, Some(r)) => {
                // The longest Retry-After of the round governs the schedule.
                let longest = answers
                    .iter()
                    .filter_map(|a| match &a.outcome {
                        Outcome::Retry { retry_after, .. } => *retry_after,
                        _ => None,
                    })
                    .max();
                let outcome = match (&r.outcome, longest) {
                    (Outcome::Retry { code, message, .. }, l) => Outcome::Retry {
                        code: code.clone(),
                        message: message.clone(),
                        retry_after: l,
                    },
                    (o, _) => o.clone(),
                };
                // Progress (some sales posted or refused this round) starts
                // the backoff over: only rounds that got nothing through
                // make it grow.
                if answered {
                    state.consecutive_failures = 0;
                }
                let delay = self.failed(&mut state, &outcome, answered);
                Some(now + delay)
            }
            (None, None) => {
                self.succeeded(&mut state, now);
                None
            }
        };
        if answered && (fault.is_some() || retry.is_some()) {
            // The back-end did answer for some sales: the link works.
            state.last_success_at = Some(now);
            self.ceiling.exchange_ok();
            tracing::debug!(
                code = %retry.or(fault).map_or("", |a| a.outcome.code()),
                "part of a delivery round went through; the rest is retried"
            );
        }
        state.next_attempt_at = retry_at;

        let recheck_at = now + self.cfg.stuck_recheck;
        let deliveries = sales
            .iter()
            .zip(&answers)
            .zip(acks)
            .map(|((sale, a), ack)| {
                let (new_state, posted, error, next) = match &a.outcome {
                    Outcome::Posted {
                        doc_no, posted_at, ..
                    } => (
                        Some(SaleState::Posted),
                        Some((doc_no.clone(), posted_at.clone())),
                        None,
                        None,
                    ),
                    Outcome::Stuck { code, message } => {
                        if sale.state != SaleState::Stuck {
                            tracing::warn!(transaction_id = %sale.transaction_id, code = %code, message = %message, "the back-end refused a sale; it is stuck until re-checked or settled");
                        }
                        (
                            Some(SaleState::Stuck),
                            None,
                            Some((code.clone(), message.clone())),
                            Some(recheck_at),
                        )
                    }
                    Outcome::Retry { code, message, .. } => (
                        None,
                        None,
                        Some((code.clone(), message.clone())),
                        if sale.state == SaleState::Stuck {
                            Some(recheck_at)
                        } else {
                            retry_at
                        },
                    ),
                    // No sale changes state; a stuck sale keeps its slow
                    // re-check, or it would never be re-checked again.
                    Outcome::LaneFault { code, message } => (
                        None,
                        None,
                        Some((code.clone(), message.clone())),
                        (sale.state == SaleState::Stuck).then_some(recheck_at),
                    ),
                };
                Delivery {
                    seq: sale.seq,
                    new_state,
                    posted,
                    ack,
                    error: error.clone(),
                    next_attempt_at: next,
                    attempt: AttemptRecord {
                        started_at: now,
                        duration_ms,
                        outcome: a.outcome.kind(),
                        http_status: a.http_status,
                        error_code: error.as_ref().map(|e| e.0.clone()),
                        message: error.map(|e| e.1),
                    },
                }
            })
            .collect();
        let posted = answers
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Posted { .. }))
            .count();
        for a in &answers {
            self.metrics.attempt(a.outcome.kind());
        }
        self.store.record_delivery(deliveries, state).await?;
        tracing::debug!(sent = sales.len(), posted, "delivery round recorded");
        if self.ceiling.tracks_unsent() {
            self.ceiling
                .set_oldest_unsent(self.store.oldest_unsent().await?);
        }
        Ok(())
    }

    /// Sends a day closing and records what came of it. A back-end
    /// without the closings route (404, 405, 501) parks the closing as
    /// stuck rather than pause the lane's sales.
    async fn deliver_closing(
        &mut self,
        c: ClosingCandidate,
        mut state: DrainState,
    ) -> Result<(), StoreError> {
        let now = self.clock.wall();
        self.exchange_started = self.clock.monotonic();
        let a = self
            .client
            .put_closing(&c.transaction_id, c.body.clone(), now)
            .await;
        self.note_backend_date();
        let verified = self.trust.verify(
            a.outcome,
            self.client.lane_id(),
            &c.series,
            crate::contract::ack::Number::Closing(c.closing_no),
            &c.body,
            Some(&c.business_date),
        );
        let (ack, certificate) = (verified.ack, verified.certificate);
        self.metrics.attempt(verified.outcome.kind());
        state.last_attempt_at = Some(now);
        let outcome = match verified.outcome {
            Outcome::LaneFault { code, message }
                if matches!(a.http_status, Some(404 | 405 | 501)) =>
            {
                Outcome::Stuck {
                    code: "closings_not_supported".into(),
                    message: format!(
                        "the back-end has no route for day closings ({code}: {message})"
                    ),
                }
            }
            o => o,
        };
        let recheck_at = now + self.cfg.stuck_recheck;
        let delivery = match &outcome {
            Outcome::Posted {
                doc_no, posted_at, ..
            } => {
                self.succeeded(&mut state, now);
                tracing::info!(transaction_id = %c.transaction_id, doc_no = %doc_no, "day closing posted");
                ClosingDelivery {
                    seq: c.seq,
                    new_state: Some("posted"),
                    posted: Some((doc_no.clone(), posted_at.clone())),
                    ack,
                    certificate,
                    error: None,
                    next_attempt_at: None,
                }
            }
            Outcome::Stuck { code, message } => {
                // The back-end answered: the link works.
                self.succeeded(&mut state, now);
                if !c.stuck {
                    tracing::warn!(transaction_id = %c.transaction_id, code = %code, message = %message,
                        "the back-end refused a day closing; it is stuck until re-checked, and sales go on");
                }
                ClosingDelivery {
                    seq: c.seq,
                    new_state: Some("stuck"),
                    posted: None,
                    ack: None,
                    certificate: None,
                    error: Some((code.clone(), message.clone())),
                    next_attempt_at: Some(recheck_at),
                }
            }
            Outcome::Retry { code, message, .. } | Outcome::LaneFault { code, message } => {
                let delay = self.failed(&mut state, &outcome, false);
                if matches!(outcome, Outcome::Retry { .. }) {
                    state.next_attempt_at = Some(now + delay);
                }
                ClosingDelivery {
                    seq: c.seq,
                    new_state: None,
                    posted: None,
                    ack: None,
                    certificate: None,
                    error: Some((code.clone(), message.clone())),
                    next_attempt_at: c.stuck.then_some(recheck_at),
                }
            }
        };
        self.store.record_closing_delivery(delivery, state).await
    }

    /// Passes the `Date` of the back-end's last answer to the ceiling.
    fn note_backend_date(&self) {
        if let Some(d) = self.client.take_date() {
            self.ceiling.backend_date(d);
        }
    }

    /// One answer per sale sent, in order; sales not sent this round (after
    /// a failure that stops the round) are left out.
    async fn send(&mut self, sales: &[Candidate], now: jiff::Timestamp) -> Vec<Answer> {
        if !self.single {
            let ids: Vec<String> = sales.iter().map(|s| s.transaction_id.clone()).collect();
            let bodies: Vec<&[u8]> = sales.iter().map(|s| s.body.as_slice()).collect();
            match self.client.post_batch(&ids, &bodies, now).await {
                BatchAnswer::Items(items) => return items,
                BatchAnswer::Whole(a) => return vec![a; sales.len()],
                BatchAnswer::Unsupported => {
                    tracing::info!("the back-end has no batch route; sending sales one by one");
                    self.single = true;
                }
                BatchAnswer::SendSingly => {
                    tracing::info!(
                        sales = sales.len(),
                        "the back-end refused a batch request; sending its sales one by one"
                    );
                }
            }
        }
        let mut answers = Vec::with_capacity(sales.len());
        for s in sales {
            let a = self
                .client
                .put_sale(&s.transaction_id, s.body.clone(), now)
                .await;
            let stop = match a.outcome {
                Outcome::Retry { .. } | Outcome::LaneFault { .. } => true,
                Outcome::Stuck { .. } => self.cfg.on_reject == OnReject::Block,
                Outcome::Posted { .. } => false,
            };
            answers.push(a);
            // Keep lane order: nothing after a sale that must be retried.
            if stop {
                break;
            }
        }
        answers
    }

    fn succeeded(&mut self, state: &mut DrainState, now: jiff::Timestamp) {
        if state.consecutive_failures >= FAILURES_WORTH_A_WARNING || state.fault_code.is_some() {
            tracing::info!(
                after_failures = state.consecutive_failures,
                "back-end reachable again"
            );
        }
        state.last_success_at = Some(now);
        state.consecutive_failures = 0;
        state.last_error_code = None;
        state.last_error = None;
        state.fault_code = None;
        state.fault_message = None;
        state.next_attempt_at = None;
        self.next_heartbeat = self.exchange_started + self.cfg.heartbeat_interval;
        self.ceiling.exchange_ok();
    }

    /// Records a failure; returns the delay before the next try.
    /// `link_ok`: the same round got answers for other sales, so the link
    /// works and the lane's offline clock is not concerned.
    fn failed(&mut self, state: &mut DrainState, outcome: &Outcome, link_ok: bool) -> Duration {
        state.consecutive_failures += 1;
        let (code, message) = match outcome {
            Outcome::Retry { code, message, .. }
            | Outcome::Stuck { code, message }
            | Outcome::LaneFault { code, message } => (code.clone(), message.clone()),
            Outcome::Posted { .. } => ("posted".into(), String::new()),
        };
        if let Outcome::LaneFault { .. } = outcome {
            if state.fault_code.as_deref() != Some(code.as_str()) {
                tracing::error!(code = %code, message = %message, "the back-end refuses this lane; delivery paused until the configuration is fixed");
            }
            state.fault_code = Some(code.clone());
            state.fault_message = Some(message.clone());
            self.next_heartbeat = self.exchange_started + self.cfg.heartbeat_interval;
        } else if state.consecutive_failures == FAILURES_WORTH_A_WARNING {
            // A blip (a failure or two, then success) is not worth a warning
            // on a link that mostly works; a streak is.
            tracing::warn!(
                code = %code,
                message = %message,
                failures = state.consecutive_failures,
                "delivery keeps failing; retrying with backoff"
            );
        } else {
            tracing::debug!(code = %code, message = %message, failures = state.consecutive_failures, "delivery failed; retrying with backoff");
        }
        state.last_error_code = Some(code);
        state.last_error = Some(message);
        if !link_ok {
            self.ceiling.exchange_failed();
        }
        let retry_after = match outcome {
            Outcome::Retry { retry_after, .. } => *retry_after,
            _ => None,
        };
        let failures = u32::try_from(state.consecutive_failures).unwrap_or(u32::MAX);
        self.backoff
            .delay(failures, retry_after, crate::common::os_random)
    }
}

/// How many of the envelopes (of the lengths given, in order) fit in one
/// batch body of at most `limit` bytes; at least one, so an envelope of the
/// contract's largest size always goes (alone if need be).
fn batch_prefix(lane_id: &str, lens: impl IntoIterator<Item = usize>, limit: usize) -> usize {
    let mut total = crate::contract::batch_body(lane_id, []).len();
    let mut n = 0;
    for len in lens {
        // The envelope and the comma before it (none before the first).
        total += len + usize::from(n > 0);
        if total > limit && n > 0 {
            break;
        }
        n += 1;
    }
    n
}

/// Time from `now` until `t` (zero if `t` has passed).
fn until_from(now: jiff::Timestamp, t: jiff::Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::batch_prefix;

    #[test]
    fn a_batch_body_stays_within_the_limit_and_always_holds_one_envelope() {
        let lens = [10, 20, 30];
        let body = |n: usize| {
            let envs: Vec<Vec<u8>> = lens[..n].iter().map(|&l| vec![b'x'; l]).collect();
            crate::contract::batch_body("L03", envs.iter().map(Vec::as_slice)).len()
        };
        for limit in [
            0,
            body(1),
            body(2) - 1,
            body(2),
            body(3) - 1,
            body(3),
            1 << 20,
        ] {
            let n = batch_prefix("L03", lens, limit);
            assert!(n >= 1);
            assert!(n == 1 || body(n) <= limit, "{n} for {limit}");
            assert!(n == lens.len() || body(n + 1) > limit, "{n} for {limit}");
        }
    }
}
