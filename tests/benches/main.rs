//! The benchmarks (BENCHMARKS.md), in one binary: each used to be a binary
//! of its own, linking the whole crate, and `cargo test --all-targets`
//! builds them all.
//!
//! `cargo bench` runs every benchmark in full, one after another;
//! `cargo bench -- ingest` (or `drain`, `salemap`, `export`, `startup`,
//! `status`, `journal`, `fleet`, or several) runs only those named. cargo adds
//! `--bench` to the arguments: without it (under `cargo test`) each
//! benchmark makes a short run, so that the benchmarks themselves stay
//! working, whatever the arguments.

#[path = "../common/backend.rs"]
#[allow(dead_code)]
mod backend;
#[path = "../common/pg.rs"]
#[allow(dead_code)]
mod pg;
#[cfg(unix)]
#[path = "../common/signal.rs"]
#[allow(dead_code)]
mod signal;
// pg.rs says through it when PostgreSQL is missing.
#[path = "../common/skip.rs"]
mod skip;
mod support;

mod drain;
mod export;
mod fleet;
mod ingest;
mod journal;
mod salemap;
mod startup;
mod status;

/// A benchmark: `true` for a full run, `false` for the short one.
type Benchmark = fn(bool);

/// Each benchmark by name, in the order a full run takes them.
const BENCHMARKS: [(&str, Benchmark); 8] = [
    ("ingest", ingest::main),
    ("drain", drain::main),
    ("salemap", salemap::main),
    ("export", export::main),
    ("startup", startup::main),
    ("status", status::main),
    ("journal", journal::main),
    ("fleet", fleet::main),
];

fn main() {
    // RUST_LOG=warn (say) shows what the lane and salemap log meanwhile.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    // The names asked for; under `cargo test` its filters are not ours.
    let named: Vec<&str> = if full {
        args.iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with('-'))
            .collect()
    } else {
        vec![]
    };
    let known: Vec<&str> = BENCHMARKS.iter().map(|(name, _)| *name).collect();
    if let Some(unknown) = named.iter().find(|n| !known.contains(n)) {
        eprintln!(
            "no benchmark named {unknown:?}; they are: {}",
            known.join(", ")
        );
        std::process::exit(2);
    }
    for (name, run) in BENCHMARKS {
        if named.is_empty() || named.contains(&name) {
            println!("== {name}");
            run(full);
        }
    }
}
