//! `laned retry` and `laned resolve`: through the running daemon's admin
//! API, and under the instance lock when the daemon is down. Each change
//! is audit-logged with who and why and touches only the named sales.

use crate::common;

use common::backend::{Backend, Reply};
use serde_json::{Value, json};
use uuid::Uuid;

fn laned(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(common::laned_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG")
        .env("USER", "alice")
        .env_remove("SUDO_USER")
        .output()
        .expect("laned");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn cli(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        laned(&a, &dir)
    })
    .await
    .unwrap()
}

/// (state, doc_no) of every sale, from the database.
fn states(dir: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let c = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).unwrap();
    let mut st = c
        .prepare("SELECT transaction_id, state, doc_no FROM sales ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// (actor, action, transaction id, reason, details) of every audit entry.
fn audit(dir: &std::path::Path) -> Vec<(String, String, Option<String>, String, Value)> {
    let c = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).unwrap();
    let mut st = c
        .prepare("SELECT actor, action, transaction_id, reason, details FROM audit_log ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        let d: Option<String> = r.get(4)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            d.map(|d| serde_json::from_str(&d).unwrap())
                .unwrap_or(Value::Null),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_resolve_change_only_the_named_sales_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some("t")).await;
    let cfg = common::config_with_backend(dir.path(), &backend.url, "t");
    let lane = common::Lane::start_with(cfg).await;

    // Three sales the back-end refuses, then one it takes.
    let mut stuck = vec![];
    for i in 0..3 {
        let id = Uuid::new_v4().to_string();
        backend.script([Reply::RefuseItems(vec![(id.clone(), 422, "unknown_sku")])]);
        let (s, _) = lane
            .put(&id, &common::sale_with(&format!("S{i}"), 1, 100))
            .await;
        assert_eq!(s, 201);
        lane.until("stuck", || async { lane.sale_state(&id).await == "stuck" })
            .await;
        stuck.push(id);
    }
    let posted = lane.ring(1).await.remove(0);
    lane.until("posted", || async {
        lane.sale_state(&posted).await == "posted"
    })
    .await;
    let (a, b, c) = (&stuck[0], &stuck[1], &stuck[2]);

    // With the daemon running, retry goes through its admin API, and the
    // drain sends the sale at once (the back-end now takes it).
    // A retry says why, as the admin API requires: no reason is a usage
    // error, and nothing changes.
    let (code, _, err) = cli(&["retry", a], dir.path()).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reason"), "{err}");
    assert_eq!(lane.sale_state(a).await, "stuck");
    let (code, out, err) = cli(&["retry", a, "--reason", "catalogue fixed"], dir.path()).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(a.as_str()) && out.contains("back in the queue"),
        "{out}"
    );
    lane.until("the retried sale is posted", || async {
        lane.sale_state(a).await == "posted"
    })
    .await;

    let (code, out, err) = cli(
        &[
            "resolve",
            b,
            "--doc-no",
            "BO-77",
            "--reason",
            "posted by hand, ticket 4411",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resolved as back-end document BO-77"), "{out}");
    let (_, shown) = lane.get(&format!("/v1/sales/{b}")).await;
    assert_eq!(shown["state"], "resolved");
    assert_eq!(shown["doc_no"], "BO-77");

    // Refusals change nothing: a posted sale, an unknown one, a bad id, a
    // missing reason or document number.
    let (code, _, err) = cli(&["retry", &posted, "--reason", "again"], dir.path()).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("is posted, not stuck") && err.contains("not_stuck"),
        "{err}"
    );
    let unknown = Uuid::new_v4().to_string();
    let (code, _, err) = cli(&["retry", &unknown, "--reason", "again"], dir.path()).await;
    assert_eq!(code, 1);
    assert!(err.contains("No sale with transaction id"), "{err}");
    assert_eq!(
        cli(&["retry", "not-a-uuid", "--reason", "again"], dir.path())
            .await
            .0,
        2
    );
    assert_eq!(cli(&["retry"], dir.path()).await.0, 2);
    assert_eq!(cli(&["resolve", c, "--doc-no", "X"], dir.path()).await.0, 2);
    assert_eq!(
        cli(
            &["resolve", c, "--doc-no", " ", "--reason", "r"],
            dir.path()
        )
        .await
        .0,
        2
    );
    // The admin API checks the same things itself.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let http = common::client();
    let r = http
        .post(format!("{}/v1/admin/sales/{c}/resolve", lane.base))
        .bearer_auth(token.trim())
        .json(&json!({"reason": "no number"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "validation_failed"
    );
    let r = http
        .post(format!("{}/v1/admin/sales/{c}/retry", lane.base))
        .json(&json!({"reason": "no token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(lane.sale_state(c).await, "stuck");
    lane.stop().await;

    // With the daemon down, the command takes the instance lock itself.
    let (code, out, err) = cli(
        &["retry", "--all-stuck", "--reason", "SKU list fixed"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(c.as_str()), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out, _) = cli(&["retry", "--all-stuck", "--reason", "again"], dir.path()).await;
    assert_eq!(code, 0);
    assert!(out.contains("nothing to retry"), "{out}");
    let (code, _, err) = cli(
        &["resolve", c, "--doc-no", "BO-78", "--reason", "too late"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("is pending, not stuck"), "{err}");

    let want = [
        (a, "posted"),
        (b, "resolved"),
        (c, "pending"),
        (&posted, "posted"),
    ];
    let got = states(dir.path());
    assert_eq!(
        got.iter().map(|s| (&s.0, s.1.as_str())).collect::<Vec<_>>(),
        want.to_vec()
    );
    assert_eq!(got[1].2.as_deref(), Some("BO-77"));

    let log = audit(dir.path());
    let log: Vec<_> = log.into_iter().filter(|e| e.1 != "sync").collect();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].0, "cli:alice");
    assert_eq!(log[0].1, "retry");
    assert_eq!(log[0].2.as_deref(), Some(a.as_str()));
    assert_eq!(log[0].3, "catalogue fixed");
    assert_eq!(log[1].1, "resolve");
    assert_eq!(log[1].2.as_deref(), Some(b.as_str()));
    assert_eq!(log[1].3, "posted by hand, ticket 4411");
    assert_eq!(log[1].4["doc_no"], "BO-77");
    assert_eq!(log[1].4["last_error_code"], "unknown_sku");
    assert_eq!(log[2].0, "cli:alice");
    assert_eq!(log[2].1, "retry");
    assert_eq!(log[2].2.as_deref(), Some(c.as_str()));
    assert_eq!(log[2].3, "SKU list fixed");
}
