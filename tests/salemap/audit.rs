//! The audit bundle (docs/journal.md, "The audit bundle"): a real lane
//! rings and closes two days into salemap (SQLite and PostgreSQL); the
//! real `salemap audit` writes the lane's bundle; the real `laned verify
//! --bundle` and the Python verifier of docs/journal.md prove it, and with
//! one byte changed anywhere (seeded positions) neither does.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Lane;
use common::salemap::Salemap;
use laned::salemap::{Database, Lanes};
use serde_json::{Value, json};
use uuid::Uuid;

use super::posting::{Backing, both, postgres, sqlite};

const TOKEN: &str = "audit-token";
const EXIT_NOT_PROVEN: i32 = 8;

both!(a_clean_bundle_is_proven_and_one_changed_byte_anywhere_is_not);

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .env_remove("LANED_CONFIG")
        .env("TZ", "UTC")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run_async(bin: &'static str, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(bin, &args)
    })
    .await
    .unwrap()
}

/// A Python with the `cryptography` package: `LANED_PYTHON` (CI's
/// virtualenv) or `python3`; `None` (said visibly) when there is none,
/// a failure under `LANED_REQUIRE_PYTHON_CRYPTOGRAPHY=1`.
fn python() -> Option<String> {
    let python = std::env::var("LANED_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var("LANED_REQUIRE_PYTHON_CRYPTOGRAPHY").as_deref() != Ok("1"),
        "LANED_REQUIRE_PYTHON_CRYPTOGRAPHY=1 but {python} cannot import cryptography"
    );
    common::skipped(
        "the Python bundle verifier",
        &format!("{python} has no cryptography package (pip install cryptography)"),
        "LANED_REQUIRE_PYTHON_CRYPTOGRAPHY",
    );
    None
}

/// Rings a sale of `price` on business day `date`.
async fn ring_on(lane: &Lane, price: i64, date: &str) {
    let mut sale = common::sale_with("A", 1, price);
    sale["business_date"] = json!(date);
    let (s, b) = lane.put(&Uuid::new_v4().to_string(), &sale).await;
    assert_eq!(s, 201, "{b}");
}

/// salemap's database and signing key as `salemap audit` takes them.
fn store_args(b: &Backing, dir: &Path) -> Vec<String> {
    match &b.db {
        // The key beside the database, where salemap made it.
        Database::Sqlite(path) => vec!["--database".into(), format!("sqlite:{}", path.display())],
        Database::Postgres { url, .. } => {
            let key = dir.join("pg.key");
            std::fs::write(
                &key,
                laned::contract::ack::Signing::from_seed(&[42; 32]).to_hex(),
            )
            .unwrap();
            vec![
                "--database".into(),
                url.clone(),
                "--signing-key".into(),
                key.display().to_string(),
            ]
        }
    }
}

async fn audit(b: &Backing, dir: &Path, out: &Path, to: &str) -> (i32, String, String) {
    let mut args = vec!["audit".to_owned()];
    args.extend(store_args(b, dir));
    args.extend(
        [
            "--lane",
            "L03",
            "--from",
            "2026-11-21",
            "--to",
            to,
            "-o",
            &out.display().to_string(),
        ]
        .map(str::to_owned),
    );
    run_async(common::salemap_bin(), args).await
}

async fn verify(bundle: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "verify".to_owned(),
        "--bundle".to_owned(),
        bundle.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    run_async(common::laned_bin(), args).await
}

async fn a_clean_bundle_is_proven_and_one_changed_byte_anywhere_is_not(b: Backing) {
    use rand::{RngExt, SeedableRng};
    let seed = common::seed("a_clean_bundle_is_proven_and_one_changed_byte_anywhere_is_not");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let lane_dir = dir.path().join("lane");
    let lane = Lane::start_with(common::config_with_backend(&lane_dir, &sm.url, TOKEN)).await;
    // Two days, each closed by the real `laned close-day`; a sale of the
    // third day after them.
    for (day, prices) in [
        ("2026-11-21", &[500, 1_400, 250][..]),
        ("2026-11-22", &[700, 900][..]),
    ] {
        for p in prices {
            ring_on(&lane, *p, day).await;
        }
        let (code, out, err) = run_async(
            common::laned_bin(),
            ["close-day", "--date", day, "--data-dir"]
                .map(str::to_owned)
                .into_iter()
                .chain([lane_dir.display().to_string()])
                .collect(),
        )
        .await;
        assert_eq!(code, 0, "{out}{err}");
    }
    ring_on(&lane, 100, "2026-11-23").await;
    // Head office holds all of it, both days certified.
    let (_, public, _) = common::salemap::keys(&sm.url, TOKEN).await;
    lane.until("both days certified at head office", || async {
        let d: Value = common::client()
            .get(format!("{}/v1/lanes/L03", sm.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        d["series"][0]["certified"] == 2 && d["series"][0]["highest_receipt_no"] == 6
    })
    .await;
    lane.stop().await;
    sm.stop().await;

    // The bundle through 2026-11-22: 5 sales and 2 closings, not the sale
    // of the 23rd.
    let bundle = dir.path().join("L03.ndjson");
    let (code, out, err) = audit(&b, dir.path(), &bundle, "2026-11-22").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("7 documents, 2 day certificates"),
        "{out}{err}"
    );
    let (code, out, err) = verify(&bundle, &["--key", &public.public_key]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "bundle: sealed by key {} of tenant default (lane L03, days 2026-11-21..2026-11-22",
            public.key_id
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "series L03: PROVEN: 7 documents held by the back-end, each acknowledged, chain \
             unbroken from the series' first document, receipts 1..5, closings 1..2 (closed \
             through 2026-11-22); 2026-11-21..2026-11-22: 7 documents, 2 days closed, 2 certified"
        ),
        "{out}"
    );
    // Another key than head office's: not proven.
    let other = laned::contract::ack::Signing::from_seed(&[1; 32]);
    let (code, out, _) = verify(&bundle, &["--key", &other.public().key_id]).await;
    assert_eq!(code, EXIT_NOT_PROVEN, "{out}");
    assert!(out.contains("not by the key given"), "{out}");
    // Never over a file.
    let (code, _, err) = audit(&b, dir.path(), &bundle, "2026-11-22").await;
    assert_eq!(code, 2, "{err}");

    let python = python();
    let script = crate::binaries::journal::python_script(dir.path(), "verify_bundle.py");
    let py = |file: &Path, key: &str| {
        let out = Command::new(python.as_deref().unwrap_or("python3"))
            .arg(&script)
            .arg(file)
            .arg(key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    if python.is_some() {
        let (code, out) = py(&bundle, &public.public_key);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains("series L03: chain unbroken; receipts 1..5, closings 1..2"),
            "{out}"
        );
        assert!(out.contains(": PROVEN"), "{out}");
    }

    // One byte changed, at seeded places of every kind of line.
    let bytes = std::fs::read(&bundle).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|i| *i < bytes.len())
        .collect();
    let mut places: Vec<usize> = starts
        .windows(2)
        .map(|w| rng.random_range(w[0]..w[1]))
        .collect();
    places.push(rng.random_range(*starts.last().unwrap()..bytes.len()));
    for _ in 0..6 {
        places.push(rng.random_range(0..bytes.len()));
    }
    for at in places {
        let mut changed = bytes.clone();
        changed[at] = match changed[at] {
            b'0'..=b'8' | b'a'..=b'e' | b'A'..=b'Y' => changed[at] + 1,
            _ => changed[at] ^ 0x01,
        };
        let file: PathBuf = dir.path().join(format!("changed-{at}.ndjson"));
        std::fs::write(&file, &changed).unwrap();
        let (code, out, err) = verify(&file, &[]).await;
        assert!(
            code == EXIT_NOT_PROVEN || code == 2,
            "seed {seed}: byte {at} ({:?}) changed, laned verify --bundle exit {code}: {out}{err}",
            char::from(bytes[at])
        );
        if python.is_some() {
            let (code, out) = py(&file, &public.key_id);
            assert_ne!(code, Some(0), "seed {seed}: byte {at} changed: {out}");
        }
    }
}
