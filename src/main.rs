//! The `laned` binary: command-line edge of the lane daemon.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
