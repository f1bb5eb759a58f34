//! Connections that hold a server without finishing anything, while the
//! tills sell and the lane delivers: waves of thousands of idle
//! connections at both servers, heads sent a byte at a time, and bodies
//! that stop arriving. Both servers must stay within their connection
//! limits, close what does not finish, answer stalled bodies `408`, and
//! lose nothing.

use std::time::{Duration, Instant};

use laned::salemap::Database;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Rig, Setup, Tills, any_batch, common, drained, judge, scale, tills};

/// The lane's and salemap's connection limits in this attack.
const LANE_LIMIT: usize = 128;
const SALEMAP_LIMIT: usize = 512;

/// File descriptors this test process may still open (Linux: from
/// `/proc/self/limits`; elsewhere a modest guess).
fn fd_budget() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(1024)
}

/// Open file descriptors of a process (its sockets among them).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// How a server treated one attacking connection.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    opened: u64,
    /// Closed before the header-read timeout could have run out (over the
    /// connection limit).
    closed_at_once: u64,
    /// Closed by the server later (the header-read timeout).
    closed_later: u64,
    /// Bodies that stopped arriving, answered `408`.
    answered_408: u64,
    /// Idle connections still open on the attacker's side after the safety
    /// net: handshakes the server's listen queue dropped (never accepted).
    unseen: u64,
    /// Anything else: a slow head or stalled body the server never
    /// closed, another answer.
    wrong: u64,
}

/// The first few wrong ones, described.
static WRONG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn wrong(t: &mut Tally, what: String) {
    t.wrong += 1;
    let mut w = WRONG.lock().unwrap_or_else(|e| e.into_inner());
    if w.len() < 200 {
        w.push(what);
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.opened += o.opened;
        self.closed_at_once += o.closed_at_once;
        self.closed_later += o.closed_later;
        self.answered_408 += o.answered_408;
        self.unseen += o.unseen;
        self.wrong += o.wrong;
    }
}

/// What one attacking connection does.
#[derive(Clone, Copy)]
enum Hold {
    /// Connects and sends nothing.
    Idle,
    /// Sends a request head a byte every half second.
    TrickleHead,
    /// Sends a complete head announcing a body, a few bytes of it, and
    /// then nothing.
    StallBody,
}

/// One attacking connection, held until the server closes it (half a
/// minute, fifteen header-read timeouts, is the safety net).
async fn hold(
    addr: std::net::SocketAddr,
    how: Hold,
    path: &'static str,
    started: tokio::sync::mpsc::Sender<()>,
) -> Tally {
    let mut t = Tally::default();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        // Refused outright: as good as closed at once.
        t.closed_at_once += 1;
        let _ = started.send(()).await;
        return t;
    };
    if matches!(how, Hold::Idle) {
        let _ = started.send(()).await;
    }
    t.opened += 1;
    let began = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // With salemap's lane token, so that only the body is in question.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: 4000\r\n\r\n",
        crate::TOKEN
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        match how {
            Hold::Idle => {}
            Hold::StallBody => {
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(b"{\"lines\": [").await;
                let _ = started.send(()).await;
            }
            Hold::TrickleHead => {
                for (i, b) in head.bytes().enumerate() {
                    if s.write_all(&[b]).await.is_err() {
                        break;
                    }
                    if i == 0 {
                        let _ = started.send(()).await;
                    }
                    // The attack itself: a byte every half second.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        r = s.read(&mut buf) => {
                            if let Ok(n) = r { got.extend_from_slice(&buf[..n]); }
                            return;
                        }
                    }
                }
            }
        }
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&got);
    let took = began.elapsed();
    let kind = match how {
        Hold::Idle => "idle",
        Hold::TrickleHead => "trickling head",
        Hold::StallBody => "stalled body",
    };
    let first: String = answer.chars().take(80).collect();
    match (ended.is_ok(), how) {
        // An idle connection of a burst the server's kernel could not
        // queue: the handshake completed (SYN cookies) but the server never
        // accepted it, so it holds nothing; the attacker alone sees it open.
        // (A server that accepted and kept it would hold a descriptor for
        // it, which the descriptor check counts.)
        (false, Hold::Idle) => t.unseen += 1,
        (false, _) => wrong(&mut t, format!("{addr} {kind}: still open after {took:?}")),
        (true, Hold::StallBody) if answer.starts_with("HTTP/1.1 408") => t.answered_408 += 1,
        (true, Hold::StallBody) if answer.is_empty() && took < Duration::from_secs(1) => {
            t.closed_at_once += 1;
        }
        (true, _) if !answer.is_empty() => {
            wrong(
                &mut t,
                format!("{addr} {kind}: answered {first:?} after {took:?}"),
            );
        }
        (true, Hold::StallBody) => wrong(&mut t, format!("{addr} {kind}: closed after {took:?}")),
        (true, _) if took < Duration::from_secs(1) => t.closed_at_once += 1,
        (true, _) => t.closed_later += 1,
    }
    t
}

/// A wave: `idle` idle connections, and a few trickling heads and stalled
/// bodies, at `addr`; returns when the server has closed every one.
async fn wave(addr: std::net::SocketAddr, idle: usize, path: &'static str) -> Tally {
    // The slow heads and stalled bodies first, well within the limit; the
    // flood of idle connections once they have begun.
    let (started, mut begun) = tokio::sync::mpsc::channel(256);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let how = if i < 20 {
            Hold::TrickleHead
        } else {
            Hold::StallBody
        };
        tasks.push(tokio::spawn(hold(addr, how, path, started.clone())));
    }
    for _ in 0..40 {
        begun.recv().await;
    }
    // In bursts no bigger than a listen queue (a burst beyond it leaves
    // the attacker with handshakes the server's kernel dropped: "open" on
    // the attacker's side only, for a minute or more, which would say
    // nothing about the server).
    for chunk in (0..idle).collect::<Vec<_>>().chunks(256) {
        for _ in chunk {
            tasks.push(tokio::spawn(hold(addr, Hold::Idle, path, started.clone())));
        }
        for _ in chunk {
            begun.recv().await;
        }
    }
    drop(started);
    let mut total = Tally::default();
    for t in tasks {
        total += t.await.expect("attacker");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_hold_nothing_and_lose_nothing() {
    let seed = common::seed("slow_and_idle_connections");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    let lane_dir = dir.path().join("lane");
    let batch = any_batch(&mut rng);
    // The limits by environment, which an older build (without them)
    // ignores: the attack then shows what it finds there.
    let salemap_env = [
        ("SALEMAP_MAX_CONNECTIONS", SALEMAP_LIMIT.to_string()),
        ("SALEMAP_HEADER_READ_TIMEOUT", "2s".to_owned()),
    ];
    let laned_env = [
        ("LANED_MAX_CONNECTIONS", LANE_LIMIT.to_string()),
        ("LANED_HEADER_READ_TIMEOUT", "2s".to_owned()),
    ];
    let Rig {
        mut backend,
        proxy,
        mut lane,
        lane_port,
        backend_port,
        base,
    } = Rig::start(
        dir.path(),
        &db,
        &lane_dir,
        seed,
        batch,
        Setup {
            salemap_env: &salemap_env,
            laned_env: &laned_env,
            ..Setup::default()
        },
    )
    .await;
    let ledger = tills::Shared::default();
    let tills = Tills::start(0..2 + 2 * scale, &base, seed, &ledger, &[]);
    proxy.set_rate(0.05);

    // Thousands of connections at each server at once, as many as this
    // process may open (two servers, a margin for the rest).
    let idle = (fd_budget().saturating_sub(600) / 2).clamp(100, 3000);
    let (done, done_rx) = tokio::sync::watch::channel(false);
    let lane_addr = std::net::SocketAddr::from(([127, 0, 0, 1], lane_port));
    let backend_addr = std::net::SocketAddr::from(([127, 0, 0, 1], backend_port));
    let (mut at_lane, mut at_salemap) = (Tally::default(), Tally::default());
    let began = Instant::now();
    let lane_watch = tokio::spawn({
        let pid = lane.pid();
        let rx = done_rx.clone();
        async move { peak_of(pid, rx).await }
    });
    let salemap_watch = tokio::spawn({
        let pid = backend.pid();
        let rx = done_rx.clone();
        async move { peak_of(pid, rx).await }
    });
    for _ in 0..2 * scale {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1000))).await;
        let (l, s) = tokio::join!(
            wave(lane_addr, idle, "/v1/sales"),
            wave(backend_addr, idle, "/v1/sales:batch")
        );
        at_lane += l;
        at_salemap += s;
    }
    let attacked = began.elapsed();
    let _ = done.send(true);
    let lane_peak = lane_watch.await.expect("watch");
    let salemap_peak = salemap_watch.await.expect("watch");
    // The tills go on a little after the attack, then stop.
    tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
    proxy.set_rate(0.0);
    tills.finish().await;
    let drain = drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();

    for (who, port, t, peak, limit) in [
        ("laned", lane_port, at_lane, lane_peak, LANE_LIMIT),
        (
            "salemap",
            backend_port,
            at_salemap,
            salemap_peak,
            SALEMAP_LIMIT,
        ),
    ] {
        assert_eq!(
            t.wrong,
            0,
            "seed {seed}: {who}: {t:?}\n{}",
            WRONG
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|w| w.starts_with(&format!("127.0.0.1:{port} ")))
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(
            t.answered_408,
            40 * u64::from(scale),
            "seed {seed}: {who}: every stalled body is answered 408: {t:?}"
        );
        // Its database, log and listening sockets, and the tills' and
        // lane's own connections, besides the attackers' within the limit.
        assert!(
            peak <= limit + 64,
            "seed {seed}: {who} held {peak} descriptors, over its limit of {limit} connections"
        );
    }
    let title = format!(
        "slow and idle connections, seed {seed}, scale {scale}, batches of up to {batch}\n  \
         attacked for {attacked:.1?}: waves of {idle} idle connections, 20 trickling heads and \
         20 stalled bodies at each server\n  \
         laned (limit {LANE_LIMIT}): {at_lane:?}, at most {lane_peak} descriptors open\n  \
         salemap (limit {SALEMAP_LIMIT}): {at_salemap:?}, at most {salemap_peak} descriptors open\n  \
         backlog drained {drain:.1?} after the faults stopped; faults by kind: {:?}",
        proxy.counts()
    );
    let logs = [("laned", lane.logs()), ("salemap", backend.logs())];
    judge(&title, ledger.take(), &lane_dir, &db, &logs, None).await;
}

/// The most descriptors `pid` held until `done` (sampled every 100 ms: a
/// measurement, not a synchronisation).
async fn peak_of(pid: Option<u32>, done: tokio::sync::watch::Receiver<bool>) -> usize {
    let Some(pid) = pid else { return 0 };
    let mut peak = 0;
    while !*done.borrow() {
        peak = peak.max(open_fds(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}
