//! salemap: the reference back-end (DESIGN §7), the server side of the
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

pub mod api;
pub mod store;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::clock::Clock;
pub use store::SqliteStore;
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
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// What a salemap serves and where it keeps its data.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub database: PathBuf,
    /// Who may post for which lane.
    pub lanes: Lanes,
    /// The tenant the documents belong to.
    pub tenant: String,
}

/// A started salemap: database open, listener bound.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    store: SqliteStore,
    state: api::AppState,
}

impl Server {
    /// Opens the database (migrating it) and binds the listener.
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Server, SalemapError> {
        let path = config.database.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|_| store::StoreError::Task)??;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SalemapError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SalemapError::Bind {
            addr: config.listen,
            source,
        })?;
        if matches!(config.lanes, Lanes::AnyLane) {
            tracing::warn!(
                "--allow-any-lane: ANY client may post sales for ANY lane without a token. \
                 For local demos only; never expose this salemap to a network"
            );
        }
        let state = api::AppState::new(
            store.clone(),
            config.lanes.clone(),
            config.tenant.clone(),
            clock,
        );
        Ok(Server {
            listener,
            addr,
            store,
            state,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store (tests inject faults through it).
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SalemapError> {
        axum::serve(self.listener, api::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(SalemapError::Serve)
    }
}
