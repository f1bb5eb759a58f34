//! Durations as people write them in settings: `30s`, `5m`, `1h 30m`.

use serde::{Deserialize, Serialize};

/// A positive duration written like `30s`, `5m`, `1h` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub std::time::Duration);

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d: jiff::SignedDuration = s
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like \"30s\", \"5m\" or \"1h\""))?;
        match std::time::Duration::try_from(d) {
            Ok(d) if !d.is_zero() => Ok(Interval(d)),
            _ => Err(format!("{s:?} must be a positive duration")),
        }
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Interval {
    /// As it is written in the config: `24h`, `1h 30m`, `500ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) => write!(f, "{d:#}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = jiff::SignedDuration::try_from(self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&format!("{d:#}"))
    }
}
