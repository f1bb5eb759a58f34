//! `/metrics` in the Prometheus (OpenMetrics) text format, for operators
//! who watch a fleet. Counters and the ingest latency histogram are
//! updated as things happen; the gauges (sales per state, oldest pending
//! age, offline time, lane state) are read fresh at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::lane::ceiling::LaneState;

/// One label: a state or an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state's name.
    pub state: String,
}

/// The outcome of a delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// posted, stuck, retry or lane_fault.
    pub outcome: String,
}

/// Everything `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    sales_recorded: Counter,
    sales_posted: Counter,
    attempts: Family<OutcomeLabel, Counter>,
    ingest_seconds: Histogram,
    sales: Family<StateLabel, Gauge>,
    oldest_pending_age: Gauge,
    offline_seconds: Gauge,
    lane_state: Family<StateLabel, Gauge>,
}

/// Buckets of the ingest latency histogram (seconds): the till API's
/// target is 2 ms at the 99th percentile.
const INGEST_BUCKETS: [f64; 11] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A snapshot of the figures read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Sales per state.
    pub by_state: Vec<(String, i64)>,
    /// Age of the oldest pending sale, seconds.
    pub oldest_pending_age: i64,
    /// Time since the last successful exchange, seconds.
    pub offline_seconds: i64,
    /// The lane state.
    pub lane_state: Option<LaneState>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("laned");
        let m = Metrics {
            sales_recorded: Counter::default(),
            sales_posted: Counter::default(),
            attempts: Family::default(),
            ingest_seconds: Histogram::new(INGEST_BUCKETS),
            sales: Family::default(),
            oldest_pending_age: Gauge::default(),
            offline_seconds: Gauge::default(),
            lane_state: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sales_recorded",
            "Sales stored with a new receipt number since start",
            m.sales_recorded.clone(),
        );
        registry.register(
            "sales_posted",
            "Sales the back-end confirmed since start",
            m.sales_posted.clone(),
        );
        registry.register(
            "drain_attempts",
            "Delivery attempts by outcome since start",
            m.attempts.clone(),
        );
        registry.register(
            "ingest_latency_seconds",
            "Time to record a new sale, from request to answer",
            m.ingest_seconds.clone(),
        );
        registry.register("sales", "Sales on the lane by state", m.sales.clone());
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest pending sale (0 when none)",
            m.oldest_pending_age.clone(),
        );
        registry.register(
            "offline_seconds",
            "Time since the last successful exchange with the back-end",
            m.offline_seconds.clone(),
        );
        registry.register(
            "lane_state",
            "1 for the lane's current state (online, offline, warning, suspended)",
            m.lane_state.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A sale was recorded; `seconds` from request to answer.
    pub fn sale_recorded(&self, seconds: f64) {
        self.sales_recorded.inc();
        self.ingest_seconds.observe(seconds);
    }

    /// A delivery attempt for one sale ended with `outcome`.
    pub fn attempt(&self, outcome: &str) {
        self.attempts
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
        if outcome == "posted" {
            self.sales_posted.inc();
        }
    }

    /// The text exposition, with the gauges set from `g`.
    pub fn render(&self, g: &Gauges) -> String {
        for (state, n) in &g.by_state {
            self.sales
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(*n);
        }
        self.oldest_pending_age.set(g.oldest_pending_age);
        self.offline_seconds.set(g.offline_seconds);
        for s in [
            LaneState::Online,
            LaneState::Offline,
            LaneState::Warning,
            LaneState::Suspended,
        ] {
            self.lane_state
                .get_or_create(&StateLabel {
                    state: s.as_str().to_owned(),
                })
                .set(i64::from(g.lane_state == Some(s)));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
