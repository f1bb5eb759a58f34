//! salemap in-process for tests: the real server on a loopback port, with
//! its store reachable for fault injection, stoppable and restartable on
//! the same address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use laned::common::clock::SystemClock;
use laned::contract::ack::Signing;
use laned::salemap::keys::KeySource;
use laned::salemap::{Config, DEFAULT_TENANT, Database, Lanes, Server, Store};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct Salemap {
    pub url: String,
    pub addr: SocketAddr,
    pub store: Store,
    db: Database,
    lanes: Lanes,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), laned::salemap::SalemapError>>,
}

impl Salemap {
    /// Starts on an ephemeral port with a SQLite database at `db`.
    pub async fn start(db: &Path, lanes: Lanes) -> Salemap {
        Self::start_on(Database::Sqlite(db.to_owned()), lanes).await
    }

    /// Starts on an ephemeral port with `db`.
    pub async fn start_on(db: Database, lanes: Lanes) -> Salemap {
        Self::start_at(db, lanes, "127.0.0.1:0".parse().expect("addr")).await
    }

    /// Starts on `addr` (to come back where a lane expects it).
    pub async fn start_at(db: Database, lanes: Lanes, addr: SocketAddr) -> Salemap {
        Self::start_with(
            db,
            lanes,
            addr,
            Arc::new(SystemClock::new()),
            laned::salemap::office::DEFAULT_CEILING,
        )
        .await
    }

    /// Starts on `addr` with `clock`, judging lanes silent after `ceiling`.
    /// It works on as many requests at once as the product does on `db`,
    /// but lets any number wait: the scenarios that send fifty requests at
    /// once test posting, not back-pressure (`busy.rs` does).
    pub async fn start_with(
        db: Database,
        lanes: Lanes,
        addr: SocketAddr,
        clock: Arc<dyn laned::common::clock::Clock>,
        ceiling: std::time::Duration,
    ) -> Salemap {
        let admission = laned::salemap::admission::Limits {
            waiting: 4096,
            ..laned::salemap::admission::Limits::for_database(&db)
        };
        Self::start_limited(db, lanes, addr, clock, ceiling, admission).await
    }

    /// Starts as [`Salemap::start_with`], admitting requests as `admission`
    /// says.
    pub async fn start_limited(
        db: Database,
        lanes: Lanes,
        addr: SocketAddr,
        clock: Arc<dyn laned::common::clock::Clock>,
        ceiling: std::time::Duration,
        admission: laned::salemap::admission::Limits,
    ) -> Salemap {
        let cfg = Config {
            listen: addr,
            database: db.clone(),
            lanes: lanes.clone(),
            tenant: DEFAULT_TENANT.into(),
            connections: Config::default_connections(),
            refused_skus: vec![],
            lane_ceiling: ceiling,
            admission,
            unsigned: false,
            signing_key: key_source(&db),
        };
        let server = Server::start(&cfg, clock).await.expect("salemap starts");
        let addr = server.addr();
        let store = server.store().clone();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Salemap {
            url: format!("http://{addr}"),
            addr,
            store,
            db,
            lanes,
            stop: Some(stop),
            task,
        }
    }

    /// Stops serving (requests in flight finish).
    pub async fn stop(mut self) -> (Database, Lanes, SocketAddr) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("join").expect("clean stop");
        (self.db.clone(), self.lanes.clone(), self.addr)
    }
}

/// The signing key of a salemap on `db`: a file beside a SQLite database
/// (made at the first start, kept across restarts), a fixed key on
/// PostgreSQL.
pub fn key_source(db: &Database) -> KeySource {
    match db {
        Database::Sqlite(path) => KeySource::File(path.with_extension("key")),
        Database::Postgres { .. } => KeySource::Key(Box::new(Signing::from_seed(&[42; 32]))),
    }
}

/// What `GET /v1/keys` of the salemap at `url` answers: the tenant and
/// the key, checked, ready to verify acks and certificates with.
pub async fn keys(
    url: &str,
    token: &str,
) -> (
    String,
    laned::contract::ack::PublicKey,
    laned::contract::ack::Pinned,
) {
    let keys: Value = super::client()
        .get(format!("{url}/v1/keys"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/keys")
        .json()
        .await
        .expect("JSON");
    let public: laned::contract::ack::PublicKey =
        serde_json::from_value(keys["signing_key"].clone()).expect("a signing key");
    let pinned = laned::contract::ack::Pinned::new(&public).expect("a usable key");
    let tenant = keys["tenant"].as_str().expect("a tenant").to_owned();
    (tenant, public, pinned)
}

/// An envelope as a lane would send it, with the example sale.
pub fn envelope(id: &str, lane: &str, series: &str, receipt_no: i64) -> String {
    envelope_of(id, lane, series, receipt_no, super::sale())
}

/// An envelope around `sale`.
pub fn envelope_of(id: &str, lane: &str, series: &str, receipt_no: i64, sale: Value) -> String {
    json!({
        "transaction_id": id, "lane_id": lane, "series": series,
        "receipt_no": receipt_no, "lane_seq": receipt_no,
        "recorded_at": "2026-11-22T11:03:11.482Z", "sale": sale,
    })
    .to_string()
}

/// An envelope of exactly `size` bytes (within a few KiB under the
/// contract's largest, or above it).
pub fn envelope_of_size(
    id: &str,
    lane: &str,
    series: &str,
    receipt_no: i64,
    size: usize,
) -> String {
    let base = envelope_of(id, lane, series, receipt_no, super::big_sale(930, 0)).len();
    assert!(base <= size && size - base <= 8 * 1024, "{base} vs {size}");
    let env = envelope_of(
        id,
        lane,
        series,
        receipt_no,
        super::big_sale(930, size - base),
    );
    assert_eq!(env.len(), size);
    env
}
