//! The `salemap` binary: the reference back-end (docs/backend-contract.md). Like `laned`'s
//! `src/cli/`, this is the edge: the only place that uses `anyhow` and
//! chooses exit codes.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use laned::common::clock::SystemClock;
use laned::common::duration::Interval;
use laned::common::telemetry::LogFormat;
use laned::salemap::keys::KeySource;
use laned::salemap::{Config, DEFAULT_TENANT, Database, Lanes, Server};

/// The allocator: one that gives memory freed after a reconnection storm
/// back to the system (glibc's malloc kept it in its arenas).
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// salemap: the reference back-end for laned (a posted sale map).
#[derive(Debug, Parser)]
#[command(name = "salemap", version = laned::VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the back-end contract over HTTP.
    Serve(ServeArgs),
    /// Print the SHA-256 of a token read from stdin, for the lane tokens file.
    HashToken,
    /// Check that a back-end keeps the contract; prints a table, exits 1 on a failure.
    Conformance(ConformanceArgs),
    /// Write a lane's audit bundle: its documents, acknowledgements, day
    /// certificates and the key, sealed (`laned verify --bundle` checks it).
    Audit(AuditArgs),
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ConformanceArgs {
    /// The back-end's base URL.
    #[arg(long, value_name = "URL")]
    url: String,
    /// A lane token the back-end accepts.
    #[arg(
        long,
        env = "SALEMAP_CONFORMANCE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// The lane that token belongs to.
    #[arg(long, value_name = "ID")]
    lane: String,
}

/// Where salemap's data is: the database, the signing key, the tenant.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Database: `sqlite:PATH` or `postgres://user:pass@host:port/db`
    /// [default: salemap.db in the data directory].
    #[arg(long, env = "SALEMAP_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// PostgreSQL: how long a duplicate waits for the request posting the
    /// same id before it is answered 409 in_flight [default: 5s].
    #[arg(long, env = "SALEMAP_LOCK_TIMEOUT", value_name = "DURATION")]
    lock_timeout: Option<Interval>,
    /// Data directory for the default database and signing key.
    #[arg(long, env = "SALEMAP_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The Ed25519 key that signs acknowledgements (64 hex digits), made
    /// there if missing [default: the credential signing-key, else
    /// salemap.key beside a SQLite database or in the data directory].
    #[arg(long, env = "SALEMAP_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Tenant the documents belong to.
    #[arg(long, env = "SALEMAP_TENANT", default_value = DEFAULT_TENANT)]
    tenant: String,
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The lane.
    #[arg(long, value_name = "ID")]
    lane: String,
    /// The first business day the bundle speaks for (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    from: String,
    /// The last business day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    to: String,
    /// The bundle file to write (it must not exist).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Listen address.
    #[arg(long, env = "SALEMAP_LISTEN", default_value = "127.0.0.1:7420")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Lane tokens file: `[lanes]` lane id = SHA-256 of its token, and
    /// `[office]` reader = SHA-256 of a head office reader's token.
    #[arg(long, env = "SALEMAP_LANE_TOKENS", value_name = "FILE")]
    lane_tokens: Option<PathBuf>,
    /// Accept any client for any lane, without a token. Local demos only.
    #[arg(long, conflicts_with = "lane_tokens")]
    allow_any_lane: bool,
    /// Refuse sales with this SKU (422 unknown_sku), to rehearse a stuck sale
    /// (repeat the flag for more).
    #[arg(long, value_name = "SKU")]
    refuse_sku: Vec<String>,
    /// The lanes' sync ceiling: a lane not heard from for longer is shown
    /// to head office as silent [default: 24h, the lane's own default].
    #[arg(long, env = "SALEMAP_LANE_CEILING", value_name = "DURATION")]
    lane_ceiling: Option<Interval>,
    /// Connections open at once; more are closed as they arrive [default: 4096].
    #[arg(long, env = "SALEMAP_MAX_CONNECTIONS", value_name = "N",
          default_value_t = laned::salemap::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Posting requests (sales, batches, closings, heartbeats) worked on at
    /// once; up to eight times as many more wait (at most --max-wait), and
    /// the rest are answered 429 busy with a spread Retry-After [default: 4
    /// on SQLite, 16 on PostgreSQL, the connection pool's size].
    #[arg(long, env = "SALEMAP_MAX_IN_FLIGHT", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_in_flight: Option<u64>,
    /// How long a posting request waits for a place before it is answered
    /// 429 busy [default: 5s].
    #[arg(long, env = "SALEMAP_MAX_WAIT", value_name = "DURATION")]
    max_wait: Option<Interval>,
    /// Time to send a complete request head; idle connections close after it too [default: 15s].
    #[arg(long, env = "SALEMAP_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    header_read_timeout: Option<Interval>,
    /// Log format.
    #[arg(long, env = "SALEMAP_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `laned=debug`.
    #[arg(long, env = "SALEMAP_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// Exit codes, documented in the README.
mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const CONFIG: u8 = 2;
}

/// A usage problem: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a),
        Command::HashToken => hash_token(),
        Command::Conformance(a) => conformance(a),
        Command::Audit(a) => audit(a),
        Command::GenerateAssets { dir } => {
            use clap::CommandFactory;
            laned::common::assets::write(Cli::command(), &dir).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("salemap: error: {e:#}");
            let usage = e.chain().any(|c| {
                c.is::<Usage>()
                    || c.is::<laned::salemap::tokens::TokensError>()
                    || matches!(
                        c.downcast_ref::<laned::salemap::store::StoreError>(),
                        Some(laned::salemap::store::StoreError::BadUrl(_))
                    )
            });
            ExitCode::from(if usage { exit::CONFIG } else { exit::FAILURE })
        }
    }
}

/// The back-end broke the contract: exit 1 after the table.
#[derive(Debug, thiserror::Error)]
#[error("the back-end does not keep the contract (see the table above)")]
struct NotConformant;

fn conformance(a: ConformanceArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = rt
        .block_on(laned::salemap::conformance::run(&a.url, &a.token, &a.lane))
        .map_err(|e| Usage(format!("{e}")))?;
    print!("{}", report.table());
    if report.passed() {
        Ok(())
    } else {
        Err(NotConformant.into())
    }
}

/// `salemap audit`: the lane's bundle, written beside and renamed into
/// place once sealed and on disk.
fn audit(a: AuditArgs) -> anyhow::Result<()> {
    if !laned::salemap::plain_id(&a.lane) {
        return Err(Usage(format!(
            "--lane {:?}: 1 to 32 letters, digits, '-' or '_'",
            a.lane
        ))
        .into());
    }
    for (flag, d) in [("--from", &a.from), ("--to", &a.to)] {
        if jiff::civil::Date::strptime("%Y-%m-%d", d).is_err() {
            return Err(Usage(format!("{flag} {d:?}: a date like 2026-11-22")).into());
        }
    }
    if a.from > a.to {
        return Err(Usage(format!("--from {} is after --to {}", a.from, a.to)).into());
    }
    if a.output.exists() {
        return Err(Usage(format!(
            "{} exists; the bundle is never written over a file",
            a.output.display()
        ))
        .into());
    }
    let database = database(&a.store)?;
    let source = signing_key(&a.store, &database)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = rt.block_on(async {
        let signing = source.load()?;
        let store = laned::salemap::open_store(&database).await?;
        laned::salemap::audit::write_file(
            &store,
            &signing,
            &laned::salemap::audit::Scope {
                tenant: a.store.tenant.clone(),
                lane_id: a.lane.clone(),
                from: a.from.clone(),
                to: a.to.clone(),
            },
            &a.output,
            jiff::Timestamp::now(),
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    println!(
        "{}: lane {}, {} documents, {} day certificates, sealed with key {}",
        a.output.display(),
        a.lane,
        summary.documents,
        summary.certificates,
        summary.key_id
    );
    Ok(())
}

fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin()
        .read_to_string(&mut token)
        .context("cannot read the token from stdin")?;
    let token = token.trim();
    if token.is_empty() {
        return Err(Usage("no token on stdin".into()).into());
    }
    println!("{}", laned::salemap::tokens::hash(token));
    Ok(())
}

/// The database URL systemd passed as a credential
/// (`LoadCredential=database-url:…`), when present and not empty: a
/// PostgreSQL URL may hold a password, which never goes in the environment.
fn database_credential() -> anyhow::Result<Option<String>> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = PathBuf::from(dir).join("database-url");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A credential systemd passed (`LoadCredential=NAME:…`), if present.
fn credential_path(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    Some(PathBuf::from(dir).join(name)).filter(|p| p.exists())
}

/// The data directory: `--data-dir`, systemd's `StateDirectory=`, or the
/// user's data directory; made owner-only.
fn data_dir(a: &StoreArgs) -> anyhow::Result<PathBuf> {
    // systemd's StateDirectory= when run as the packaged service.
    let state = std::env::var_os("STATE_DIRECTORY")
        .and_then(|s| {
            s.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .filter(|p| !p.as_os_str().is_empty());
    let dir = match a.data_dir.clone().or(state) {
        Some(d) => d,
        None => directories::ProjectDirs::from("", "", "salemap")
            .map(|d| d.data_local_dir().to_owned())
            .ok_or_else(|| Usage("no home directory; give --data-dir or --database".into()))?,
    };
    // salemap's own directory: owner-only, like laned's.
    if laned::common::owner_only::ensure_dir(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?
    {
        tracing::warn!(dir = %dir.display(), "data directory was readable by others; set it to 0700");
    }
    Ok(dir)
}

/// Where the signing key is (docs/backend-contract.md).
fn signing_key(a: &StoreArgs, db: &Database) -> anyhow::Result<KeySource> {
    if let Some(path) = &a.signing_key {
        return Ok(KeySource::File(path.clone()));
    }
    if let Some(path) = credential_path("signing-key") {
        return Ok(KeySource::Given(path));
    }
    let dir = match db {
        Database::Sqlite(path) if a.data_dir.is_none() => path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        _ => data_dir(a)?,
    };
    Ok(KeySource::File(dir.join("salemap.key")))
}

/// The admission limits: the database's defaults, or the flags'.
fn admission(a: &ServeArgs, db: &Database) -> laned::salemap::admission::Limits {
    let mut limits = match a.max_in_flight {
        Some(n) => laned::salemap::admission::Limits::with_in_flight(
            usize::try_from(n).unwrap_or(usize::MAX),
        ),
        None => laned::salemap::admission::Limits::for_database(db),
    };
    if let Some(w) = a.max_wait {
        limits.wait = w.0;
    }
    limits
}

fn database(a: &StoreArgs) -> anyhow::Result<Database> {
    let from_credential = match &a.database {
        Some(_) => None,
        None => database_credential()?,
    };
    match a.database.as_deref().or(from_credential.as_deref()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Database::Postgres {
                url: url.to_owned(),
                lock_timeout: a
                    .lock_timeout
                    .map_or(laned::salemap::DEFAULT_LOCK_TIMEOUT, |i| i.0),
            })
        }
        Some(url) => match url.strip_prefix("sqlite:") {
            Some(p) if !p.is_empty() => Ok(Database::Sqlite(PathBuf::from(p))),
            _ => Err(Usage(format!(
                "--database {url:?}: use sqlite:PATH or postgres://user:pass@host:port/db"
            ))
            .into()),
        },
        None => {
            let dir = data_dir(a)?;
            Ok(Database::Sqlite(dir.join("salemap.db")))
        }
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    laned::common::telemetry::init(a.log_format, &a.log_level);
    let lanes = match (&a.lane_tokens, a.allow_any_lane) {
        (Some(path), _) => Lanes::load(path)?,
        (None, true) => Lanes::AnyLane,
        (None, false) => {
            return Err(Usage(
                "give --lane-tokens FILE (lane id = SHA-256 of its token), or \
                 --allow-any-lane for a local demo"
                    .into(),
            )
            .into());
        }
    };
    if a.allow_any_lane && !a.listen.ip().is_loopback() {
        return Err(Usage(format!(
            "--allow-any-lane accepts anyone: it may only listen on a loopback address, not {}",
            a.listen
        ))
        .into());
    }
    if !laned::salemap::plain_id(&a.store.tenant) {
        return Err(Usage(format!(
            "--tenant {:?}: 1 to 32 letters, digits, '-' or '_'",
            a.store.tenant
        ))
        .into());
    }
    let database = database(&a.store)?;
    let config = Config {
        listen: a.listen,
        signing_key: signing_key(&a.store, &database)?,
        lanes,
        tenant: a.store.tenant.clone(),
        connections: laned::common::serve::Limits {
            max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: a
                .header_read_timeout
                .map_or(laned::salemap::DEFAULT_HEADER_READ_TIMEOUT, |i| i.0),
        },
        refused_skus: a.refuse_sku.clone(),
        lane_ceiling: a
            .lane_ceiling
            .map_or(laned::salemap::office::DEFAULT_CEILING, |i| i.0),
        admission: admission(&a, &database),
        database,
        unsigned: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("salemap")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = Server::start(&config, Arc::new(SystemClock::new())).await?;
        tracing::info!(addr = %server.addr(), db = %config.database, "salemap ready");
        let shutdown = laned::common::shutdown::signal();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "salemap: listening on http://{}", server.addr());
        let _ = out.flush();
        drop(out);
        laned::common::service::ready(&format!("listening on {}", server.addr()));
        server.run(shutdown).await?;
        tracing::info!("salemap stopped");
        anyhow::Ok(())
    })
}
