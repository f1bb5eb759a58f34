//! `laned serve`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use laned::common::clock::SystemClock;
use laned::lane::config::{Config, ConfigArgs};
use laned::lane::daemon::Daemon;

/// Options of `laned serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config, |k| std::env::var(k).ok())?;
    laned::common::telemetry::init(config.log_format, &config.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("laned")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let daemon = Daemon::start(&config, Arc::new(SystemClock::new())).await?;
        tracing::info!(
            addr = %daemon.addr(),
            lane = %config.lane_id,
            series = %config.series,
            db = %daemon.store().path().display(),
            version = env!("CARGO_PKG_VERSION"),
            "laned ready"
        );
        // Listen for SIGHUP before announcing readiness: until a handler is
        // installed, SIGHUP's default action would end the daemon.
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        // Signal handlers first: a SIGTERM right after readiness must be a
        // clean shutdown.
        let shutdown = laned::common::shutdown::signal();
        // The readiness line on stdout: scripts and tests wait for it
        // (logs go to stderr).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "laned: listening on http://{}", daemon.addr());
        let _ = out.flush();
        drop(out);
        // The database is open and migrated and the listener bound.
        laned::common::service::ready(&format!(
            "lane {} listening on {}",
            config.lane_id,
            daemon.addr()
        ));
        #[cfg(unix)]
        match hup {
            Ok(hup) => {
                tokio::spawn(reload_on_sighup(
                    hup,
                    args.config.clone(),
                    daemon.drain().cloned(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; configuration reload is unavailable"),
        }
        daemon.run(shutdown).await?;
        tracing::info!("laned stopped");
        anyhow::Ok(())
    })
}

/// On SIGHUP, reads the configuration again and hands the drain the
/// back-end token it names (the one setting that changes without a
/// restart: fixing a rejected token must not cost a restart).
#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    args: ConfigArgs,
    drain: Option<laned::lane::drain::DrainHandle>,
) {
    while hup.recv().await.is_some() {
        laned::common::service::reloading();
        match Config::load(&args, |k| std::env::var(k).ok()) {
            Ok(c) => {
                if let Some(drain) = &drain {
                    drain.set_token(c.drain.backend_token);
                }
                tracing::info!(
                    "SIGHUP: configuration re-read; back-end token reloaded (other settings need a restart)"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the configuration is not valid; keeping the running one")
            }
        }
        laned::common::service::ready("configuration reloaded");
    }
}
