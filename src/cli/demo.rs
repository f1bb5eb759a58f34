//! `laned demo`: a lane with an embedded salemap back-end on SQLite, on
//! this machine, needing nothing else. The quick start of the README.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use laned::common::clock::{Clock, SystemClock};
use laned::common::secret::Secret;
use laned::common::telemetry::LogFormat;
use laned::lane::config::Config;
use laned::lane::daemon::Daemon;
use laned::salemap::{self, Lanes};
use tokio::sync::watch;

/// Options of `laned demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The demo lane's id.
    #[arg(long, default_value = "L01")]
    lane_id: String,
    /// Where the lane's and the back-end's databases live.
    #[arg(long, default_value = "./laned-demo", value_name = "DIR")]
    data_dir: PathBuf,
    /// Till API listen address.
    #[arg(long, default_value = "127.0.0.1:7410", value_name = "ADDR")]
    listen: SocketAddr,
    /// Log filter.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
}

/// A sale to try the API with, written next to the data.
const EXAMPLE_SALE: &str = r#"{"kind": "sale", "references": null, "business_date": "2026-11-22",
 "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
 "lines": [{"sku": "4006381333931", "name": "Milk 1L", "quantity": "2",
            "unit_price": 12500, "discount": 0, "tax_code": "A", "amount": 25000}],
 "payments": [{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a",
               "method": "cash", "amount": 30000}],
 "total": 25000, "change": 5000,
 "till": {"invoice_no": "000123", "register": "R3"}, "extra": {}}
"#;

pub fn run(args: Args) -> anyhow::Result<()> {
    laned::common::telemetry::init(LogFormat::Text, &args.log_level);
    let mut config = Config::defaults(&args.lane_id, &args.data_dir.join("lane"))?;
    config.listen = args.listen;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let example = args.data_dir.join("example-sale.json");
    std::fs::write(&example, EXAMPLE_SALE)
        .with_context(|| format!("cannot write {}", example.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("laned-demo")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        // A fresh random token per run: the lane and its back-end share it
        // in memory only.
        let token: String = (0..2)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        let sm_config = salemap::Config {
            listen: "127.0.0.1:0".parse().context("loopback address")?,
            database: salemap::Database::Sqlite(args.data_dir.join("salemap").join("salemap.db")),
            lanes: Lanes::single(&config.lane_id, &token),
            tenant: salemap::DEFAULT_TENANT.into(),
            connections: salemap::Config::default_connections(),
        };
        let backend = salemap::Server::start(&sm_config, clock.clone()).await?;
        let backend_url = format!("http://{}", backend.addr());
        config.backend_url = Some(backend_url.clone());
        config.drain.backend_token = Some(Secret::new(token));
        let daemon = Daemon::start(&config, clock).await?;
        let addr = daemon.addr();
        let shutdown = laned::common::shutdown::signal();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "laned: listening on http://{addr}");
        let _ = writeln!(
            out,
            "\nlaned demo: lane {} delivering to an embedded salemap back-end at {backend_url}\n\
             data in {}\n\n\
             status:  curl -s http://{addr}/v1/status\n\
             a sale:  ID=$(cat /proc/sys/kernel/random/uuid)\n\
             \x20        curl -s -X PUT http://{addr}/v1/sales/$ID \\\n\
             \x20          -H 'Content-Type: application/json' -d @{}\n\
             list:    curl -s http://{addr}/v1/sales\n\n\
             Ctrl-C stops both.",
            config.lane_id,
            args.data_dir.display(),
            example.display(),
        );
        let _ = out.flush();
        drop(out);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let backend_task = tokio::spawn(backend.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        // The lane stops first (its drain may be mid-exchange), then the
        // back-end.
        let lane = daemon.run(shutdown).await;
        let _ = stop_tx.send(true);
        let backend = backend_task.await.context("the back-end task failed")?;
        lane?;
        backend?;
        tracing::info!("demo stopped");
        anyhow::Ok(())
    })
}
