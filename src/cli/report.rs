//! `laned report --date D`: one business day as the lane holds it (count
//! and totals by kind and by state) and, when the back-end answers
//! `GET /v1/lanes/{lane}/days/{date}`, the back-end's figures side by side
//! with the difference. Reads the database only; works with the daemon
//! running or not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context;
use laned::contract::money::display;
use laned::contract::reconcile;
use laned::contract::{Day, HeldDocument, KindTotals};
use laned::lane::config::{Config, ConfigArgs};
use laned::lane::drain::{BackendClient, DeliveryOutcome as Outcome};
use laned::lane::store::{LaneDay, ReadOnly};
use serde_json::json;

/// Options of `laned report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The business day, e.g. 2026-11-22 (with --x: today by default).
    #[arg(long, value_name = "DATE", required_unless_present = "x")]
    date: Option<String>,
    /// The X report: the day's closing figures so far (by kind, tax code
    /// and payment method), recording nothing.
    #[arg(long)]
    x: bool,
    /// With --x: cash counted in the drawer, like KES=12500.00.
    #[arg(long, value_name = "CUR=AMOUNT", requires = "x")]
    counted: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `laned report --x`: what the day's closing would record now.
fn x_report(args: &Args) -> anyhow::Result<()> {
    let counted = super::close_day::counted_args(&args.counted)?;
    let db = ReadOnly::open(&laned::lane::config::data_dir(&args.config)?)?;
    let lane_id = db.lane_id()?.context("the database has no lane id yet")?;
    let date = match &args.date {
        Some(d) => super::close_day::date_arg("--date", d)?,
        None => {
            let config = super::operator::config_for(&args.config, &lane_id)?;
            jiff::Timestamp::now()
                .to_zoned(config.ceiling.time_zone.clone())
                .date()
                .to_string()
        }
    };
    let reports = db.x_report(&date, &counted)?;
    if args.json {
        println!(
            "{:#}",
            json!({"lane_id": lane_id, "business_date": date, "series": reports})
        );
        return Ok(());
    }
    println!("X report, lane {lane_id}, business day {date} (nothing recorded)");
    if reports.is_empty() {
        println!("  no sale, return or void has this business day");
    }
    for r in &reports {
        let state = if r.closed {
            "closed: the closing holds these figures"
        } else {
            "open"
        };
        println!("series {} ({state})", r.series);
        if let Some(f) = &r.figures {
            print!("{}", super::close_day::figures_text(&r.series, f, &r.cash));
        }
    }
    Ok(())
}

/// The day does not reconcile: the back-end's figures differ from what the
/// lane delivered. Exit code 5.
#[derive(Debug, thiserror::Error)]
#[error("the day does not reconcile: {0}")]
pub struct Difference(pub String);

/// What the back-end said, or why it could not be asked.
enum Backend {
    NotConfigured,
    Failed(String),
    Answered(Day),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.x {
        return x_report(&args);
    }
    let date = super::close_day::date_arg("--date", args.date.as_deref().unwrap_or_default())?;
    let db = ReadOnly::open(&laned::lane::config::data_dir(&args.config)?)?;
    let lane_id = db.lane_id()?.context("the database has no lane id yet")?;
    let mut lane = db.day(&date)?;
    lane.all.lane_id = lane_id.clone();
    lane.delivered.lane_id = lane_id.clone();
    let config = super::operator::config_for(&args.config, &lane_id)?;
    let backend = ask_backend(&config, &lane_id, &date)?;
    let diff = match &backend {
        Backend::Answered(b) => Some(difference(&lane.delivered, b)),
        _ => None,
    };
    let listing = match &backend {
        Backend::Answered(_) => {
            let ours = db.day_documents(&date)?;
            match list_backend(&config, &lane_id, &date)? {
                Listing::Listed(theirs) => Named::Listed(reconcile::compare(&ours, &theirs)),
                Listing::NotServed => Named::NotServed,
                Listing::Failed(e) => Named::Failed(e),
            }
        }
        _ => Named::NotAsked,
    };
    if args.json {
        let (answer, error) = match &backend {
            Backend::Answered(d) => (Some(d), None),
            Backend::Failed(e) => (None, Some(e.as_str())),
            Backend::NotConfigured => (None, Some("no backend_url is configured")),
        };
        let documents = match &listing {
            Named::Listed(n) => json!({"listed": true, "named": n}),
            Named::NotServed => json!({"listed": false,
                "error": "the back-end does not list its documents (an older contract)"}),
            Named::Failed(e) => json!({"listed": false, "error": e}),
            Named::NotAsked => json!({"listed": false}),
        };
        let reconciled = diff
            .as_ref()
            .map(|d| is_zero(d) && differing(&listing) == 0);
        let doc = json!({
            "lane_id": lane_id, "business_date": date, "lane": lane,
            "backend": answer, "backend_error": error,
            "difference": diff, "documents": documents, "reconciled": reconciled,
        });
        println!("{doc:#}");
    } else {
        print!("{}", table(&lane_id, &date, &lane, &backend, diff.as_ref()));
        print!("{}", names_text(&listing));
    }
    match (&backend, diff, &listing) {
        (Backend::Failed(e), _, _) => Err(anyhow::anyhow!(
            "the back-end could not be asked for its figures: {e}"
        )),
        (_, _, Named::Failed(e)) => Err(anyhow::anyhow!(
            "the back-end could not be asked for its documents: {e}"
        )),
        (_, Some(d), _) if !is_zero(&d) => Err(Difference(summary(&d)).into()),
        (_, Some(_), l) if differing(l) > 0 => Err(Difference(format!(
            "the back-end holds {} document(s) otherwise than the lane, with the same totals",
            differing(l)
        ))
        .into()),
        _ => Ok(()),
    }
}

/// The back-end's list of its documents for the day, every page.
enum Listing {
    Listed(Vec<HeldDocument>),
    /// `404`: a back-end of an older contract, which lists none.
    NotServed,
    Failed(String),
}

/// What the comparison named, or why there is none.
enum Named {
    NotAsked,
    NotServed,
    Failed(String),
    Listed(Vec<reconcile::Named>),
}

/// How many named documents make the day not reconcile.
fn differing(n: &Named) -> usize {
    match n {
        Named::Listed(n) => n.iter().filter(|d| d.finding.is_difference()).count(),
        _ => 0,
    }
}

/// Most pages read (a million documents at the largest page size): a
/// back-end whose cursor never ends is not followed for ever.
const MAX_PAGES: usize = 1000;

/// A client of the configured back-end, if there is one.
fn backend_client(config: &Config, lane_id: &str) -> anyhow::Result<Option<BackendClient>> {
    let Some(url) = &config.backend_url else {
        return Ok(None);
    };
    Ok(Some(BackendClient::new(
        url,
        lane_id,
        config.drain.backend_token.clone(),
        config.drain.request_timeout,
    )?))
}

fn list_backend(config: &Config, lane_id: &str, date: &str) -> anyhow::Result<Listing> {
    let Some(client) = backend_client(config, lane_id)? else {
        return Ok(Listing::NotServed);
    };
    let rt = super::operator::runtime()?;
    rt.block_on(async {
        let mut docs = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = match client
                .day_documents(lane_id, date, after.as_deref(), jiff::Timestamp::now())
                .await
            {
                Ok(p) => p,
                Err(a) if a.http_status == Some(404) && after.is_none() => {
                    return Ok(Listing::NotServed);
                }
                Err(a) => return Ok(Listing::Failed(describe(&a.outcome, a.http_status))),
            };
            docs.extend(page.documents);
            match page.next_after {
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(Listing::Listed(docs)),
            }
        }
        Ok(Listing::Failed(format!(
            "the back-end's list did not end after {MAX_PAGES} pages"
        )))
    })
}

/// The named documents, for people.
fn names_text(listing: &Named) -> String {
    let mut out = String::new();
    let named = match listing {
        Named::NotAsked => return out,
        Named::NotServed => {
            let _ = writeln!(
                out,
                "Documents: the back-end does not list them (an older contract); totals only."
            );
            return out;
        }
        Named::Failed(e) => {
            let _ = writeln!(out, "Documents: the back-end could not be asked: {e}.");
            return out;
        }
        Named::Listed(n) => n,
    };
    let (differ, info): (Vec<_>, Vec<_>) = named.iter().partition(|n| n.finding.is_difference());
    if differ.is_empty() {
        let _ = writeln!(
            out,
            "Documents: the back-end holds every delivered document with the lane's bytes."
        );
    } else {
        let _ = writeln!(out, "\nDocuments that differ ({}):", differ.len());
        for n in &differ {
            let _ = writeln!(out, "  {}", named_line(n));
        }
    }
    if !info.is_empty() {
        let _ = writeln!(out, "\nNot at the back-end, as expected ({}):", info.len());
        for n in &info {
            let _ = writeln!(out, "  {}", named_line(n));
        }
    }
    out
}

fn named_line(n: &reconcile::Named) -> String {
    use reconcile::Finding;
    let receipt = laned::lane::store::receipt_label(&n.series, n.receipt_no);
    let kind = n
        .lane
        .as_ref()
        .map(|l| l.kind.as_str())
        .or(n.backend.as_ref().map(|b| b.kind.as_str()))
        .unwrap_or("");
    let what = match n.finding {
        Finding::MissingAtBackend => format!(
            "missing at the back-end: posted here{}, not in its list",
            n.lane
                .as_ref()
                .and_then(|l| l.doc_no.as_deref())
                .map(|d| format!(" as {d}"))
                .unwrap_or_default()
        ),
        Finding::ExtraAtBackend => match &n.lane {
            None => "extra at the back-end: it holds this document, the lane has none of this id"
                .to_owned(),
            Some(l) => format!(
                "extra at the back-end: it holds this document, here it is {} (an answer was \
                 lost; the next delivery replays it)",
                l.state
            ),
        },
        Finding::Differs => {
            let mut parts = Vec::new();
            if let (Some(l), Some(b)) = (&n.lane, &n.backend) {
                for f in &n.fields {
                    parts.push(match *f {
                        "hash" => format!(
                            "bytes (hash here {}, there {})",
                            short(&l.hash),
                            short(&b.hash)
                        ),
                        "receipt_no" => format!(
                            "receipt number (here {}, there {})",
                            l.receipt_no, b.receipt_no
                        ),
                        "series" => format!("series (here {}, there {})", l.series, b.series),
                        _ => format!("kind (here {}, there {})", l.kind, b.kind),
                    });
                }
            }
            format!("differs: {}", parts.join("; "))
        }
        Finding::SettledBySupport => format!(
            "settled by support here{}; the back-end does not list it",
            n.lane
                .as_ref()
                .and_then(|l| l.doc_no.as_deref())
                .map(|d| format!(" as {d}"))
                .unwrap_or_default()
        ),
        Finding::NotDelivered => format!(
            "not delivered yet: {} here",
            n.lane.as_ref().map_or("", |l| l.state.as_str())
        ),
    };
    format!("{receipt:<16} {kind:<7} {}  {what}", n.transaction_id)
}

/// The first 12 hex digits of a hash.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn ask_backend(config: &Config, lane_id: &str, date: &str) -> anyhow::Result<Backend> {
    let Some(client) = backend_client(config, lane_id)? else {
        return Ok(Backend::NotConfigured);
    };
    let rt = super::operator::runtime()?;
    Ok(
        match rt.block_on(client.day(lane_id, date, jiff::Timestamp::now())) {
            Ok(d) => Backend::Answered(d),
            Err(a) => Backend::Failed(describe(&a.outcome, a.http_status)),
        },
    )
}

fn describe(o: &Outcome, status: Option<u16>) -> String {
    let (code, message) = match o {
        Outcome::Posted { .. } => ("unexpected", "an unexpected answer"),
        Outcome::Stuck { code, message }
        | Outcome::Retry { code, message, .. }
        | Outcome::LaneFault { code, message } => (code.as_str(), message.as_str()),
    };
    match status {
        Some(s) => format!("{message} ({code}, HTTP {s})"),
        None => format!("{message} ({code})"),
    }
}

/// The back-end's figures minus the lane's delivered ones.
fn difference(lane: &Day, backend: &Day) -> Day {
    let kind = |l: &KindTotals, b: &KindTotals| KindTotals {
        count: b.count - l.count,
        totals: minus(&b.totals, &l.totals),
    };
    Day {
        lane_id: lane.lane_id.clone(),
        business_date: lane.business_date.clone(),
        count: backend.count - lane.count,
        sales: kind(&lane.sales, &backend.sales),
        returns: kind(&lane.returns, &backend.returns),
        voids: kind(&lane.voids, &backend.voids),
        voided: kind(&lane.voided, &backend.voided),
        net: minus(&backend.net, &lane.net),
    }
}

fn minus(a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let v = a.get(k).copied().unwrap_or(0) - b.get(k).copied().unwrap_or(0);
            (k.clone(), v)
        })
        .collect()
}

fn is_zero(d: &Day) -> bool {
    let kind = |k: &KindTotals| k.count == 0 && k.totals.values().all(|v| *v == 0);
    d.count == 0
        && kind(&d.sales)
        && kind(&d.returns)
        && kind(&d.voids)
        && kind(&d.voided)
        && d.net.values().all(|v| *v == 0)
}

fn summary(d: &Day) -> String {
    let net: Vec<String> = d
        .net
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(c, v)| display(*v, c))
        .collect();
    let docs = match d.count {
        n if n < 0 => format!(
            "the back-end holds {} document(s) fewer than the lane delivered",
            -n
        ),
        n if n > 0 => format!("the back-end holds {n} document(s) more than the lane delivered"),
        _ => {
            "the back-end holds as many documents as the lane delivered, with other amounts".into()
        }
    };
    if net.is_empty() {
        docs
    } else {
        format!("{docs} (net {})", net.join(", "))
    }
}

fn table(
    lane_id: &str,
    date: &str,
    lane: &LaneDay,
    backend: &Backend,
    diff: Option<&Day>,
) -> String {
    let mut out = String::new();
    let answered = match backend {
        Backend::Answered(d) => Some(d),
        _ => None,
    };
    let _ = writeln!(out, "Business day {date}, lane {lane_id}\n");
    let mut head = format!("{:<20}{:>16}{:>16}", "", "recorded", "delivered");
    if answered.is_some() {
        let _ = write!(head, "{:>16}{:>16}", "back-end", "difference");
    }
    let _ = writeln!(out, "{}", head.trim_end());
    let mut row = |name: &str, f: &dyn Fn(&Day) -> String| {
        let mut line = format!("{name:<20}{:>16}{:>16}", f(&lane.all), f(&lane.delivered));
        if let (Some(b), Some(d)) = (answered, diff) {
            let _ = write!(line, "{:>16}{:>16}", f(b), f(d));
        }
        let _ = writeln!(out, "{line}");
    };
    row("documents", &|d: &Day| d.count.to_string());
    row("sales", &|d: &Day| d.sales.count.to_string());
    row("returns", &|d: &Day| d.returns.count.to_string());
    row("voids", &|d: &Day| d.voids.count.to_string());
    row("voided", &|d: &Day| d.voided.count.to_string());
    let mut currencies: BTreeSet<String> = lane.all.net.keys().cloned().collect();
    if let Some(b) = answered {
        currencies.extend(b.net.keys().cloned());
    }
    for c in &currencies {
        let c2 = c.clone();
        row(&format!("net {c}"), &move |d: &Day| {
            display(d.net.get(&c2).copied().unwrap_or(0), &c2)
                .trim_end_matches(&format!(" {c2}"))
                .to_owned()
        });
    }
    let states: Vec<String> = ["posted", "resolved", "pending", "stuck"]
        .iter()
        .map(|s| {
            let t = lane.by_state.get(*s).cloned().unwrap_or_default();
            let amounts: Vec<String> = t
                .totals
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(c, v)| display(*v, c))
                .collect();
            if amounts.is_empty() || t.count == 0 {
                format!("{s} {}", t.count)
            } else {
                format!("{s} {} ({})", t.count, amounts.join(", "))
            }
        })
        .collect();
    let _ = writeln!(out, "\nOn the lane by state: {}", states.join(", "));
    let waiting = lane.all.count - lane.delivered.count;
    if waiting > 0 {
        let _ = writeln!(
            out,
            "Not delivered yet: {waiting} (pending or stuck); they explain recorded minus delivered."
        );
    }
    match (backend, diff) {
        (Backend::NotConfigured, _) => {
            let _ = writeln!(out, "Back-end: not asked (no backend_url is configured).");
        }
        (Backend::Failed(e), _) => {
            let _ = writeln!(out, "Back-end: could not be asked: {e}.");
        }
        (Backend::Answered(_), Some(d)) if is_zero(d) => {
            let _ = writeln!(
                out,
                "Reconciled: the back-end holds exactly what the lane delivered."
            );
        }
        (Backend::Answered(_), Some(d)) => {
            let _ = writeln!(
                out,
                "DIFFERENCE: {}. `laned sales list --state posted` and `laned sales show ID` find the sales to check.",
                summary(d)
            );
        }
        (Backend::Answered(_), None) => {}
    }
    out
}
