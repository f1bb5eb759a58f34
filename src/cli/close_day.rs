//! `laned close-day --date D`: records the business day's closing in the
//! fiscal journal (docs/journal.md), through the running daemon or, when it
//! is down, under the instance lock; audit-logged. `--through D` closes
//! every open day up to D, in order. Also the figures' printout, shared
//! with `laned report --x`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use laned::contract::closing::{Cash, Figures};
use laned::contract::money::display;
use laned::lane::config::ConfigArgs;
use laned::lane::store::ReadOnly;
use laned::lane::store::closing::CloseRequest;
use serde_json::{Value, json};

use super::operator::{self, Lane, Refused};
use super::sales::BadArgument;

/// Options of `laned close-day`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The business day to close, e.g. 2026-11-22.
    #[arg(long, value_name = "DATE", required_unless_present = "through")]
    date: Option<String>,
    /// Close every day with sales up to and including this one, oldest
    /// first (for a lane that has not closed its days before).
    #[arg(long, value_name = "DATE", conflicts_with_all = ["date", "counted"])]
    through: Option<String>,
    /// Cash counted in the drawer, per currency: --counted KES=12500.00
    /// (repeat for each currency). The closing records the variance.
    #[arg(long, value_name = "CUR=AMOUNT")]
    counted: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// A `--date`-like argument.
pub fn date_arg(flag: &str, text: &str) -> Result<String, BadArgument> {
    jiff::civil::Date::strptime("%Y-%m-%d", text)
        .map(|d| d.to_string())
        .map_err(|_| BadArgument(format!("{flag} {text:?}: use a date like 2026-11-22")))
}

/// `--counted KES=12500.00`, each in minor units of its currency.
pub fn counted_args(args: &[String]) -> Result<BTreeMap<String, i64>, BadArgument> {
    args.iter()
        .map(|a| {
            let bad = || {
                BadArgument(format!(
                    "--counted {a:?}: use a currency and an amount, like KES=12500.00"
                ))
            };
            let (cur, amount) = a.split_once('=').ok_or_else(bad)?;
            let cur = cur.trim();
            if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad());
            }
            let minor = laned::contract::money::parse_major(amount.trim(), cur).ok_or_else(bad)?;
            Ok((cur.to_owned(), minor))
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let counted = counted_args(&args.counted)?;
    let dir = laned::lane::config::data_dir(&args.config)?;
    let db = ReadOnly::open(&dir)?;
    let lane_id = db.lane_id()?.context("the database has no lane id yet")?;
    let config = operator::config_for(&args.config, &lane_id)?;
    let today = jiff::Timestamp::now()
        .to_zoned(config.ceiling.time_zone.clone())
        .date()
        .to_string();
    let days = match (&args.date, &args.through) {
        (Some(d), _) => vec![date_arg("--date", d)?],
        (None, Some(t)) => {
            let through = date_arg("--through", t)?;
            let days = db.open_days(&config.series, &through)?;
            if days.is_empty() {
                println!("No day up to {through} has sales left to close.");
                return Ok(());
            }
            days
        }
        (None, None) => return Err(BadArgument("give --date or --through".into()).into()),
    };
    drop(db);
    let rt = operator::runtime()?;
    let closed: Vec<Value> = rt.block_on(async {
        let lane = operator::open(&dir, Some(config.series.clone())).await?;
        let mut closed = vec![];
        for day in days {
            let answer = match &lane {
                Lane::Running { base, token } => {
                    operator::post_value(
                        base,
                        token,
                        "/v1/admin/close-day",
                        json!({"business_date": day, "counted": counted}),
                    )
                    .await
                }
                Lane::Stopped { store, .. } => {
                    let req = CloseRequest {
                        business_date: day,
                        today: today.clone(),
                        counted: counted.clone(),
                        actor: operator::actor(),
                    };
                    match store.close_day(req).await {
                        Err(e) => Err(e.into()),
                        Ok(o) => match o.refusal() {
                            Some((code, message)) => {
                                Err(Refused(format!("{message} ({code})")).into())
                            }
                            None => serde_json::to_value(&o).context("a closing as JSON"),
                        },
                    }
                }
            };
            match answer {
                Ok(a) => closed.push(a),
                Err(e) => {
                    // What was closed before the refusal stays closed: say so.
                    if !closed.is_empty() {
                        print_closed(&closed, args.json);
                    }
                    if let Lane::Stopped { store, .. } = &lane {
                        store.close().await;
                    }
                    return Err(e);
                }
            }
        }
        if let Lane::Stopped { store, .. } = &lane {
            store.close().await;
        }
        Ok::<_, anyhow::Error>(closed)
    })?;
    print_closed(&closed, args.json);
    Ok(())
}

fn print_closed(closed: &[Value], json: bool) {
    if json {
        println!("{:#}", Value::from(closed.to_vec()));
        return;
    }
    for o in closed {
        let c = &o["closing"];
        println!(
            "Closed business day {} of series {}: closing {}, transaction {}.",
            c["business_date"].as_str().unwrap_or("?"),
            c["series"].as_str().unwrap_or("?"),
            c["closing_no"],
            c["transaction_id"].as_str().unwrap_or("?"),
        );
        let parsed = serde_json::from_value::<Figures>(c["closing"].clone());
        let cash = serde_json::from_value::<BTreeMap<String, Cash>>(c["closing"]["cash"].clone())
            .unwrap_or_default();
        if let Ok(f) = parsed {
            print!(
                "{}",
                figures_text(c["series"].as_str().unwrap_or(""), &f, &cash)
            );
        }
    }
    if !closed.is_empty() {
        println!(
            "Closings are final. The drain delivers them to head office in lane order; \
             laned verify checks them."
        );
    }
}

/// A day's figures as a table people read.
pub fn figures_text(series: &str, f: &Figures, cash: &BTreeMap<String, Cash>) -> String {
    let mut out = String::new();
    let label = |n| laned::lane::store::receipt_label(series, n);
    let _ = writeln!(
        out,
        "  documents  {:>6}   receipts {}..{}",
        f.documents,
        label(f.first_receipt_no),
        label(f.last_receipt_no)
    );
    let amounts = |m: &BTreeMap<String, i64>| -> String {
        if m.is_empty() {
            "-".into()
        } else {
            m.iter()
                .map(|(c, v)| display(*v, c))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for (name, k) in [
        ("sales", &f.kinds.sale),
        ("returns", &f.kinds.ret),
        ("voids", &f.kinds.void),
    ] {
        let note = if name == "voids" { " cancelled" } else { "" };
        let _ = writeln!(
            out,
            "  {name:<9}  {:>6}   {}{note}",
            k.count,
            amounts(&k.totals)
        );
    }
    let _ = writeln!(out, "  net                 {}", amounts(&f.net));
    for (title, by) in [
        ("by tax code", &f.tax_codes),
        ("by payment method", &f.payment_methods),
    ] {
        let _ = writeln!(out, "  {title}:");
        for (cur, m) in by {
            for (key, v) in m {
                let key = if key.is_empty() { "(none)" } else { key };
                let _ = writeln!(out, "    {key:<16} {}", display(*v, cur));
            }
        }
    }
    for (cur, c) in cash {
        let _ = writeln!(
            out,
            "  cash {cur}: expected {}, counted {}, variance {}",
            display(c.expected, cur),
            display(c.counted, cur),
            display(c.variance, cur)
        );
    }
    out
}
