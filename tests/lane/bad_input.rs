//! Invariant 7: bad input gets a clear 4xx with a stable code, and changes
//! nothing; the daemon keeps serving.

use crate::common;

use common::{Lane, sale};
use serde_json::{Value, json};
use uuid::Uuid;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    host: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// For 422: the field paths that must be named.
    fields: &'static [&'static str],
}

fn put(
    name: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    fields: &'static [&'static str],
) -> Case {
    Case {
        name,
        method: "PUT",
        path: format!("/v1/sales/{}", Uuid::new_v4()),
        content_type: Some("application/json"),
        host: None,
        headers: vec![],
        body: body.to_string().into_bytes(),
        status,
        code,
        fields,
    }
}

fn edit(f: impl FnOnce(&mut Value)) -> Value {
    let mut s = sale();
    f(&mut s);
    s
}

fn cases() -> Vec<Case> {
    let raw = |name, body: &[u8], status, code| Case {
        body: body.to_vec(),
        ..put(name, Value::Null, status, code, &[])
    };
    let valid = sale().to_string().into_bytes();
    let mut v = vec![
        raw(
            "malformed JSON",
            br#"{"kind": "sale", "#,
            400,
            "invalid_json",
        ),
        raw("empty body", b"", 400, "invalid_json"),
        raw("not UTF-8", b"\xff\xfe{}", 400, "invalid_json"),
        put(
            "a JSON array",
            json!([1, 2]),
            422,
            "validation_failed",
            &[""],
        ),
        put(
            "total as a string",
            edit(|s| s["total"] = json!("25000")),
            422,
            "validation_failed",
            &["total"],
        ),
        put(
            "unit price as a float",
            edit(|s| s["lines"][0]["unit_price"] = json!(125.0)),
            422,
            "validation_failed",
            &["lines[0].unit_price"],
        ),
        put(
            "fractional amount",
            edit(|s| s["lines"][0]["amount"] = json!(250.5)),
            422,
            "validation_failed",
            &["lines[0].amount"],
        ),
        put(
            "payment as a string",
            edit(|s| s["payments"][0]["amount"] = json!("300.00")),
            422,
            "validation_failed",
            &["payments[0].amount"],
        ),
        put(
            "negative discount",
            edit(|s| s["lines"][0]["discount"] = json!(-100)),
            422,
            "validation_failed",
            &["lines[0].discount"],
        ),
        put(
            "negative change",
            edit(|s| s["change"] = json!(-5000)),
            422,
            "validation_failed",
            &["change"],
        ),
        put(
            "line amount does not add up",
            edit(|s| s["lines"][0]["amount"] = json!(25_001)),
            422,
            "validation_failed",
            &["lines[0].amount"],
        ),
        put(
            "total does not add up",
            edit(|s| s["total"] = json!(20_000)),
            422,
            "validation_failed",
            &["total"],
        ),
        put(
            "payments short of the total",
            edit(|s| s["payments"][0]["amount"] = json!(20_000)),
            422,
            "validation_failed",
            &["payments"],
        ),
        put(
            "discount larger than the line",
            edit(|s| s["lines"][0]["discount"] = json!(30_000)),
            422,
            "validation_failed",
            &["lines[0].amount"],
        ),
        put(
            "amount beyond i64",
            edit(|s| s["total"] = json!(1e20)),
            422,
            "validation_failed",
            &["total"],
        ),
        put(
            "quantity as a number",
            edit(|s| s["lines"][0]["quantity"] = json!(2)),
            422,
            "validation_failed",
            &["lines[0].quantity"],
        ),
        put(
            "quantity zero",
            edit(|s| s["lines"][0]["quantity"] = json!("0")),
            422,
            "validation_failed",
            &["lines[0].quantity"],
        ),
        put(
            "unknown kind",
            edit(|s| s["kind"] = json!("refund")),
            422,
            "validation_failed",
            &["kind"],
        ),
        put(
            "return without references",
            edit(|s| s["kind"] = json!("return")),
            422,
            "validation_failed",
            &["references"],
        ),
        put(
            "sale with references",
            edit(|s| s["references"] = json!(Uuid::new_v4())),
            422,
            "validation_failed",
            &["references"],
        ),
        put(
            "void with lines",
            edit(|s| {
                s["kind"] = json!("void");
                s["references"] = json!(Uuid::new_v4());
            }),
            422,
            "validation_failed",
            &["lines", "payments", "total", "change"],
        ),
        put(
            "no lines",
            edit(|s| s["lines"] = json!([])),
            422,
            "validation_failed",
            &["lines"],
        ),
        put(
            "unknown field",
            edit(|s| s["colour"] = json!("red")),
            422,
            "validation_failed",
            &["colour"],
        ),
        put(
            "unknown line field",
            edit(|s| s["lines"][0]["vat"] = json!(16)),
            422,
            "validation_failed",
            &["lines[0].vat"],
        ),
        put(
            "bad business date",
            edit(|s| s["business_date"] = json!("2026-02-30")),
            422,
            "validation_failed",
            &["business_date"],
        ),
        put(
            "time without offset",
            edit(|s| s["occurred_at"] = json!("2026-11-22T14:03:11")),
            422,
            "validation_failed",
            &["occurred_at"],
        ),
        put(
            "lower-case currency",
            edit(|s| s["currency"] = json!("kes")),
            422,
            "validation_failed",
            &["currency"],
        ),
        put(
            "oversized extra",
            edit(|s| s["extra"] = json!({"blob": "x".repeat(9000)})),
            422,
            "validation_failed",
            &["extra"],
        ),
        put(
            "control character in sku",
            edit(|s| s["lines"][0]["sku"] = json!("A\u{0007}B")),
            422,
            "validation_failed",
            &["lines[0].sku"],
        ),
        Case {
            body: {
                let mut big = sale();
                big["extra"] = json!({"pad": "y".repeat(2 * 1024 * 1024)});
                big.to_string().into_bytes()
            },
            ..put("oversized body", Value::Null, 413, "payload_too_large", &[])
        },
        Case {
            path: "/v1/sales/6ba7b810-9dad-11d1-80b4-00c04fd430c8".into(),
            body: valid.clone(),
            ..put(
                "a v1 UUID as id",
                Value::Null,
                400,
                "invalid_transaction_id",
                &[],
            )
        },
        Case {
            path: "/v1/sales/12345".into(),
            body: valid.clone(),
            ..put(
                "a malformed id",
                Value::Null,
                400,
                "invalid_transaction_id",
                &[],
            )
        },
        Case {
            path: "/v1/sales/6ba7b8109dad41d180b400c04fd430c8".into(),
            body: valid.clone(),
            ..put(
                "an unhyphenated id",
                Value::Null,
                400,
                "invalid_transaction_id",
                &[],
            )
        },
        Case {
            content_type: Some("text/plain"),
            body: valid.clone(),
            ..put(
                "text/plain",
                Value::Null,
                415,
                "unsupported_media_type",
                &[],
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            body: valid.clone(),
            ..put(
                "a form post",
                Value::Null,
                415,
                "unsupported_media_type",
                &[],
            )
        },
        Case {
            content_type: None,
            body: valid.clone(),
            ..put(
                "no content type",
                Value::Null,
                415,
                "unsupported_media_type",
                &[],
            )
        },
        Case {
            host: Some("evil.example"),
            body: valid.clone(),
            ..put("foreign Host", Value::Null, 403, "forbidden_host", &[])
        },
        Case {
            host: Some("127.0.0.1.nip.example:7410"),
            body: valid.clone(),
            ..put("rebinding Host", Value::Null, 403, "forbidden_host", &[])
        },
        Case {
            method: "POST",
            path: "/v1/sales".into(),
            headers: vec![("Idempotency-Key", "k".repeat(300))],
            body: valid.clone(),
            ..put(
                "overlong Idempotency-Key",
                Value::Null,
                422,
                "validation_failed",
                &["Idempotency-Key"],
            )
        },
        Case {
            method: "DELETE",
            path: "/v1/status".into(),
            body: vec![],
            ..put("wrong method", Value::Null, 405, "method_not_allowed", &[])
        },
        Case {
            method: "DELETE",
            path: "/v1/status".into(),
            content_type: None,
            body: vec![],
            ..put(
                "wrong method, no content type",
                Value::Null,
                405,
                "method_not_allowed",
                &[],
            )
        },
        Case {
            path: "/v1/nowhere".into(),
            content_type: None,
            body: valid.clone(),
            ..put(
                "unknown path, no content type",
                Value::Null,
                404,
                "not_found",
                &[],
            )
        },
        Case {
            method: "GET",
            path: "/v1/nothing".into(),
            body: vec![],
            ..put("unknown path", Value::Null, 404, "not_found", &[])
        },
    ];
    // The same checks hold on POST /v1/sales.
    v.push(Case {
        method: "POST",
        path: "/v1/sales".into(),
        ..put(
            "float on POST",
            edit(|s| s["total"] = json!(250.0)),
            422,
            "validation_failed",
            &["total"],
        )
    });
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_documented_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let mut failures = vec![];
    for c in cases() {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        // The oversized body gets a client of its own: the server closes
        // that connection, which must not be pooled for the next case.
        let http = if c.status == 413 {
            common::client()
        } else {
            lane.http.clone()
        };
        let build = || {
            let mut rq = http
                .request(method.clone(), format!("{}{}", lane.base, c.path))
                .body(c.body.clone());
            if let Some(ct) = c.content_type {
                rq = rq.header("content-type", ct);
            }
            if let Some(h) = c.host {
                rq = rq.header("host", h);
            }
            for (k, v) in &c.headers {
                rq = rq.header(*k, v);
            }
            rq
        };
        // A server may close the connection after refusing an oversized
        // body while the client is still sending it; the client then sees
        // a reset instead of the 413. Ask again: the 413 must come.
        let mut sent = build().send().await;
        for _ in 0..5 {
            match &sent {
                Err(e) if c.status == 413 && (e.is_request() || e.is_body()) => {
                    sent = build().send().await;
                }
                _ => break,
            }
        }
        let r = sent.unwrap_or_else(|e| panic!("{}: no answer: {e}", c.name));
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let fields: Vec<&str> = body["details"]["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        let ok = status == c.status
            && body["code"] == c.code
            && body["message"].as_str().is_some_and(|m| m.len() > 10)
            && c.fields.iter().all(|f| fields.contains(f));
        if !ok {
            failures.push(format!("{}: got {status} {body}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let st = lane.status().await;
    assert_eq!(st["counts"]["pending"], 0, "bad input stored something");
    assert_eq!(
        st["last_receipt_no"],
        json!({}),
        "bad input took a receipt number"
    );
    // Still serving, and the next good sale gets number 1.
    let (s, b) = lane.put(&Uuid::new_v4().to_string(), &sale()).await;
    assert_eq!((s, b["receipt_no"].as_i64()), (201, Some(1)));
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_with_a_token_refuses_requests_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.api_token = Some(common::secret("t0ken-for-tests"));
    let lane = Lane::start_with(cfg).await;
    let url = format!("{}/v1/sales/{}", lane.base, Uuid::new_v4());
    let status_url = format!("{}/v1/status", lane.base);
    // (request, token sent) → status
    let send = |method: reqwest::Method, url: &str, token: Option<&str>| {
        let mut rq = lane.http.request(method.clone(), url);
        if method == reqwest::Method::PUT {
            rq = rq.json(&sale());
        }
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        async move { rq.send().await.unwrap() }
    };
    let r = send(reqwest::Method::PUT, &url, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    assert_eq!(
        send(reqwest::Method::PUT, &url, Some("wrong"))
            .await
            .status(),
        401
    );
    assert_eq!(
        send(reqwest::Method::GET, &status_url, None).await.status(),
        401
    );
    assert_eq!(
        send(reqwest::Method::PUT, &url, Some("t0ken-for-tests"))
            .await
            .status(),
        201
    );
    lane.stop().await;
}

/// A query laned cannot use is `400 invalid_query` with a sentence a
/// person can read (no parser's text, no field named twice), whatever is
/// wrong with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_are_400_with_a_plain_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    for (query, mentions) in [
        ("bogus=1", "bogus"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("state=done", "pending, posted, stuck, resolved or all"),
        ("limit=1&limit=2", "limit"),
        ("%zz=1", "query"),
    ] {
        let (status, body) = lane.get(&format!("/v1/sales?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_query")),
            "{query}: {body}"
        );
        let m = body["message"].as_str().unwrap_or_default();
        assert!(m.contains(mentions), "{query}: {m}");
        for leak in ["deserialize", "Failed", "expected one of", "invalid digit"] {
            assert!(!m.contains(leak), "{query}: {m}");
        }
        let words: Vec<&str> = m.split_whitespace().collect();
        assert!(
            words.windows(2).all(|w| w[0] != w[1]),
            "{query}: a word repeated in {m:?}"
        );
    }
    lane.stop().await;
}
