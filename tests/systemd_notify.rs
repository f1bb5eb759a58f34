//! systemd's notification protocol, as a `Type=notify` unit with
//! `WatchdogSec=` sees it: the real binaries started with `NOTIFY_SOCKET`
//! (a datagram socket this test holds) and `WATCHDOG_USEC`/`WATCHDOG_PID`
//! set as systemd sets them. `READY=1` arrives only when the port already
//! answers; `WATCHDOG=1` arrives within half the interval, again and
//! again; SIGTERM gives `STOPPING=1` and exit code 0. For laned and salemap.
#![cfg(unix)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The watchdog interval given to the service (systemd's `WatchdogSec=`).
const WATCHDOG: Duration = Duration::from_secs(3);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Receives one notification; `None` when nothing came within `within`.
fn recv(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Runs `program args…` as systemd would start the unit's `ExecStart`
/// (`WATCHDOG_PID` is the service's own pid: `exec` keeps the shell's) and
/// checks the whole notification sequence.
fn notifies_like_a_systemd_service(program: &str, args: &[String], port: u16, reloads: bool) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env_remove("LANED_CONFIG")
        .env("LANED_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // The first notification is READY=1 (a minute is a safety net against
    // a hung test, not a timing), and by then the port answers.
    let first = recv(&sock, Duration::from_secs(60)).expect("a notification");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(first.contains("STATUS="), "{first:?}");
    std::net::TcpStream::connect(("127.0.0.1", port))
        .expect("the port answers once READY=1 has arrived");

    // Pings within half the interval, again and again.
    for i in 0..4 {
        let ping = recv(&sock, WATCHDOG / 2)
            .unwrap_or_else(|| panic!("no WATCHDOG=1 within half the interval (ping {i})"));
        assert_eq!(ping.trim_end(), "WATCHDOG=1");
    }

    let pid = child.id().to_string();
    // A reload (SIGHUP) is announced, with the time, and ended by READY=1.
    if reloads {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut seen = vec![];
        while !seen
            .iter()
            .any(|n: &String| n.lines().any(|l| l == "READY=1"))
        {
            let n = recv(&sock, Duration::from_secs(60)).expect("a notification after SIGHUP");
            seen.push(n);
        }
        let reload = seen
            .iter()
            .position(|n| n.lines().any(|l| l == "RELOADING=1"))
            .unwrap_or_else(|| panic!("no RELOADING=1 in {seen:?}"));
        assert!(seen[reload].contains("MONOTONIC_USEC="), "{seen:?}");
        assert!(
            seen[reload + 1..].iter().any(|n| n.contains("READY=1")),
            "{seen:?}"
        );
    }

    // SIGTERM: STOPPING=1 (after any ping already on its way), then exit 0.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        let n = recv(&sock, Duration::from_secs(60)).expect("STOPPING=1");
        if n.lines().any(|l| l == "STOPPING=1") {
            break;
        }
        assert_eq!(n.trim_end(), "WATCHDOG=1", "{n:?}");
    }
    let status = child.wait().unwrap();
    let logs = logs.join().unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
}

#[test]
fn laned_notifies_ready_watchdog_and_stopping() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--lane-id",
        "L01",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    notifies_like_a_systemd_service(common::laned_bin(), &args, port, true);
}

#[test]
fn salemap_notifies_ready_watchdog_and_stopping() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--allow-any-lane",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    notifies_like_a_systemd_service(common::salemap_bin(), &args, port, false);
}

/// Runs `laned serve` until ready with stderr in `log`, `JOURNAL_STREAM`
/// naming that file (as systemd names the journal's stream) or not, and
/// returns what it logged.
fn logged(journal: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut cmd = Command::new(common::laned_bin());
    cmd.args(["serve", "--lane-id", "L01", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket)
        .env_remove("WATCHDOG_USEC")
        .env_remove("LANED_CONFIG")
        .env("LANED_LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        cmd.env_remove("JOURNAL_STREAM");
    }
    let mut child = cmd.spawn().unwrap();
    let ready = recv(&sock, Duration::from_secs(60)).expect("READY=1");
    assert!(ready.contains("READY=1"));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::read_to_string(&log_path).unwrap()
}

#[test]
fn logs_to_the_journal_carry_no_timestamp_or_colour() {
    let journal = logged(true);
    let ready = journal
        .lines()
        .find(|l| l.contains("laned ready"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(ready.trim_start().starts_with("INFO"), "{ready}");
    assert!(!journal.contains('\u{1b}'), "{journal}");
    // Elsewhere each line starts with its time.
    let plain = logged(false);
    let ready = plain
        .lines()
        .find(|l| l.contains("laned ready"))
        .unwrap_or_else(|| panic!("{plain}"));
    assert!(ready.starts_with("20"), "{ready}");
}
