//! The shutdown signal shared by the binaries.

use std::future::Future;

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM, and logs which. The
/// handlers are installed when this is called (inside the runtime), not
/// when the future is first polled: call it before telling anyone (systemd's
/// `READY=1`, the readiness line) that the service is up, so a SIGTERM
/// that follows at once is a clean shutdown and not the default death.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (int, term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let int = async move {
                match int {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async move {
                match term {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => tracing::info!("SIGINT received; shutting down"),
                () = term => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C received; shutting down");
        }
    }
}
