//! Wiring: the store, the listener and the API, started and stopped in the
//! right order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::common::clock::Clock;
use crate::common::secret::Secret;
use crate::lane::api::{self, Access, AppState};
use crate::lane::config::Config;
use crate::lane::drain::{self, BackendClient, DrainHandle};
use crate::lane::guard::{Ceiling, CeilingError, ClosingSchedule, Lane, Numbers};
use crate::lane::store::{InstanceLock, LaneIdentity, Store, StoreError};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store refused to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The offline clock could not be resumed.
    #[error(transparent)]
    Ceiling(#[from] CeilingError),
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The back-end URL or HTTPS client is not usable.
    #[error("cannot deliver to the back-end")]
    Backend(#[from] crate::lane::drain::ClientError),
    /// The admin token file could not be created or read.
    #[error("cannot {what} the admin token file {path}")]
    AdminToken {
        /// create or read.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Name of the admin token file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Reads the admin token, creating it (random, owner-only) at first start.
fn admin_token(data_dir: &std::path::Path) -> Result<Secret, DaemonError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let err = |what, source| DaemonError::AdminToken {
        what,
        path: path.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            // 256 random bits from the OS generator, as hex.
            let token: String = (0..2)
                .map(|_| uuid::Uuid::new_v4().simple().to_string())
                .collect();
            f.write_all(token.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| err("write", e))?;
            tracing::info!(path = %path.display(), "created the admin token file");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("create", e)),
    }
    let t = std::fs::read_to_string(&path).map_err(|e| err("read", e))?;
    Ok(Secret::new(t.trim()))
}

/// A started daemon: store open, listener bound, not yet serving.
pub struct Daemon {
    store: Store,
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    _lock: InstanceLock,
    drain: Option<(DrainHandle, tokio::task::JoinHandle<()>)>,
    ceiling: Ceiling,
    ceiling_task: tokio::task::JoinHandle<()>,
    stop_drain: watch::Sender<bool>,
    stop_ceiling: watch::Sender<bool>,
    /// The automatic day closing, when `close_day_at` is set.
    closer: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    clock: Arc<dyn Clock>,
    limits: crate::common::serve::Limits,
}

impl Daemon {
    /// Checks what can fail without touching the disk (the back-end's
    /// URL), takes the instance lock, binds the listener, and only then
    /// opens the store (creating the database or applying migrations): a
    /// start that cannot serve leaves no database behind.
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Daemon, DaemonError> {
        let client = match &config.backend_url {
            Some(url) => Some(Arc::new(BackendClient::new(
                url,
                &config.lane_id,
                config.drain.backend_token.clone(),
                config.drain.request_timeout,
            )?)),
            None => None,
        };
        let identity = LaneIdentity {
            lane_id: config.lane_id.clone(),
            series: config.series.clone(),
        };
        let (dir, c, id) = (
            config.data_dir.clone(),
            clock.clone(),
            config.lane_id.clone(),
        );
        let lock = tokio::task::spawn_blocking(move || Store::lock(&dir, &id, c.as_ref()))
            .await
            .map_err(|_| StoreError::Internal("taking the instance lock panicked"))??;
        let (listener, addr) =
            crate::common::service::bind(config.listen)
                .await
                .map_err(|source| DaemonError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let (dir, c) = (config.data_dir.clone(), clock.clone());
        let (store, mut lock) =
            tokio::task::spawn_blocking(move || Store::open_locked(&dir, lock, identity, c))
                .await
                .map_err(|_| StoreError::Internal("opening the store panicked"))??;
        lock.describe(&crate::lane::store::serving_description(
            &config.lane_id,
            addr,
            &crate::common::time::fmt_ts(clock.wall()),
        ))?;
        // The lane is offline until the drain's first successful exchange;
        // without a back-end, no limit applies.
        let ceiling = Ceiling::start(
            &store,
            config.ceiling.limits,
            config.ceiling.time_zone.clone(),
            clock.clone(),
            config.backend_url.is_some(),
        )
        .await?;
        // A guard raised earlier (restored lane) holds until acknowledged.
        // When the automatic day closing runs next, for the status report.
        let (next_closing, next_closing_rx) = watch::channel(None);
        let lane = Lane {
            store: store.clone(),
            clock: clock.clone(),
            ceiling: ceiling.clone(),
            // A guard raised earlier (restored lane) holds until acknowledged.
            numbers: Numbers::new(store.restore_guard().await?, config.backend_url.is_some()),
            metrics: Arc::new(crate::lane::metrics::Metrics::new()),
            closing: ClosingSchedule {
                at: config.close_day_at,
                next: next_closing_rx,
            },
        };
        let (stop_drain, drain_stop_rx) = watch::channel(false);
        let drain = match client {
            Some(client) => Some(drain::spawn(
                lane.clone(),
                client,
                config.drain.clone(),
                drain_stop_rx,
            )),
            None => {
                tracing::warn!("no backend_url configured: sales are stored but not delivered");
                None
            }
        };
        let access = Access::new(
            config.api_token.clone(),
            admin_token(&config.data_dir)?,
            addr,
            &config.allowed_hosts,
        );
        let state = AppState::new(
            lane,
            access,
            drain.as_ref().map(|d| d.0.clone()),
            config.locale,
        );
        let (stop_ceiling, ceiling_stop_rx) = watch::channel(false);
        let ceiling_task = ceiling.spawn(store.clone(), ceiling_stop_rx);
        let closer = config.close_day_at.map(|at| {
            let (stop, rx) = watch::channel(false);
            let task = crate::lane::closer::spawn(
                store.clone(),
                clock.clone(),
                at,
                config.ceiling.time_zone.clone(),
                drain.as_ref().map(|d| d.0.clone()),
                next_closing,
                rx,
            );
            (stop, task)
        });
        Ok(Daemon {
            store,
            listener,
            addr,
            state,
            _lock: lock,
            drain,
            ceiling,
            ceiling_task,
            stop_drain,
            stop_ceiling,
            closer,
            clock,
            limits: config.connections,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store, for tests and embedding.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The drain, when a back-end is configured.
    pub fn drain(&self) -> Option<&DrainHandle> {
        self.drain.as_ref().map(|d| &d.0)
    }

    /// The sync ceiling.
    pub fn ceiling(&self) -> &Ceiling {
        &self.ceiling
    }

    /// Serves until `shutdown` resolves, then finishes requests in flight
    /// (for at most [`SHUTDOWN_GRACE`]), lets the writer commit what it holds,
    /// and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        // Pings the watchdog only after a round trip through the writer
        // thread, so a wedged writer gets us restarted.
        let store = self.store.clone();
        let served = crate::common::service::run(
            self.listener,
            api::router(self.state),
            self.limits,
            self.clock.clone(),
            move || {
                let store = store.clone();
                async move { store.ping().await }
            },
            Some(SHUTDOWN_GRACE),
            shutdown,
        )
        .await;
        tracing::info!("no longer accepting requests; stopping the drain and closing the store");
        if let Some((stop, task)) = self.closer {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let _ = self.stop_drain.send(true);
        if let Some((_, task)) = self.drain {
            let _ = task.await;
        }
        // The last checkpoint of the offline clock, after the drain's last
        // exchange.
        let _ = self.stop_ceiling.send(true);
        let _ = self.ceiling_task.await;
        self.store.close().await;
        drop(self._lock);
        served.map_err(DaemonError::Serve)
    }
}

/// How long shutdown waits for requests in flight before closing anyway.
/// Well inside systemd's default stop timeout of 90 s.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
