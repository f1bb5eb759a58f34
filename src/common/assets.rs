//! Man pages and shell completions generated from the binaries' clap
//! definitions (so they cannot drift from `--help`), for the Debian
//! packages: `laned generate-assets DIR` / `salemap generate-assets DIR`.

use std::path::Path;

/// The assets could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the man pages and completions to {dir}")]
pub struct AssetsError {
    /// The directory.
    dir: std::path::PathBuf,
    /// The I/O error.
    #[source]
    source: std::io::Error,
}

/// Writes `NAME.1` and `NAME-SUBCOMMAND.1` (man pages) and the bash
/// (`completions/NAME`), zsh (`completions/_NAME`) and fish
/// (`completions/NAME.fish`) completions of `cmd` into `dir`.
pub fn write(cmd: clap::Command, dir: &Path) -> Result<(), AssetsError> {
    write_all(cmd, dir).map_err(|source| AssetsError {
        dir: dir.to_owned(),
        source,
    })
}

fn write_all(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    cmd.build();
    std::fs::create_dir_all(dir.join("man"))?;
    std::fs::create_dir_all(dir.join("completions"))?;
    let page = |c: clap::Command, file: &str| -> std::io::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        std::fs::write(dir.join("man").join(file), out)
    };
    page(cmd.clone(), &format!("{name}.1"))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let full = format!("{name}-{}", sub.get_name());
        page(sub.clone().name(full.clone()), &format!("{full}.1"))?;
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        std::fs::write(dir.join("completions").join(file), out)?;
    }
    Ok(())
}
