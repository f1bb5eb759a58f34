//! salemap benchmark (issue 5): a lane draining a backlog into salemap, on
//! SQLite and on PostgreSQL, next to salemap's own batched ingest rate
//! measured in the same run. `cargo bench -- salemap`; under
//! `cargo test` it runs a few hundred sales only. PostgreSQL is started
//! from the machine's server binaries; without them that half is skipped
//! (unless `LANED_REQUIRE_PG=1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pg;
use crate::support::{backlog, config};
use laned::common::clock::SystemClock;
use laned::lane::daemon::Daemon;
use laned::salemap::{Config, DEFAULT_TENANT, Database, Lanes, Server, Store};
use uuid::Uuid;

const TOKEN: &str = "bench";

/// Makes the `k`-th fresh database of a store, with a directory for the
/// lane (and the SQLite file).
type MakeDb<'a> = Box<dyn Fn(usize) -> (Database, tempfile::TempDir) + 'a>;
const BATCH: usize = 100;

struct Running {
    url: String,
    store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), laned::salemap::SalemapError>>,
}

async fn salemap(db: Database, unsigned: bool) -> Running {
    let admission = laned::salemap::admission::Limits::for_database(&db);
    let cfg = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: db,
        lanes: Lanes::single("BENCH", TOKEN),
        tenant: DEFAULT_TENANT.into(),
        connections: laned::salemap::Config::default_connections(),
        refused_skus: vec![],
        lane_ceiling: laned::salemap::office::DEFAULT_CEILING,
        admission,
        unsigned,
        signing_key: laned::salemap::keys::KeySource::Key(Box::new(
            laned::contract::ack::Signing::from_seed(&[42; 32]),
        )),
    };
    let server = Server::start(&cfg, Arc::new(SystemClock::new()))
        .await
        .expect("salemap starts");
    let url = format!("http://{}", server.addr());
    let store = server.store().clone();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        url,
        store,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("stop");
    }
}

/// salemap's own rate: `n` sales in prepared batches of 100 over HTTP,
/// from `clients` concurrent clients (each its own receipt series).
async fn ingest(db: Database, n: usize, clients: usize) -> Duration {
    let sm = salemap(db, false).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let per = n / clients;
    let bodies: Vec<Vec<String>> = (0..clients)
        .map(|c| {
            (0..per)
                .collect::<Vec<_>>()
                .chunks(BATCH)
                .map(|chunk| {
                    let sales: Vec<String> = chunk
                        .iter()
                        .map(|&i| {
                            let id = Uuid::new_v4();
                            let (sale, _) = crate::support::sale(i, id);
                            format!(
                                "{{\"transaction_id\":\"{id}\",\"lane_id\":\"BENCH\",\"series\":\"S{c}\",\
                                 \"receipt_no\":{},\"lane_seq\":{},\"recorded_at\":\"2026-11-22T11:03:11.482Z\",\
                                 \"sale\":{sale}}}",
                                i + 1,
                                i + 1
                            )
                        })
                        .collect();
                    format!("{{\"lane_id\":\"BENCH\",\"sales\":[{}]}}", sales.join(","))
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|batches| {
            let (http, url) = (http.clone(), sm.url.clone());
            tokio::spawn(async move {
                for b in batches {
                    let r = http
                        .post(format!("{url}/v1/sales:batch"))
                        .bearer_auth(TOKEN)
                        .header("Content-Type", "application/json")
                        .body(b)
                        .send()
                        .await
                        .expect("batch");
                    assert_eq!(r.status(), 200);
                    let v: serde_json::Value = r.json().await.expect("JSON");
                    assert!(
                        v["results"]
                            .as_array()
                            .expect("results")
                            .iter()
                            .all(|x| x["status"] == 201)
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let took = start.elapsed();
    sm.stop().await;
    took
}

/// A lane with a backlog of `n` sales drains into salemap; timed from the
/// lane's start until salemap holds the last receipt number.
async fn drain(dir: &std::path::Path, db: Database, n: usize, unsigned: bool) -> Duration {
    backlog(dir, n).await;
    let sm = salemap(db, unsigned).await;
    let start = Instant::now();
    let d = Daemon::start(
        &config(dir, Some(sm.url.clone()), BATCH),
        Arc::new(SystemClock::new()),
    )
    .await
    .expect("start lane");
    let mut rounds = d.drain().expect("a drain").rounds();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.run(async {
        let _ = stopped.await;
    }));
    // Lane order: the last receipt number at salemap means every sale.
    loop {
        let last = sm
            .store
            .last_receipt_no(DEFAULT_TENANT.into(), "BENCH".into())
            .await
            .expect("read");
        if last.get("BENCH").copied() == Some(n as i64) {
            break;
        }
        rounds.changed().await.expect("the drain runs");
    }
    let took = start.elapsed();
    let _ = stop.send(());
    run.await.expect("join").expect("stop");
    sm.stop().await;
    took
}

pub fn main(full: bool) {
    // LANED_BENCH_SALES overrides the size (for profiling).
    let n = std::env::var("LANED_BENCH_SALES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 400 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base: std::path::PathBuf = std::env::var_os("LANED_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    // Durable like production: the comparison with SQLite (synchronous=FULL)
    // must be fair. LANED_BENCH_PG_NO_FSYNC=1 turns it off, to see what
    // fsync costs.
    if std::env::var_os("LANED_BENCH_PG_NO_FSYNC").is_none() {
        pg::durable();
    }
    // LANED_BENCH_STORES=sqlite (or postgres) measures that store alone.
    let only = std::env::var("LANED_BENCH_STORES").unwrap_or_default();
    let only_sqlite = only == "sqlite";
    let only_pg = only == "postgres";
    // LANED_BENCH_ROUNDS=k drains with and without signatures k times
    // each, alternating which goes first (the machine's swing from run to
    // run is larger than the difference), and reports the medians.
    let rounds: usize = std::env::var("LANED_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|k| *k > 0)
        .unwrap_or(1);
    let fresh = 2 + 2 * rounds;
    let pg = rt.block_on(async {
        if only_sqlite {
            return None;
        }
        let mut dbs = vec![];
        for _ in 0..fresh {
            match pg::database().await {
                Some(d) => dbs.push(d),
                None => return None,
            }
        }
        Some(dbs)
    });
    println!("| {n} sales, batches of {BATCH} | store | seconds | sales/s |");
    println!("|---|---|---:|---:|");
    let mut stores: Vec<(&str, MakeDb<'_>)> = vec![];
    if !only_pg {
        stores.push((
            "SQLite",
            Box::new(|_| {
                let dir = tempfile::tempdir_in(&base).expect("temp dir");
                (Database::Sqlite(dir.path().join("salemap.db")), dir)
            }),
        ));
    }
    if let Some(dbs) = &pg {
        let urls: Vec<String> = dbs.iter().map(|d| d.url.clone()).collect();
        let base = base.clone();
        stores.push((
            "PostgreSQL",
            Box::new(move |k| {
                let dir = tempfile::tempdir_in(&base).expect("temp dir");
                (
                    Database::Postgres {
                        url: urls[k].clone(),
                        lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
                    },
                    dir,
                )
            }),
        ));
    }
    let rate = |took: Duration| n as f64 / took.as_secs_f64();
    for (name, make) in &stores {
        let row = |what: &str, took: Duration| {
            println!(
                "| {what} | {name} | {:.1} | {:.0} |",
                took.as_secs_f64(),
                rate(took)
            );
        };
        let (own1_db, _d1) = make(0);
        let own1 = rt.block_on(ingest(own1_db.clone(), n, 1));
        row("salemap's own ingest, 1 client", own1);
        let (db, _d2) = make(1);
        let own4 = rt.block_on(ingest(db.clone(), n, 4));
        row("salemap's own ingest, 4 clients", own4);
        // Each drain starts on a quiet server: what autovacuum would do
        // later for the databases used so far is done now, and a
        // checkpoint taken (none falls due within a drain then), so that
        // neither drain of a pair pays for the work of another.
        rt.block_on(settle(&own1_db));
        rt.block_on(settle(&db));
        // The same drain into a back-end that signs and into one that
        // does not: what the signatures (salemap's, and the lane's checks)
        // cost the drain.
        let mut signed = vec![];
        let mut unsigned = vec![];
        for r in 0..rounds {
            let order = if r % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for without in order {
                let (db, lane_dir) = make(2 + 2 * r + usize::from(without));
                let took = rt.block_on(drain(lane_dir.path(), db.clone(), n, without));
                rt.block_on(settle(&db));
                if without {
                    row("lane drain, back-end not signing", took);
                    unsigned.push(took);
                } else {
                    row("lane drain into salemap", took);
                    signed.push(took);
                }
            }
        }
        let (signed, unsigned) = (median(&mut signed), median(&mut unsigned));
        if rounds > 1 {
            row(
                &format!("lane drain into salemap, median of {rounds}"),
                signed,
            );
            row(
                &format!("lane drain, back-end not signing, median of {rounds}"),
                unsigned,
            );
        }
        println!(
            "| drain / own ingest (1 client) | {name} | | {:.0}% |",
            100.0 * own1.as_secs_f64() / signed.as_secs_f64()
        );
        println!(
            "| signatures' cost to the drain rate | {name} | | {:.1}% |",
            100.0 * (1.0 - rate(signed) / rate(unsigned))
        );
    }
    drop(pg);
}

/// On PostgreSQL, vacuums the database a run used and takes a checkpoint
/// (SQLite: nothing to do).
async fn settle(db: &Database) {
    let Database::Postgres { url, .. } = db else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to settle");
    let task = tokio::spawn(conn);
    // Each on its own: VACUUM cannot run in the transaction block that a
    // multi-statement string makes.
    for sql in ["VACUUM", "CHECKPOINT"] {
        client.batch_execute(sql).await.expect(sql);
    }
    drop(client);
    let _ = task.await;
}

/// The median of some timings (the lower middle of an even count).
fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}
