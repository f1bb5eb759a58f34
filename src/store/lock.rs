//! The instance lock: one daemon per data directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "laned.lock";

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
