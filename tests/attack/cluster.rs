//! The real binaries under attack: started on fixed ports (a restart comes
//! back where its clients expect it), killed with `kill -9` at will, their
//! logs kept across restarts for the checker.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::common::{self, RealLane};

/// A free loopback port (bound and released: nothing else on this machine
/// is expected to take it in between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The binary to attack: this build's, or another (an older build, to
/// show what the attack finds there) named in `var`.
pub fn binary(var: &str, built: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| built.into(), PathBuf::from)
}

/// `laned` or `salemap` with its arguments, run and killed again and again.
pub struct Proc {
    pub name: &'static str,
    bin: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    running: Option<RealLane>,
    logs: Vec<String>,
    /// `kill -9`s so far.
    pub kills: u32,
    /// Starts so far.
    pub starts: u32,
}

impl Proc {
    pub fn new(name: &'static str, bin: PathBuf, args: Vec<OsString>) -> Proc {
        Proc {
            name,
            bin,
            args,
            env: vec![],
            running: None,
            logs: vec![],
            kills: 0,
            starts: 0,
        }
    }

    /// Adds an environment variable to every start.
    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Proc {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Starts it (waiting for its readiness line), with its wall clock
    /// moved by `offset` seconds through libfaketime when given.
    pub fn start(&mut self, faketime: Option<(&Path, i64)>) {
        if let Err(log) = self.try_start(faketime) {
            panic!(
                "{} did not start:\n{log}\nearlier runs:\n{}",
                self.name,
                self.logs.join("\n")
            );
        }
    }

    /// Starts it, or returns what it printed when it refused to start
    /// (kept with its logs).
    pub fn try_start(&mut self, faketime: Option<(&Path, i64)>) -> Result<(), String> {
        assert!(self.running.is_none(), "{} is already running", self.name);
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.args(&self.args).env_remove("LANED_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some((lib, offset)) = faketime {
            common::faketime::offset(&mut cmd, lib, offset);
        }
        match RealLane::spawn_command(cmd) {
            Ok(p) => {
                self.running = Some(p);
                self.starts += 1;
                Ok(())
            }
            Err(r) => {
                let log = format!("({:?})\n{}", r.status, r.stderr);
                self.logs.push(r.stderr);
                Err(log)
            }
        }
    }

    /// `kill -9`; its log so far is kept.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.running.take() {
            let _ = p.child.kill();
            let _ = p.wait_exit();
            self.logs.push(p.stderr());
            self.kills += 1;
        }
    }

    /// A clean stop (SIGTERM), which must exit 0.
    #[cfg(unix)]
    pub fn stop(&mut self) {
        if let Some(mut p) = self.running.take() {
            let status = p.terminate();
            let log = p.stderr();
            assert_eq!(
                status.code(),
                Some(0),
                "{} did not stop cleanly:\n{log}",
                self.name
            );
            self.logs.push(log);
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(RealLane::pid)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Everything it logged, every run.
    pub fn logs(&self) -> String {
        let mut all = self.logs.join("\n");
        if let Some(p) = &self.running {
            all.push_str(&p.stderr());
        }
        all
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
