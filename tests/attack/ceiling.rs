//! The sync ceiling under crashes and clock moves: the link to head office
//! is cut for longer than the ceiling, and meanwhile laned is killed
//! (`kill -9`) or stopped and started again with its wall clock moved back
//! (up to three days) or forward, through libfaketime. No sale may be
//! taken once the link has been down longer than the ceiling, however the
//! clock was moved; once the link is back the lane sells again, and
//! nothing is lost.

use std::time::{Duration, Instant};

use laned::salemap::Database;
use rand::{RngExt, SeedableRng};

use crate::{Rig, Setup, Tills, any_batch, common, drained, judge, scale, tills};

/// The ceiling of this attack, and its warning.
const CEILING: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_clock_move_or_crash_stretches_the_sync_ceiling() {
    let Some(lib) = common::faketime::preload("the sync ceiling under clock moves") else {
        return;
    };
    let seed = common::seed("no_clock_move_or_crash_stretches_the_sync_ceiling");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    let lane_dir = dir.path().join("lane");
    let batch = any_batch(&mut rng);
    let laned_env = [
        ("LANED_SYNC_CEILING", format!("{}s", CEILING.as_secs())),
        ("LANED_WARN_AFTER", format!("{}s", CEILING.as_secs() / 2)),
    ];
    let Rig {
        mut backend,
        proxy,
        mut lane,
        base,
        ..
    } = Rig::start(
        dir.path(),
        &db,
        &lane_dir,
        seed,
        batch,
        Setup {
            laned_env: &laned_env,
            ..Setup::default()
        },
    )
    .await;
    let ledger = tills::Shared::default();
    let tills = Tills::start(0..2 + scale, &base, seed, &ledger, &["lane_suspended"]);

    let (mut offset, mut moves, mut cuts) = (0i64, 0u32, Vec::new());
    for _ in 0..scale {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        // The link goes down for the ceiling and then some.
        proxy.cut(true);
        let cut = Instant::now();
        let down_for = CEILING + Duration::from_millis(rng.random_range(3000..8000));
        while cut.elapsed() < down_for {
            // Runs of every length: bursts of short ones (a lane that
            // keeps crashing) and longer ones.
            let run = if rng.random_bool(0.5) {
                rng.random_range(50..300)
            } else {
                rng.random_range(300..1500)
            };
            tokio::time::sleep(Duration::from_millis(run)).await;
            // A crash or a clean stop, and a start with the clock moved.
            if rng.random_bool(0.8) {
                lane.kill9();
            } else {
                lane.stop();
            }
            // Down for a while (a power cut, a reboot of the till
            // software): time the lane must count although it did not run.
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
            offset += if rng.random_bool(0.7) {
                -rng.random_range(60..3 * 86_400)
            } else {
                rng.random_range(1..3600)
            };
            moves += 1;
            lane.start(Some((&lib, offset)));
        }
        cuts.push((cut, Instant::now()));
        proxy.cut(false);
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(1000..2000))).await;
    tills.finish().await;
    let drain = drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();

    let ledger = ledger.take();
    // A till may be told a moment after the lane decided (its request in
    // flight): a second of grace on top of the ceiling.
    let grace = Duration::from_secs(1);
    let past: Vec<String> = ledger
        .acked
        .iter()
        .filter_map(|a| {
            cuts.iter()
                .find(|(cut, mended)| a.at > *cut + CEILING + grace && a.at < *mended)
                .map(|(cut, _)| {
                    format!(
                        "{} (receipt {}) taken {:.1?} after the link was cut",
                        a.transaction_id,
                        a.receipt_no,
                        a.at - *cut
                    )
                })
        })
        .collect();
    let suspended = ledger.refused.get("lane_suspended").copied().unwrap_or(0);
    assert!(
        past.is_empty(),
        "seed {seed}: sold past the sync ceiling of {CEILING:?} ({} sales):\n{}",
        past.len(),
        past.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        suspended > 0,
        "seed {seed}: the lane never refused a sale although the link was down past the ceiling"
    );
    let title = format!(
        "the sync ceiling ({CEILING:?}) under crashes and clock moves, seed {seed}, scale {scale}\n  \
         link cut {} times past the ceiling; laned stopped or killed and its clock moved {moves} \
         times (kill -9: {}); sales refused lane_suspended: {suspended}; sold past the ceiling: 0\n  \
         backlog drained {drain:.1?} after the link was mended",
        cuts.len(),
        lane.kills
    );
    let logs = [("laned", lane.logs()), ("salemap", backend.logs())];
    judge(&title, ledger, &lane_dir, &db, &logs, None).await;
}
