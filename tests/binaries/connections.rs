//! Both servers against clients that misbehave at the connection level,
//! through the real binaries: request headers that never finish (and idle
//! connections) are closed after the header-read timeout; beyond the
//! connection limit new connections are closed at once, with a log line;
//! and a till that half-closes its socket after a complete `PUT` still gets
//! its answer.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::RealLane;

/// A safety net against a hung test, not timing: a server that never
/// closes the connection fails the test after this long.
const SAFETY: Duration = Duration::from_secs(30);

/// `laned serve` or `salemap serve` on a fresh data directory, with `extra`.
fn spawn(bin: &str, dir: &std::path::Path, extra: &[&str]) -> RealLane {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env_remove("LANED_CONFIG");
    if bin == common::laned_bin() {
        cmd.args(["--lane-id", "L03"]);
    } else {
        cmd.arg("--allow-any-lane");
    }
    RealLane::spawn_command(cmd).expect("starts")
}

fn addr(server: &RealLane) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

fn connect(server: &RealLane) -> TcpStream {
    let s = TcpStream::connect(addr(server)).expect("connect");
    s.set_read_timeout(Some(SAFETY)).expect("read timeout");
    s
}

/// Reads until the server closes the connection; returns what it sent.
/// Panics if it is still open after the safety net.
fn read_to_close(s: &mut TcpStream, what: &str) -> String {
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{what}: the connection was not closed: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn both() -> [&'static str; 2] {
    [common::laned_bin(), common::salemap_bin()]
}

#[test]
fn request_headers_that_never_finish_are_closed_after_the_header_read_timeout() {
    for bin in both() {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(bin, dir.path(), &["--header-read-timeout", "1s"]);
        // Half a request head, then nothing.
        let mut slow = connect(&server);
        slow.write_all(b"PUT /v1/sales/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        let answer = read_to_close(&mut slow, bin);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{bin}: {answer}"
        );
        // A connection that never sends a byte is closed the same way.
        let mut idle = connect(&server);
        read_to_close(&mut idle, bin);
        // The server goes on serving.
        let mut ok = connect(&server);
        ok.write_all(b"GET /v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_to_close(&mut ok, bin);
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 404"),
            "{bin}: {answer}"
        );
    }
}

#[test]
fn a_body_that_stops_arriving_is_answered_408_and_closed() {
    for (bin, path) in [
        (common::laned_bin(), "/v1/sales"),
        (common::salemap_bin(), "/v1/sales:batch"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(bin, dir.path(), &["--header-read-timeout", "1s"]);
        // A complete head announcing 1,000 bytes, ten of them, then nothing.
        let mut slow = connect(&server);
        write!(
            slow,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"lines\": ["
        )
        .unwrap();
        let answer = read_to_close(&mut slow, bin);
        assert!(answer.starts_with("HTTP/1.1 408"), "{bin}: {answer}");
        assert!(
            answer.contains("\"code\":\"request_timeout\""),
            "{bin}: {answer}"
        );
    }
}

#[test]
fn beyond_the_connection_limit_new_connections_are_closed_and_logged() {
    for bin in both() {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(
            bin,
            dir.path(),
            &["--max-connections", "4", "--header-read-timeout", "1h"],
        );
        let held: Vec<TcpStream> = (0..4).map(|_| connect(&server)).collect();
        let mut fifth = connect(&server);
        let answer = read_to_close(&mut fifth, bin);
        assert!(answer.is_empty(), "{bin}: {answer}");
        server.wait_for_log("connection limit of 4 reached", 1);
        // One of the four goes away: the server takes connections again,
        // and says so.
        drop(held.into_iter().next());
        server.wait_for_log("below the connection limit again", 1);
        let mut ok = connect(&server);
        ok.write_all(b"GET /v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_to_close(&mut ok, bin);
        assert!(answer.starts_with("HTTP/1.1 "), "{bin}: {answer}");
        assert!(
            server
                .stderr()
                .matches("connection limit of 4 reached")
                .count()
                == 1,
            "{bin}: logged more than once per episode:\n{}",
            server.stderr()
        );
    }
}

#[test]
fn a_till_that_half_closes_after_a_complete_put_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let lane = spawn(common::laned_bin(), dir.path(), &[]);
    let id = uuid::Uuid::new_v4();
    let body = common::sale().to_string();
    let mut s = connect(&lane);
    write!(
        s,
        "PUT /v1/sales/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // The till is done sending: it shuts its write side and waits.
    s.shutdown(Shutdown::Write).unwrap();
    let answer = read_to_close(&mut s, "laned");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\"receipt_no\":1"), "{answer}");
}
