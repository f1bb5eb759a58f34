//! salemap's signing key (docs/backend-contract.md, "Signed
//! acknowledgements"): an Ed25519 key whose 32-byte seed is kept as 64
//! hexadecimal digits in a file only its owner may read. salemap makes one
//! at its first start (in its data directory), or an operator gives one
//! (a file, or systemd's `LoadCredential=signing-key:…`), which every
//! replica of one back-end must share.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::owner_only;
use crate::contract::ack::{KeyError, Signing};

/// Why the signing key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read, created or restricted.
    #[error("cannot {what} the signing key {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The key file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("the signing key {path} is not usable")]
    Content {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The operating system gave no random bytes.
    #[error("the operating system has no random bytes for a new signing key")]
    Random(#[source] getrandom::Error),
}

/// Where the key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// This file, made with a new key if it does not exist.
    File(PathBuf),
    /// This file, which must exist (a credential: never written).
    Given(PathBuf),
    /// This key (tests, embedding).
    Key(Box<Signing>),
}

impl KeySource {
    /// The key, reading or making its file.
    pub fn load(&self) -> Result<Signing, KeyFileError> {
        match self {
            KeySource::File(path) => load_or_create(path),
            KeySource::Given(path) => read(path),
            KeySource::Key(k) => Ok((**k).clone()),
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError {
    let path = path.to_owned();
    move |source| KeyFileError::Io { what, path, source }
}

/// Reads the key at `path`.
fn read(path: &Path) -> Result<Signing, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    Signing::from_hex(&text).map_err(|source| KeyFileError::Content {
        path: path.to_owned(),
        source,
    })
}

/// Reads the key at `path`, or makes a new one there (owner-only). Two
/// salemaps starting at once on one directory end with the same key: the
/// new file is linked into place only if none is there yet.
pub fn load_or_create(path: &Path) -> Result<Signing, KeyFileError> {
    if path.exists() {
        if owner_only::tighten_file(path).map_err(io("restrict", path))? {
            tracing::warn!(file = %path.display(), "the signing key was readable by others; set it to 0600");
        }
        return read(path);
    }
    owner_only::ensure_parent(path).map_err(io("create the directory of", path))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyFileError::Random)?;
    let key = Signing::from_seed(&seed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        owner_only::create_file(&tmp)?;
        let mut f = std::fs::OpenOptions::new().write(true).open(&tmp)?;
        writeln!(f, "{}", key.to_hex())?;
        f.sync_all()
    })()
    .map_err(io("write", &tmp));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io("create", path)(e)),
    });
    // The temporary name goes in every case.
    let _ = std::fs::remove_file(&tmp);
    if linked? {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The new name survives a power cut.
            #[cfg(unix)]
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            #[cfg(not(unix))]
            let _ = dir;
        }
        tracing::info!(file = %path.display(), key_id = %key.public().key_id, "made a new signing key");
        Ok(key)
    } else {
        read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("salemap.key");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.public(), b.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        let given = KeySource::Given(path.clone()).load().unwrap();
        assert_eq!(given.public(), a.public());
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Content { .. })
        ));
        assert!(matches!(
            KeySource::Given(dir.path().join("missing")).load(),
            Err(KeyFileError::Io { what: "read", .. })
        ));
    }
}
