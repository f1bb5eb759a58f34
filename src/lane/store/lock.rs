//! The instance lock: one daemon per data directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "laned.lock";

/// What a serving daemon writes into the lock file: a sentence for the
/// refusal a second instance prints, which also tells the command-line
/// tools where to reach the running daemon's admin API.
pub fn serving_description(lane_id: &str, addr: SocketAddr, since: &str) -> String {
    format!(
        "laned pid {} (lane {lane_id}, listening on {addr}, started {since})",
        std::process::id()
    )
}

/// The address in a [`serving_description`], if the holder wrote one (a
/// daemon still starting has not bound its listener yet).
pub fn listening_on(holder: &str) -> Option<SocketAddr> {
    let rest = holder.split_once("listening on ")?.1;
    rest.split([',', ' ', ')']).next()?.parse().ok()
}

/// Held for the life of the daemon; the OS releases it when the process
/// ends, however it ends (even `kill -9`), so a stale file never blocks.
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<InstanceLock, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| StoreError::Io {
            what: "open the lock file",
            path: path.clone(),
            source,
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock { file, path }),
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder's description is best effort: on platforms with
                // mandatory locks it cannot be read.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                Err(StoreError::Locked {
                    path,
                    holder: if holder.is_empty() {
                        "another laned process".into()
                    } else {
                        holder.to_owned()
                    },
                })
            }
            Err(TryLockError::Error(source)) => Err(StoreError::Io {
                what: "lock the lock file",
                path,
                source,
            }),
        }
    }

    /// Records who holds the lock, for the message a second instance prints.
    pub fn describe(&mut self, holder: &str) -> Result<(), StoreError> {
        let path = self.path.clone();
        let io = |source| StoreError::Io {
            what: "write the lock file",
            path: path.clone(),
            source,
        };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(holder.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::{listening_on, serving_description};

    #[test]
    fn the_cli_finds_the_address_a_daemon_wrote() {
        for addr in ["127.0.0.1:4510", "[::1]:80", "0.0.0.0:9"] {
            let a = addr.parse().unwrap();
            let d = serving_description("L01", a, "2026-11-23T00:00:00.000Z");
            assert_eq!(listening_on(&d), Some(a));
        }
        assert_eq!(
            listening_on("laned pid 7 (lane L01, starting since x)"),
            None
        );
        assert_eq!(listening_on("another laned process"), None);
    }
}
