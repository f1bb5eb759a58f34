//! salemap: the reference back-end (docs/backend-contract.md), the server side of the
//! contract in [`crate::contract`]. It keeps a permanent map from
//! transaction id to posted document, so a sale re-posted any number of
//! times is posted once, and numbers its documents gap-free per series.
//!
//! - [`store`]: the map on SQLite, with the INSERT-first algorithm;
//! - [`api`]: the HTTP endpoints and their errors;
//! - [`tokens`]: which token may post for which lane.
//!
//! [`Server`] ties them together for the `salemap` binary and for embedding
//! (`laned demo`, tests).

pub mod admission;
pub mod api;
pub mod audit;
pub mod conformance;
pub mod keys;
pub mod office;
mod page;
pub mod store;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::common::clock::Clock;
pub use api::plain_id;
pub use store::{PgStore, SqliteStore, Store};
pub use tokens::Lanes;

/// Tenant of a single-tenant salemap.
pub const DEFAULT_TENANT: &str = "default";

/// Why salemap could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SalemapError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The signing key could not be read or made.
    #[error(transparent)]
    Key(#[from] keys::KeyFileError),
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// What a salemap serves and where it keeps its data.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// Who may post for which lane.
    pub lanes: Lanes,
    /// The tenant the documents belong to.
    pub tenant: String,
    /// What the server allows its connections.
    pub connections: crate::common::serve::Limits,
    /// The key that signs acknowledgements.
    pub signing_key: keys::KeySource,
    /// SKUs this back-end refuses (`422 unknown_sku`), to rehearse a stuck
    /// sale: `salemap serve --refuse-sku`, `laned demo`.
    pub refused_skus: Vec<String>,
    /// The lanes' sync ceiling: a lane not heard from for longer is shown
    /// to head office as silent.
    pub lane_ceiling: std::time::Duration,
    /// How many posting requests are worked on at once, and how many may
    /// wait (back-pressure: beyond them, `429 busy`).
    pub admission: admission::Limits,
    /// Benchmark seam: answer as a back-end that does not sign (no `ack`,
    /// no key in the heartbeat, no certificates), to measure what the
    /// signatures cost. Never set in the product.
    #[doc(hidden)]
    pub unsigned: bool,
}

/// Opens the database (and brings it to this version's schema).
pub async fn open_store(database: &Database) -> Result<Store, store::StoreError> {
    Ok(match database {
        Database::Sqlite(path) => {
            let path = path.clone();
            Store::Sqlite(
                tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                    .await
                    .map_err(|_| store::StoreError::Task)??,
            )
        }
        Database::Postgres { url, lock_timeout } => {
            Store::Postgres(PgStore::open(url, *lock_timeout).await?)
        }
    })
}

/// Connections open at once, by default: a fleet's lanes each keep one
/// alive between exchanges.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time to send a complete request head, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

impl Config {
    /// The default connection limits.
    pub fn default_connections() -> crate::common::serve::Limits {
        crate::common::serve::Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// Where the posted sale map lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file (embedded; the default).
    Sqlite(PathBuf),
    /// A PostgreSQL URL, `postgres://user:pass@host:port/db`, and how long a
    /// duplicate waits for the request posting the same id before it is
    /// answered `409 in_flight`.
    Postgres {
        /// The URL.
        url: String,
        /// The lock timeout.
        lock_timeout: std::time::Duration,
    },
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Never show a password.
            Database::Postgres { url, .. } => match reqwest::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://…"),
            },
        }
    }
}

/// Default `lock_timeout` on PostgreSQL.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A started salemap: database open, listener bound.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    state: api::AppState,
    clock: Arc<dyn Clock>,
    limits: crate::common::serve::Limits,
}

impl Server {
    /// Reads (or makes) the signing key, opens the database (migrating
    /// it) and binds the listener.
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Server, SalemapError> {
        let source = config.signing_key.clone();
        let signing = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|_| store::StoreError::Task)??;
        let store = open_store(&config.database).await?;
        let (listener, addr) =
            crate::common::service::bind(config.listen)
                .await
                .map_err(|source| SalemapError::Bind {
                    addr: config.listen,
                    source,
                })?;
        if matches!(config.lanes, Lanes::AnyLane) {
            tracing::warn!(
                "--allow-any-lane: ANY client may post sales for ANY lane without a token. \
                 For local demos only; never expose this salemap to a network"
            );
        }
        let state = api::AppState::new(store.clone(), config, clock.clone(), signing);
        Ok(Server {
            listener,
            addr,
            store,
            state,
            clock,
            limits: config.connections,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store (tests inject faults through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SalemapError> {
        // Pings the watchdog only after a round trip to the database
        // (SQLite's writing connection or the PostgreSQL pool).
        let store = self.store.clone();
        crate::common::service::run(
            self.listener,
            api::router(self.state),
            self.limits,
            self.clock.clone(),
            move || {
                let store = store.clone();
                async move { store.ping().await }
            },
            None,
            shutdown,
        )
        .await
        .map_err(SalemapError::Serve)
    }
}

/// Joins futures without a dependency: polls them all on this task, in
/// order (so queries on one PostgreSQL connection are pipelined in order).
pub(crate) async fn join_all<F: std::future::Future>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
