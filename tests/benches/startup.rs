//! Start-up and idle benchmark (issue 8): how long the release `laned`
//! takes from being started to systemd's `READY=1` (database open,
//! migrations applied, port bound) on an empty database and on one holding
//! a large backlog; then the resident memory and CPU time of an idle lane
//! delivering to the real `salemap` binary, over ten minutes.
//!
//! `cargo bench -- startup` runs it with 1,000,000 sales and ten idle
//! minutes (override with `LANED_BENCH_SALES` and `LANED_BENCH_IDLE_SECS`);
//! under `cargo test` it runs 200 sales and one idle second so that it
//! stays working. With `LANED_BENCH_COLD=1` (Linux, as root) the page
//! cache is dropped before each start, as after a till's reboot.

pub fn main(full: bool) {
    #[cfg(unix)]
    unix::main(full);
    #[cfg(not(unix))]
    let _ = full;
}

#[cfg(unix)]
mod unix {
    use std::os::unix::net::UnixDatagram;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use crate::support::{self, rss_kib};

    const ROUNDS: usize = 5;

    /// `name` from the environment, else `big` for a full run or `quick`.
    fn env_or(name: &str, full: bool, big: usize, quick: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if full { big } else { quick })
    }

    pub fn main(full: bool) {
        let n = env_or("LANED_BENCH_SALES", full, 1_000_000, 200);
        let idle = Duration::from_secs(env_or("LANED_BENCH_IDLE_SECS", full, 600, 1) as u64);
        let base = std::env::var_os("LANED_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
        std::fs::create_dir_all(&base).expect("bench dir");

        let cold = std::env::var_os("LANED_BENCH_COLD").is_some_and(|v| v == "1");
        println!(
            "start-up to READY=1 ({ROUNDS} starts each; page cache {})",
            if cold { "dropped before each" } else { "warm" }
        );
        let empty = tempfile::tempdir_in(&base).expect("temp dir");
        let times = starts(empty.path(), cold);
        println!(
            "  empty: first start (creates the database) {:.1} ms; restarts {}",
            ms(times[0]),
            summary(&times[1..])
        );

        let full = tempfile::tempdir_in(&base).expect("temp dir");
        let seeded = Instant::now();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(support::backlog(full.path(), n));
        let db = std::fs::metadata(full.path().join("lane.db")).map_or(0, |m| m.len());
        println!(
            "  ({n} sales stored in {:.0} s; database {:.1} MB)",
            seeded.elapsed().as_secs_f64(),
            db as f64 / 1e6
        );
        let times = starts(full.path(), cold);
        println!("  {n} sales: {}", summary(&times));

        idle_lane(&base, idle);
    }

    /// Starts `laned serve` on `dir` `ROUNDS` times, each until `READY=1`,
    /// then stops it with SIGTERM; returns the times to `READY=1`. `cold`:
    /// the page cache is dropped before each start.
    fn starts(dir: &Path, cold: bool) -> Vec<Duration> {
        (0..ROUNDS)
            .map(|_| {
                if cold {
                    drop_page_cache();
                }
                let (mut child, sock, t) = start_lane(dir, &[]);
                stop(&mut child);
                drop(sock);
                t
            })
            .collect()
    }

    /// Starts `laned serve` on `dir` with a notification socket of its own
    /// (kept in the returned directory) and waits for `READY=1`.
    fn start_lane(
        dir: &Path,
        extra: &[&str],
    ) -> (Child, (tempfile::TempDir, UnixDatagram), Duration) {
        let sockets = tempfile::tempdir().expect("socket dir");
        let socket = sockets.path().join("notify.sock");
        let sock = UnixDatagram::bind(&socket).expect("notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(600)))
            .expect("timeout");
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_laned"))
            .args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "BENCH"])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("NOTIFY_SOCKET", &socket)
            .env_remove("WATCHDOG_USEC")
            .env_remove("LANED_CONFIG")
            .env("LANED_LOG_LEVEL", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn laned");
        let mut buf = [0u8; 4096];
        loop {
            let got = match sock.recv(&mut buf) {
                Ok(got) => got,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("no READY=1 from laned: {e}");
                }
            };
            if String::from_utf8_lossy(&buf[..got])
                .lines()
                .any(|l| l == "READY=1")
            {
                return (child, (sockets, sock), started.elapsed());
            }
        }
    }

    /// Writes dirty pages out and empties the page cache (needs root).
    fn drop_page_cache() {
        let synced = Command::new("sync").status().is_ok_and(|s| s.success());
        assert!(synced, "sync failed");
        std::fs::write("/proc/sys/vm/drop_caches", "3\n")
            .expect("LANED_BENCH_COLD=1 needs root on Linux (/proc/sys/vm/drop_caches)");
    }

    fn stop(child: &mut Child) {
        crate::signal::sigterm(child);
        let status = child.wait().expect("wait");
        assert!(status.success(), "laned exited with {status}");
    }

    /// A lane delivering to the real salemap, left alone for `idle`: its
    /// resident memory before and after, and the CPU time it used.
    fn idle_lane(base: &Path, idle: Duration) {
        let dir = tempfile::tempdir_in(base).expect("temp dir");
        let mut salemap = Command::new(env!("CARGO_BIN_EXE_salemap"))
            .args(["serve", "--allow-any-lane", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("salemap"))
            .env("SALEMAP_LOG_LEVEL", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn salemap");
        let url = support::listening_url(&mut salemap);
        let token = dir.path().join("backend-token");
        std::fs::write(&token, "bench\n").expect("token file");
        let lane_dir = dir.path().join("lane");
        let (mut lane, _sock, _) = start_lane(
            &lane_dir,
            &[
                "--backend-url",
                &url,
                "--backend-token-file",
                token.to_str().expect("utf-8 path"),
            ],
        );
        let pid = lane.id();
        let (rss0, cpu0) = (rss_kib(pid), cpu_ticks(pid));
        // Idle means nobody asks anything: this wait is the measurement.
        std::thread::sleep(idle);
        let (rss1, cpu1) = (rss_kib(pid), cpu_ticks(pid));
        println!(
            "idle lane (delivering to salemap, heartbeat every 5 min) for {} s: \
             RSS {:.1} MiB at start, {:.1} MiB after; CPU {:.2} s",
            idle.as_secs(),
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            (cpu1 - cpu0) as f64 / ticks_per_second()
        );
        stop(&mut lane);
        let _ = salemap.kill();
        let _ = salemap.wait();
    }

    /// utime + stime of `pid`, in clock ticks.
    fn cpu_ticks(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // Fields after the command name, which is in parentheses.
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    }

    fn ticks_per_second() -> f64 {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn summary(times: &[Duration]) -> String {
        let mut t = times.to_vec();
        t.sort();
        format!(
            "min {:.1} / median {:.1} / max {:.1} ms",
            ms(t[0]),
            ms(t[t.len() / 2]),
            ms(t[t.len() - 1])
        )
    }
}
