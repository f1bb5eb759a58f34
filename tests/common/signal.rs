//! Signals to the child processes of tests, sent with `kill(2)` itself
//! rather than by running `kill` through a shell.

use std::process::Child;

use rustix::process::{Pid, Signal, kill_process};

/// SIGTERM, as a service manager stops a service (a clean stop). Panics if
/// it cannot be sent. The child is not reaped: its pid cannot have been
/// reused.
pub fn sigterm(child: &Child) {
    send(child, Signal::TERM, "SIGTERM");
}

/// SIGHUP, as `systemctl reload` asks for the configuration to be read
/// again. Panics if it cannot be sent.
pub fn sighup(child: &Child) {
    send(child, Signal::HUP, "SIGHUP");
}

fn send(child: &Child, signal: Signal, name: &str) {
    kill_process(Pid::from_child(child), signal)
        .unwrap_or_else(|e| panic!("{name} to process {}: {e}", child.id()));
}
