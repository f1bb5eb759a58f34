//! Lane state as the till sees it (DESIGN §5).

use serde::Serialize;

/// Whether the lane may sell, and how close it is to the sync ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneState {
    /// The last exchange with the back-end succeeded.
    Online,
    /// No successful exchange recently (or ever); sales are accepted.
    Offline,
    /// Offline for longer than `warn_after`; sales are still accepted.
    Warning,
    /// Offline for longer than the sync ceiling; new sales are refused.
    Suspended,
}
