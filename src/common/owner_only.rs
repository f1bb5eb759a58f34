//! Files and directories only their owner may read: the data directories
//! and databases of laned and salemap hold sales and tokens. On Unix,
//! directories are `0700` and files `0600`; elsewhere the platform's
//! defaults apply.

use std::path::Path;

/// Creates `dir` (and its missing parents) owner-only, or tightens an
/// existing one that others could read. Returns whether it had to tighten.
pub fn ensure_dir(dir: &Path) -> std::io::Result<bool> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    tighten(dir, 0o700)
}

/// Creates the missing parents of `path` owner-only; existing ones are left
/// as they are (they may be shared, such as `/var/lib`).
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.exists() => ensure_dir(dir).map(drop),
        _ => Ok(()),
    }
}

/// Creates `path` empty and owner-only; it must not exist.
pub fn create_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(drop)
}

/// Makes an existing file owner-only if others could read it. Returns
/// whether it had to.
pub fn tighten_file(path: &Path) -> std::io::Result<bool> {
    tighten(path, 0o600)
}

#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path)?.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: u32) -> std::io::Result<bool> {
    Ok(false)
}
