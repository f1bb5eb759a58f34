//! Retry delays: exponential backoff with full jitter, honouring the
//! back-end's `Retry-After` up to a cap.

use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Backoff {
    /// The ceiling for the `failures`th consecutive failure (1-based):
    /// `base × 2^(failures−1)`, at most `cap`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before the next attempt: uniform in `[0, ceiling]` ("full
    /// jitter", so a fleet of lanes does not retry in step), but never less
    /// than the back-end's `Retry-After` (itself capped). `random` returns a
    /// uniformly random `u64`.
    pub fn delay(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        random: impl FnOnce() -> u64,
    ) -> Duration {
        let ceiling = self.ceiling(failures);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(match ceiling_ms.checked_add(1) {
            Some(n) => random() % n,
            None => random(),
        });
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.retry_after_cap)),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date relative to
/// `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(300),
        retry_after_cap: Duration::from_secs(900),
    };

    #[test]
    fn ceiling_doubles_from_base_up_to_cap() {
        let c: Vec<u64> = (1..=11).map(|n| B.ceiling(n).as_secs()).collect();
        assert_eq!(c, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(B.ceiling(u32::MAX), B.cap);
        assert_eq!(B.ceiling(0), B.base);
    }

    #[test]
    fn retry_after_is_a_floor_but_capped() {
        assert_eq!(
            B.delay(1, Some(Duration::from_secs(120)), || 0),
            Duration::from_secs(120)
        );
        assert_eq!(
            B.delay(1, Some(Duration::from_secs(86_400)), || 0),
            B.retry_after_cap
        );
        // A larger jittered delay wins over a short Retry-After.
        assert_eq!(
            B.delay(9, Some(Duration::from_secs(1)), || 100_000),
            Duration::from_millis(100_000)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now: jiff::Timestamp = "1994-11-06T08:49:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(37))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    proptest! {
        /// Whatever the randomness, the delay stays within [0, ceiling]
        /// (or is exactly the capped Retry-After when that is larger).
        #[test]
        fn delay_stays_within_the_jitter_bounds(failures in 1u32..64, r in any::<u64>(), ra in proptest::option::of(0u64..100_000)) {
            let ra = ra.map(Duration::from_secs);
            let d = B.delay(failures, ra, || r);
            let floor = ra.map_or(Duration::ZERO, |ra| ra.min(B.retry_after_cap));
            prop_assert!(d >= floor);
            prop_assert!(d <= B.ceiling(failures).max(floor));
        }
    }
}
