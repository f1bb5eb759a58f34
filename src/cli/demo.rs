//! `laned demo`: a lane with an embedded salemap back-end ("head office")
//! on SQLite, on this machine, needing nothing else. The quick start of the
//! README, and the first hour: its printout gives the exact commands that
//! work on its data, a sale head office refuses (a stuck sale), and Enter
//! stops and starts head office so the sync ceiling can be watched.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use laned::common::clock::{Clock, SystemClock};
use laned::common::duration::Interval;
use laned::common::secret::Secret;
use laned::common::telemetry::LogFormat;
use laned::lane::config::Config;
use laned::lane::daemon::Daemon;
use laned::salemap::{self, Lanes};
use tokio::sync::{mpsc, watch};

/// Options of `laned demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cargo run --release -- demo --sync-ceiling 5m")]
pub struct Args {
    /// The demo lane's id.
    #[arg(long, default_value = "L01")]
    lane_id: String,
    /// Where the lane's and head office's databases live.
    #[arg(long, default_value = "./laned-demo", value_name = "DIR")]
    data_dir: PathBuf,
    /// Till API listen address.
    #[arg(long, default_value = "127.0.0.1:7410", value_name = "ADDR")]
    listen: SocketAddr,
    /// Log filter.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
    /// The sync ceiling, short enough to watch it count down.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    sync_ceiling: Interval,
    /// A SKU head office refuses (422 unknown_sku): ring refused-sale.json
    /// to see a stuck sale.
    #[arg(long, default_value = "NOT-IN-CATALOGUE", value_name = "SKU")]
    refuse_sku: String,
}

/// A sale to try the API with, written next to the data.
fn example_sale(sku: &str, name: &str) -> String {
    format!(
        r#"{{"kind": "sale", "references": null, "business_date": "2026-11-22",
 "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
 "lines": [{{"sku": "{sku}", "name": "{name}", "quantity": "2",
            "unit_price": 12500, "discount": 0, "tax_code": "A", "amount": 25000}}],
 "payments": [{{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a",
               "method": "cash", "amount": 30000}}],
 "total": 25000, "change": 5000,
 "till": {{"invoice_no": "000123", "register": "R3"}}, "extra": {{}}}}
"#
    )
}

/// What the demo writes and where.
struct Files {
    lane: PathBuf,
    salemap: PathBuf,
    token: PathBuf,
    example: PathBuf,
    refused: PathBuf,
}

impl Files {
    fn write(args: &Args, token: &str) -> anyhow::Result<Files> {
        let dir = &args.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let f = Files {
            lane: dir.join("lane"),
            salemap: dir.join("salemap"),
            token: dir.join("backend-token"),
            example: dir.join("example-sale.json"),
            refused: dir.join("refused-sale.json"),
        };
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        write(&f.example, &example_sale("4006381333931", "Milk 1L"))?;
        write(
            &f.refused,
            &example_sale(&args.refuse_sku, "Not in head office's catalogue"),
        )?;
        // The token head office and the lane share, for curl: owner-only.
        let _ = std::fs::remove_file(&f.token);
        laned::common::owner_only::create_file(&f.token)
            .and_then(|()| std::fs::write(&f.token, format!("{token}\n")))
            .with_context(|| format!("cannot write {}", f.token.display()))?;
        Ok(f)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    laned::common::telemetry::init(LogFormat::Text, &args.log_level);
    // A fresh random token per run.
    let token: String = (0..2)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let files = Files::write(&args, &token)?;
    let mut config = Config::defaults(&args.lane_id, &files.lane)?;
    config.listen = args.listen;
    let ceiling = args.sync_ceiling.0;
    config.ceiling.limits.sync_ceiling = Some(ceiling);
    config.ceiling.limits.warn_after = ceiling * 5 / 6;
    config.drain.heartbeat_interval = config.drain.heartbeat_interval.min(ceiling / 12);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("laned-demo")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let mut sm_config = salemap::Config {
            listen: "127.0.0.1:0".parse().context("loopback address")?,
            database: salemap::Database::Sqlite(files.salemap.join("salemap.db")),
            lanes: Lanes::single(&config.lane_id, &token),
            tenant: salemap::DEFAULT_TENANT.into(),
            connections: salemap::Config::default_connections(),
            refused_skus: vec![args.refuse_sku.clone()],
            lane_ceiling: salemap::office::DEFAULT_CEILING,
            admission: salemap::admission::Limits::with_in_flight(4),
            unsigned: false,
            signing_key: salemap::keys::KeySource::File(files.salemap.join("salemap.key")),
        };
        let backend = salemap::Server::start(&sm_config, clock.clone()).await?;
        // Head office comes back on the same address after Enter.
        sm_config.listen = backend.addr();
        let backend_url = format!("http://{}", backend.addr());
        config.backend_url = Some(backend_url.clone());
        config.drain.backend_token = Some(Secret::new(token));
        let daemon = Daemon::start(&config, clock.clone()).await?;
        let addr = daemon.addr();
        let shutdown = laned::common::shutdown::signal();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "laned: listening on http://{addr}");
        let _ = write!(
            out,
            "{}",
            printout(&args, &files, &config.lane_id, addr, &backend_url, ceiling)
        );
        let _ = out.flush();
        drop(out);
        let (stop_tx, stop_rx) = watch::channel(false);
        let toggles = enter_presses();
        let backend_task = tokio::spawn(head_office(backend, sm_config, clock, stop_rx, toggles));
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

/// One message per line read from the terminal (Enter); none when stdin
/// is not one or is closed.
fn enter_presses() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() || tx.blocking_send(()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs head office until the demo stops; each Enter stops or starts it
/// again on the same address.
async fn head_office(
    mut server: salemap::Server,
    config: salemap::Config,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    mut toggles: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    loop {
        let (pause_tx, pause_rx) = tokio::sync::oneshot::channel::<()>();
        let mut stop_run = stop.clone();
        let running = tokio::spawn(server.run(async move {
            tokio::select! {
                _ = stop_run.wait_for(|s| *s) => {}
                _ = pause_rx => {}
            }
        }));
        let paused = tokio::select! {
            _ = stop.wait_for(|s| *s) => false,
            Some(()) = toggles.recv() => true,
        };
        let _ = pause_tx.send(());
        running.await.context("head office's task failed")??;
        if !paused {
            return Ok(());
        }
        tracing::info!("demo: head office stopped");
        say(
            "laned demo: head office is STOPPED. Watch the status page count down to the \
             sync ceiling; press Enter to start head office again.",
        );
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            Some(()) = toggles.recv() => {}
        }
        server = salemap::Server::start(&config, clock.clone()).await?;
        tracing::info!("demo: head office started again");
        say("laned demo: head office is back; the lane delivers its backlog.");
    }
}

/// A line on stdout; a closed stdout is no reason to stop.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The first hour, printed once the lane listens.
fn printout(
    args: &Args,
    f: &Files,
    lane_id: &str,
    addr: SocketAddr,
    backend_url: &str,
    ceiling: Duration,
) -> String {
    // The binary as it was started (target/release/laned under cargo run).
    let exe = std::env::current_exe()
        .ok()
        .map(|p| {
            std::env::current_dir()
                .ok()
                .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| Path::new(".").join(r)))
                .unwrap_or(p)
        })
        .map_or_else(|| "laned".to_owned(), |p| p.display().to_string());
    let lane = f.lane.display();
    let ceiling = laned::lane::messages::Words::default().hours(ceiling);
    format!(
        "\nlaned demo: lane {lane_id}, delivering to head office (an embedded salemap on SQLite)\n\
         \x20 status page       http://{addr}/\n\
         \x20 lane's data       {lane}\n\
         \x20 head office       {backend_url} (its data in {sm}; its token in {token})\n\
         \n\
         Ring a sale (201 and a receipt number; \"state\" is \"pending\", \"posted\" a moment later):\n\
         \x20 ID=$(cat /proc/sys/kernel/random/uuid)\n\
         \x20 curl -s -X PUT http://{addr}/v1/sales/$ID -H 'Content-Type: application/json' -d @{example}\n\
         Send the same again: 200, the same receipt, no second sale.\n\
         \n\
         A stuck sale: ring {refused} the same way (a new ID). Head office refuses its SKU\n\
         ({sku}, 422 unknown_sku); the page shows it, and support settles it:\n\
         \x20 {exe} sales list --state stuck --data-dir {lane}\n\
         \x20 {exe} resolve $ID --doc-no BO-1 --reason \"posted by hand\" --data-dir {lane}\n\
         \n\
         Support's view, while the lane runs or after it stops:\n\
         \x20 {exe} status --data-dir {lane}\n\
         \x20 {exe} sales list --data-dir {lane}\n\
         \x20 {exe} export --state all --data-dir {lane} -o sales.ndjson\n\
         Head office's view: curl -s -H \"Authorization: Bearer $(cat {token})\" {backend_url}/v1/lanes/{lane_id}/days/2026-11-22\n\
         \n\
         The sync ceiling is {ceiling} here (24 h by default): press Enter to stop head office and\n\
         watch the page count down; press Enter again to bring it back.\n\
         salemap runs inside this process; as a server of its own: cargo build --release (target/release/salemap).\n\
         Ctrl-C stops both.\n",
        sm = f.salemap.display(),
        token = f.token.display(),
        example = f.example.display(),
        refused = f.refused.display(),
        sku = args.refuse_sku,
    )
}
