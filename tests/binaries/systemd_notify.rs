//! systemd's notification protocol, as a `Type=notify` unit with
//! `WatchdogSec=` sees it: the real binaries started with `NOTIFY_SOCKET`
//! (a datagram socket this test holds) and `WATCHDOG_USEC`/`WATCHDOG_PID`
//! set as systemd sets them. `READY=1` arrives only when the port already
//! answers; `WATCHDOG=1` arrives within half the interval, again and
//! again; SIGTERM gives `STOPPING=1` and exit code 0. For laned and salemap.

use crate::common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Starts `program args…` as systemd starts a `Type=notify` unit's
/// `ExecStart` with `WatchdogSec=`: `NOTIFY_SOCKET` is `socket`,
/// `WATCHDOG_USEC` is `watchdog` and `WATCHDOG_PID` the service's own pid
/// (`exec` keeps the shell's). Its stderr is piped for the test to read.
fn start_as_unit(program: &str, args: &[String], socket: &Path, watchdog: Duration) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("LANED_CONFIG")
        .env("LANED_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `program args…` as systemd would start the unit's `ExecStart`
/// and checks the whole notification sequence.
fn notifies_like_a_systemd_service(program: &str, args: &[String], port: u16, reloads: bool) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let mut child = start_as_unit(program, args, &socket, WATCHDOG);
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

    // A reload (SIGHUP) is announced, with the time, and ended by READY=1.
    if reloads {
        common::sighup(&child);
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
    common::sigterm(&child);
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
    common::sigterm(&child);
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

/// A writer that cannot finish its work stops the pings, so systemd's
/// watchdog restarts the service; once it can again, they resume. The test
/// wedges the real daemon's writer from outside: it holds SQLite's write
/// lock on the lane database (as a stuck backup tool or a hung disk would)
/// while a till hands in a sale, whose insert then waits in the writer
/// thread up to the busy timeout (5 s), longer than the watchdog interval.
#[test]
fn a_wedged_store_writer_stops_the_watchdog_pings() {
    const INTERVAL: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let args: Vec<String> = vec![
        "serve".into(),
        "--lane-id".into(),
        "L01".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    let mut child = start_as_unit(common::laned_bin(), &args, &socket, INTERVAL);
    // Log lines as they come, so the test can wait for one.
    let stderr = child.stderr.take().unwrap();
    let (line_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });
    let ready = recv(&sock, Duration::from_secs(60)).expect("READY=1");
    assert!(ready.contains("READY=1"), "{ready:?}");
    let ping = recv(&sock, INTERVAL / 2).expect("a first WATCHDOG=1");
    assert_eq!(ping.trim_end(), "WATCHDOG=1");

    let holder = rusqlite::Connection::open(data.join("lane.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let sale = std::thread::spawn(move || put_sale(port));

    // Pings already on their way may still arrive; then a whole interval
    // passes without one (systemd would restart the service here). Twenty
    // seconds of unbroken pings means the writer was never wedged.
    let wedged_since = std::time::Instant::now();
    while let Some(n) = recv(&sock, INTERVAL) {
        assert_eq!(n.trim_end(), "WATCHDOG=1", "{n:?}");
        assert!(
            wedged_since.elapsed() < Duration::from_secs(20),
            "the pings went on while the writer could not write"
        );
    }

    // The watchdog says why it stays silent (its check timed out after
    // the interval); only then is the lock let go.
    let mut logs = vec![];
    while !logs
        .iter()
        .any(|l: &String| l.contains("watchdog check did not finish; not pinging systemd"))
    {
        logs.push(
            lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no watchdog error logged: {logs:?}")),
        );
    }
    holder.execute_batch("ROLLBACK").unwrap();
    let n = recv(&sock, Duration::from_secs(60)).expect("pings resume");
    assert_eq!(n.trim_end(), "WATCHDOG=1", "{n:?}");
    let status = sale.join().unwrap();
    // Stored once the lock went, or refused as busy had the lock outlasted
    // the busy timeout: either way the till got an answer.
    assert!(
        status.starts_with("HTTP/1.1 201") || status.starts_with("HTTP/1.1 503"),
        "{status}"
    );

    common::sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `PUT /v1/sales/{new id}` over a plain socket; returns the status line.
fn put_sale(port: u16) -> String {
    use std::io::{BufRead, Write};
    let body = serde_json::to_vec(&common::sale()).unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /v1/sales/{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        uuid::Uuid::new_v4(),
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    line
}
