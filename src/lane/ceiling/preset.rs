//! Named sets of limits for the fiscal regimes we ship presets for.

use serde::{Deserialize, Serialize};

use super::Limits;

/// Named sets of sync ceiling limits for fiscal regimes (see
/// `docs/sync-ceiling.md`). Keys set explicitly override the preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Preset {
    /// Kenya eTIMS (VSCU): 24 h without a successful sync.
    #[serde(rename = "ke-etims")]
    #[value(name = "ke-etims")]
    KeEtims,
    /// Ukraine PRRO: 36 h offline in a row, 168 h per calendar month.
    #[serde(rename = "ua-prro")]
    #[value(name = "ua-prro")]
    UaPrro,
    /// Russia: no document may stay unsent for 30 days.
    #[serde(rename = "ru-30d")]
    #[value(name = "ru-30d")]
    Ru30d,
}

impl Preset {
    /// The limits the preset stands for.
    pub fn limits(self) -> Limits {
        use std::time::Duration;
        let h = |n: u64| Duration::from_secs(n * 3600);
        match self {
            Preset::KeEtims => Limits::default(),
            Preset::UaPrro => Limits {
                sync_ceiling: Some(h(36)),
                warn_after: h(30),
                max_unsent_age: None,
                monthly_offline_budget: Some(h(168)),
            },
            Preset::Ru30d => Limits {
                sync_ceiling: None,
                warn_after: h(20),
                max_unsent_age: Some(h(30 * 24)),
                monthly_offline_budget: None,
            },
        }
    }
}
