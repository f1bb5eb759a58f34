//! `laned retry ID | --all-stuck --reason "…"`: sends stuck sales back to the drain,
//! through the running daemon or, when it is down, under the instance lock.
//! Audit-logged with who and why.

use laned::lane::config::ConfigArgs;
use laned::lane::store::{Operator, RetryTarget};
use serde_json::json;

use super::operator::{self, Lane};

/// Options of `laned retry`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all_stuck"])))]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The stuck sale's transaction id.
    id: Option<String>,
    /// Every sale that is stuck now.
    #[arg(long)]
    all_stuck: bool,
    /// Why, for the audit log (required, as the admin API requires it).
    #[arg(long)]
    reason: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reason = laned::lane::store::valid_reason(&args.reason)
        .ok_or_else(|| {
            super::sales::BadArgument("--reason: say why in 1 to 500 characters".into())
        })?
        .to_owned();
    let target = match &args.id {
        Some(id) => RetryTarget::One(
            uuid::Uuid::parse_str(id)
                .map_err(|_| {
                    super::sales::BadArgument(format!("{id:?} is not a transaction id (a UUID)"))
                })?
                .to_string(),
        ),
        None => RetryTarget::AllStuck,
    };
    let dir = laned::lane::config::data_dir(&args.config)?;
    let rt = operator::runtime()?;
    let sales = rt.block_on(async {
        match operator::open(&dir, None).await? {
            Lane::Running { base, token } => {
                let path = match &target {
                    RetryTarget::One(id) => format!("/v1/admin/sales/{id}/retry"),
                    RetryTarget::AllStuck => "/v1/admin/retry-stuck".into(),
                };
                operator::post(&base, &token, &path, json!({"reason": reason})).await
            }
            Lane::Stopped { store, _lock } => {
                let who = Operator {
                    actor: operator::actor(),
                    reason,
                };
                let o = store.retry(jiff::Timestamp::now(), who, target).await;
                store.close().await;
                operator::outcome(o?)
            }
        }
    })?;
    if sales.is_empty() {
        println!("No sale is stuck; nothing to retry.");
    }
    for s in &sales {
        println!(
            "{} {}: back in the queue, the lane sends it again now (or at its next start)",
            s["receipt"].as_str().unwrap_or("?"),
            s["transaction_id"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
