//! `laned resolve ID --doc-no X --reason "…"`: records a stuck sale as
//! settled by hand with the back-end's document number, through the running
//! daemon or, when it is down, under the instance lock. Audit-logged.

use laned::lane::config::ConfigArgs;
use laned::lane::store::Operator;
use serde_json::json;

use super::operator::{self, Lane};
use super::sales::BadArgument;

/// Options of `laned resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The stuck sale's transaction id.
    id: String,
    /// The back-end's document number for this sale, as settled by hand.
    #[arg(long, value_name = "X")]
    doc_no: String,
    /// Why, for the audit log (a ticket number helps).
    #[arg(long)]
    reason: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let id = uuid::Uuid::parse_str(&args.id)
        .map_err(|_| BadArgument(format!("{:?} is not a transaction id (a UUID)", args.id)))?
        .to_string();
    let doc_no = laned::lane::store::valid_doc_no(&args.doc_no)
        .ok_or_else(|| BadArgument("--doc-no: 1 to 64 printable characters".into()))?
        .to_owned();
    let reason = laned::lane::store::valid_reason(&args.reason)
        .ok_or_else(|| BadArgument("--reason: say why in 1 to 500 characters".into()))?
        .to_owned();
    let dir = laned::lane::config::data_dir(&args.config)?;
    let rt = operator::runtime()?;
    let sales = rt.block_on(async {
        match operator::open(&dir, None).await? {
            Lane::Running { base, token } => {
                operator::post(
                    &base,
                    &token,
                    &format!("/v1/admin/sales/{id}/resolve"),
                    json!({"doc_no": doc_no, "reason": reason}),
                )
                .await
            }
            Lane::Stopped { store, _lock } => {
                let who = Operator {
                    actor: operator::actor(),
                    reason,
                };
                let o = store.resolve(jiff::Timestamp::now(), who, id, doc_no).await;
                store.close().await;
                operator::outcome(o?)
            }
        }
    })?;
    for s in &sales {
        println!(
            "{} {}: resolved as back-end document {}",
            s["receipt"].as_str().unwrap_or("?"),
            s["transaction_id"].as_str().unwrap_or("?"),
            s["doc_no"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
