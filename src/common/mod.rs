//! The bottom layer: what both daemons and their command lines use and that
//! knows nothing of sales. The clock, serving HTTP, systemd's notifications,
//! shutdown, logging, owner-only files and the installed assets.

pub mod assets;
pub mod clock;
pub mod duration;
pub mod hash;
pub mod http;
pub mod migrate;
pub mod owner_only;
pub mod par;
pub mod secret;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod time;

/// A uniformly random `u64` from the operating system's generator (the one
/// that mints v4 transaction ids), so jitter needs no extra dependency.
pub fn os_random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// What the crate's unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    /// proptest's settings for the crate's property tests: `cases` random
    /// cases (proptest's default when `None`), and a failing case kept next
    /// to the test's file (`src/**/*.regressions`), not in a directory at
    /// the top of the repository.
    pub(crate) fn proptest_config(cases: Option<u32>) -> proptest::test_runner::Config {
        let default = proptest::test_runner::Config::default();
        proptest::test_runner::Config {
            cases: cases.unwrap_or(default.cases),
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
            )),
            ..default
        }
    }
}
