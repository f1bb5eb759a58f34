//! Timestamps as both daemons store and send them.

/// Formats a timestamp the way the stores keep it: UTC, milliseconds,
/// fixed width, so text order is time order.
pub fn fmt_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
