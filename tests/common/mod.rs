//! Shared test harness: a lane in-process on port 0, or the real binary.
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

use laned::common::clock::SystemClock;
use laned::common::secret::Secret;
use laned::lane::config::Config;
use laned::lane::daemon::Daemon;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// A valid sale: one line of `qty` × `price`, paid exactly in cash.
pub fn sale_with(sku: &str, qty: i64, price: i64) -> Value {
    let amount = qty * price;
    json!({
        "kind": "sale", "references": null, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
        "lines": [{"sku": sku, "name": "Milk 1L", "quantity": qty.to_string(), "unit_price": price,
                   "discount": 0, "tax_code": "A", "amount": amount}],
        "payments": [{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a", "method": "cash", "amount": amount + 500}],
        "total": amount, "change": 500,
        "till": {"invoice_no": "000123", "register": "R3"}, "extra": {}
    })
}

/// A valid sale of `lines` lines, each named with 256 four-byte characters,
/// and `pad` ASCII characters in `extra`: big, to the byte. 930 lines make
/// an envelope a few KiB under the contract's largest.
pub fn big_sale(lines: usize, pad: usize) -> Value {
    let name: String = std::iter::repeat_n('\u{1D11E}', 256).collect();
    let lines: Vec<Value> = (0..lines)
        .map(|i| {
            json!({"sku": format!("SKU{i:05}"), "name": name, "quantity": "1",
                   "unit_price": 100, "discount": 0, "tax_code": "A", "amount": 100})
        })
        .collect();
    let total = 100 * lines.len() as i64;
    json!({
        "kind": "sale", "references": null, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
        "lines": lines,
        "payments": [{"payment_id": Uuid::new_v4(), "method": "cash", "amount": total}],
        "total": total, "change": 0,
        "till": {"invoice_no": "000123", "register": "R3"},
        "extra": {"pad": "x".repeat(pad)}
    })
}

/// The example sale of docs/till-api.md (the sale document).
pub fn sale() -> Value {
    sale_with("4006381333931", 2, 12_500)
}

/// An HTTP client that never uses a proxy from the environment. Like any
/// till integration it has a timeout: a request that gets no answer fails
/// (once seen: a pooled request stalled for good while the daemon shut
/// down, and a test without a timeout hung instead of failing).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("build HTTP client")
}

/// A configuration for a test lane in `dir`, listening on an ephemeral port.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::defaults("L03", dir).expect("default config");
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.log_level = "warn".into();
    c
}

/// [`config`], delivering to the back-end at `url` (the scripted
/// [`backend::Backend`] or salemap) with the lane token `token`.
pub fn config_with_backend(dir: &Path, url: &str, token: &str) -> Config {
    let mut c = config(dir);
    c.backend_url = Some(url.to_owned());
    c.drain.backend_token = Some(secret(token));
    c
}

/// A lane running in this process (the `Daemon` seam on port 0).
pub struct Lane {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub drain: Option<laned::lane::drain::DrainHandle>,
    pub ceiling: laned::lane::guard::Ceiling,
    pub admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), laned::lane::daemon::DaemonError>>,
}

impl Lane {
    pub async fn start(dir: &Path) -> Lane {
        Self::start_with(config(dir)).await
    }

    pub async fn start_with(cfg: Config) -> Lane {
        Self::start_with_clock(cfg, Arc::new(SystemClock::new())).await
    }

    pub async fn start_with_clock(
        cfg: Config,
        clock: Arc<dyn laned::common::clock::Clock>,
    ) -> Lane {
        let daemon = start_daemon(&cfg, clock).await;
        let addr = daemon.addr();
        let drain = daemon.drain().cloned();
        let ceiling = daemon.ceiling().clone();
        let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin-token"))
            .expect("admin token file")
            .trim()
            .to_owned();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async {
            let _ = rx.await;
        }));
        Lane {
            base: format!("http://{addr}"),
            addr,
            http: client(),
            drain,
            ceiling,
            admin_token,
            stop: Some(stop),
            task,
        }
    }

    /// Waits, without sleeping, until `cond` holds: checks after each round
    /// the drain completes.
    pub async fn until<F, Fut>(&self, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut rounds = self.drain.as_ref().expect("lane has a drain").rounds();
        for _ in 0..10_000 {
            if cond().await {
                return;
            }
            // A safety net, not synchronisation: a drain that never
            // finishes another round fails the test instead of hanging CI.
            match tokio::time::timeout(std::time::Duration::from_secs(60), rounds.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        panic!("gave up waiting for: {what}");
    }

    /// Rings `n` different sales one after another, each answered 201;
    /// returns their ids in order.
    pub async fn ring(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = Uuid::new_v4().to_string();
            let (s, body) = self
                .put(&id, &sale_with(&format!("SKU{i}"), 1, 100 + i as i64))
                .await;
            assert_eq!(s, 201, "{body}");
            ids.push(id);
        }
        ids
    }

    /// The state of one sale.
    pub async fn sale_state(&self, id: &str) -> String {
        self.get(&format!("/v1/sales/{id}")).await.1["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `POST /v1/admin/sync` with the admin token.
    pub async fn sync_now(&self) -> u16 {
        self.http
            .post(format!("{}/v1/admin/sync", self.base))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("sync")
            .status()
            .as_u16()
    }

    /// Graceful stop; returns once the store is closed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("join").expect("clean stop");
    }

    pub async fn put(&self, id: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v1/sales/{id}", self.base))
            .json(body)
            .send()
            .await
            .expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON answer"))
    }

    async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.get_raw(path).await;
        (r.status().as_u16(), r.json().await.expect("JSON answer"))
    }

    /// A GET whose answer is not JSON (the status page).
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.get_raw(path).await;
        (r.status().as_u16(), r.text().await.expect("an answer"))
    }

    pub async fn status(&self) -> Value {
        self.get("/v1/status").await.1
    }
}

/// Every sale on the lane, in lane order, via the paged listing.
pub async fn all_sales(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!("{base}/v1/sales?after={after}&limit=1000"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        out.extend(page["sales"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// `GET url` and its JSON answer.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON answer")
}

/// The receipt numbers of `sales`, sorted.
pub fn receipt_numbers(sales: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = sales
        .iter()
        .filter_map(|s| s["receipt_no"].as_i64())
        .collect();
    v.sort_unstable();
    v
}

/// The real `laned` binary, started with `serve`.
pub struct RealLane {
    pub child: Child,
    pub base: String,
    logs: Logs,
}

/// What a child process wrote to stderr, collected by a reader thread, so
/// a test can wait for a log line instead of sleeping.
#[derive(Clone, Default)]
struct Logs(Arc<(std::sync::Mutex<(String, bool)>, std::sync::Condvar)>);

impl Logs {
    fn collect(&self, stderr: impl std::io::Read + Send + 'static) {
        let logs = self.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            loop {
                line.clear();
                let done = !matches!(r.read_line(&mut line), Ok(n) if n > 0);
                let (m, cv) = &*logs.0;
                let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                g.0.push_str(&line);
                g.1 = done;
                cv.notify_all();
                if done {
                    return;
                }
            }
        });
    }

    fn text(&self) -> String {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Blocks until `needle` has been logged `times` times, or stderr is
    /// closed. A minute is a safety net against a hung test, not timing.
    fn wait_for(&self, needle: &str, times: usize) -> bool {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if g.0.matches(needle).count() >= times {
                return true;
            }
            if g.1 {
                return false;
            }
            let (ng, t) = cv
                .wait_timeout(g, std::time::Duration::from_secs(60))
                .unwrap_or_else(|e| e.into_inner());
            g = ng;
            if t.timed_out() {
                return false;
            }
        }
    }

    /// Blocks until stderr is closed (the process exited).
    fn wait_closed(&self) {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while !g.1 {
            g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// How a start of the real binary ended when it did not become ready.
#[derive(Debug)]
pub struct Refused {
    pub status: ExitStatus,
    pub stderr: String,
}

pub fn laned_bin() -> &'static str {
    env!("CARGO_BIN_EXE_laned")
}

pub fn salemap_bin() -> &'static str {
    env!("CARGO_BIN_EXE_salemap")
}

impl RealLane {
    /// Starts `laned serve` on `dir` and waits for its readiness line
    /// (printed only once the store is open and the port bound).
    pub fn spawn(dir: &Path, lane_id: &str, extra: &[&str]) -> Result<RealLane, Refused> {
        let mut cmd = Command::new(laned_bin());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lane-id",
            lane_id,
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env_remove("LANED_CONFIG");
        Self::spawn_command(cmd)
    }

    /// Runs a prepared `laned serve` command and waits for readiness.
    pub fn spawn_command(cmd: Command) -> Result<RealLane, Refused> {
        Self::spawn_inner(cmd, Stdio::null()).map(|(lane, _)| lane)
    }

    /// [`RealLane::spawn_command`], with the process's stdin to write to
    /// (`laned demo` reads Enter from it).
    pub fn spawn_with_stdin(cmd: Command) -> Result<(RealLane, std::process::ChildStdin), Refused> {
        let (lane, stdin) = Self::spawn_inner(cmd, Stdio::piped())?;
        Ok((lane, stdin.expect("piped stdin")))
    }

    fn spawn_inner(
        mut cmd: Command,
        stdin: Stdio,
    ) -> Result<(RealLane, Option<std::process::ChildStdin>), Refused> {
        let mut child = cmd
            .env("LANED_LOG_LEVEL", "info")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn laned");
        let logs = Logs::default();
        logs.collect(child.stderr.take().expect("stderr"));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        // Blocks until the daemon prints its readiness line or exits.
        let _ = BufReader::new(stdout).read_line(&mut line);
        // `laned: listening on URL` (or `salemap: …`).
        match line
            .trim()
            .split_once(": listening on ")
            .map(|(_, url)| url)
        {
            Some(base) => {
                let stdin = child.stdin.take();
                Ok((
                    RealLane {
                        child,
                        base: base.to_owned(),
                        logs,
                    },
                    stdin,
                ))
            }
            None => {
                let status = child.wait().expect("wait");
                logs.wait_closed();
                Err(Refused {
                    status,
                    stderr: logs.text(),
                })
            }
        }
    }

    /// Starts `laned serve` expecting it to refuse: checks the exit code and
    /// that stderr contains `message`, and returns what it printed.
    pub fn expect_refusal(dir: &Path, lane_id: &str, code: i32, message: &str) -> String {
        let refused = match RealLane::spawn(dir, lane_id, &[]) {
            Ok(lane) => panic!("laned started (at {}) where it must refuse", lane.base),
            Err(r) => r,
        };
        assert_eq!(refused.status.code(), Some(code), "{}", refused.stderr);
        assert!(
            refused.stderr.contains(message),
            "expected {message:?} in: {}",
            refused.stderr
        );
        refused.stderr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM (a clean stop), then waits for the exit.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> ExitStatus {
        sigterm(&self.child);
        self.wait_exit()
    }

    /// Everything logged so far (all of it after [`RealLane::wait_exit`]).
    pub fn stderr(&self) -> String {
        self.logs.text()
    }

    /// Waits for a log line containing `needle` (its `times`-th occurrence);
    /// panics with the log if the process exits first.
    pub fn wait_for_log(&self, needle: &str, times: usize) {
        assert!(
            self.logs.wait_for(needle, times),
            "laned never logged {needle:?} ({times}×); its log:\n{}",
            self.logs.text()
        );
    }

    /// Waits for the process to exit; returns its status once its log is
    /// complete.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait");
        self.logs.wait_closed();
        status
    }
}

impl Drop for RealLane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a daemon. Tests of one binary share a process, and a process
/// that another test forks (to run a binary) holds a copy of every open
/// file until its `exec`: for that moment the instance lock of a lane this
/// process just stopped still looks held, by this process. Only that case
/// is waited out (briefly, and at most 10 s); any other refusal fails.
async fn start_daemon(cfg: &Config, clock: Arc<dyn laned::common::clock::Clock>) -> Daemon {
    let me = format!("laned pid {} ", std::process::id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Daemon::start(cfg, clock.clone()).await {
            Ok(d) => return d,
            Err(laned::lane::daemon::DaemonError::Store(
                laned::lane::store::StoreError::Locked { holder, .. },
            )) if holder.starts_with(&me) && std::time::Instant::now() < deadline => {
                // No signal exists for another process's exec; poll it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("start lane: {e:?}"),
        }
    }
}

/// A token for tests that need one.
pub fn secret(s: &str) -> Secret {
    Secret::new(s)
}

/// Whether `s` is a lower-case hyphenated v4 UUID.
pub fn laned_uuid_is_v4(s: &str) -> bool {
    s.len() == 36
        && s == s.to_lowercase()
        && Uuid::try_parse(s).is_ok_and(|u| u.get_version_num() == 4)
}
pub mod backend;
pub mod browser;
pub mod faketime;
pub mod pg;
pub mod salemap;
#[cfg(unix)]
pub mod signal;
pub mod skip;

#[cfg(unix)]
#[allow(unused_imports)] // not every test binary sends both
pub use signal::{sighup, sigterm};
#[allow(unused_imports)] // not every test binary skips anything
pub use skip::skipped;

/// The seed of a randomised test: `LANED_SEED` when set (to replay a
/// failure), a fresh one otherwise. Printed either way, and to be named in
/// every assertion message, so a failure can be replayed exactly.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("LANED_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| Uuid::new_v4().as_u64_pair().0);
    eprintln!("{test}: seed {seed} (replay with LANED_SEED={seed})");
    seed
}
