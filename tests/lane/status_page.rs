//! The status page at `/` for store staff: plain words through the lane's
//! states (driven by the `Clock` seam), no external assets and no secret
//! in the page, and a real headless Chromium that reads the same figures
//! as `/v1/status`, presses "Sync now" and saves a screenshot.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::Lane;
use common::backend::{Backend, Reply};
use common::browser::{self, browser, chromium};
use laned::common::clock::{Clock, ManualClock};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "t";

fn cfg(dir: &std::path::Path, backend: &Backend) -> laned::lane::config::Config {
    let mut c = common::config_with_backend(dir, &backend.url, TOKEN);
    c.drain.backoff_base = Duration::from_secs(1);
    c.drain.backoff_cap = Duration::from_secs(16);
    c.drain.heartbeat_interval = Duration::from_secs(300);
    c.ceiling.time_zone = jiff::tz::TimeZone::UTC;
    c
}

async fn page(lane: &Lane) -> (reqwest::header::HeaderMap, String) {
    let r = lane
        .http
        .get(format!("{}/", lane.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (headers, r.text().await.unwrap())
}

/// The text of the element with this id (the page's markup is ours: an
/// element with an id is on one line).
fn by_id(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    unescape(html[start..end].trim())
}

/// Text as the browser shows it: the page escapes what askama escapes.
fn unescape(s: &str) -> String {
    s.replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_in_plain_words_how_long_until_sales_stop() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let lane = Lane::start_with_clock(cfg(dir.path(), &backend), clock.clone()).await;
    lane.until("online", || async {
        lane.status().await["lane_state"] == "online"
    })
    .await;
    let (headers, html) = page(&lane).await;
    assert_eq!(by_id(&html, "headline"), "Connected");
    assert!(html.contains("class=\"banner ok\""));
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // Nothing is loaded from elsewhere, and no secret is in the page.
    for needle in ["src=", "href=", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(needle), "the page contains {needle:?}");
    }
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    assert!(!html.contains(admin.trim()));
    assert!(!html.contains(TOKEN) || !html.contains(&format!("Bearer {TOKEN}")));

    // Head office goes away: 20 h 48 min later, 3 h 12 min are left.
    backend.set_down(true);
    assert_eq!(lane.ring(1).await.len(), 1);
    lane.until("the failure is recorded", || async {
        !lane.status().await["backend"]["last_error"].is_null()
    })
    .await;
    clock.advance(Duration::from_secs(20 * 3600 + 48 * 60));
    let (_, html) = page(&lane).await;
    assert_eq!(
        by_id(&html, "headline"),
        "Offline — 3 h 12 min until sales stop"
    );
    assert!(html.contains("class=\"banner warn\""));
    assert_eq!(by_id(&html, "last-sync"), "20 h 48 min ago");

    clock.advance(Duration::from_secs(3 * 3600 + 12 * 60));
    let (_, html) = page(&lane).await;
    assert_eq!(by_id(&html, "headline"), "Sales stopped: no sync for 24 h");
    assert!(html.contains("class=\"banner stop\""));
    assert!(
        by_id(&html, "detail").starts_with("This till has not reached head office for 1 day"),
        "{}",
        by_id(&html, "detail")
    );
    // The page's "Sync now" needs JSON, as every write does.
    let r = lane
        .http
        .post(format!("{}/v1/status/sync", lane.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

/// A sale of 7.00 KES that head office refuses with `code`, once stuck.
async fn refused_sale(lane: &Lane, backend: &Backend, code: &'static str) -> String {
    let stuck = Uuid::new_v4().to_string();
    backend.script([Reply::RefuseItems(vec![(stuck.clone(), 422, code)])]);
    assert_eq!(
        lane.put(&stuck, &common::sale_with("S1", 1, 700)).await.0,
        201
    );
    lane.until("stuck", || async {
        lane.sale_state(&stuck).await == "stuck"
    })
    .await;
    stuck
}

async fn page_in(lane: &Lane, language: &str) -> String {
    let r = lane
        .http
        .get(format!("{}/", lane.base))
        .header("Accept-Language", language)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["vary"], "Accept-Language");
    r.text().await.unwrap()
}

/// The banner's colour class and its trouble's code.
fn banner(html: &str) -> (String, String) {
    let at = html.find("id=\"lane-state\"").expect("a banner");
    let tag = &html[html[..at].rfind('<').unwrap()..at + html[at..].find('>').unwrap()];
    let attr = |name: &str| {
        let from = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        tag[from..from + tag[from..].find('"').unwrap()].to_owned()
    };
    (attr("class"), attr("data-trouble"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_shows_the_worst_thing_on_the_lane_in_the_readers_language() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let mut config = cfg(dir.path(), &backend);
    config.ceiling.time_zone = jiff::tz::TimeZone::get("Africa/Nairobi").unwrap();
    let lane = Lane::start_with_clock(config, clock.clone()).await;
    lane.until("online", || async {
        lane.status().await["lane_state"] == "online"
    })
    .await;
    // The footer's time is the store's (Nairobi, UTC+3), not UTC.
    let html = page_in(&lane, "en").await;
    assert!(
        by_id(&html, "footer").contains("2026-11-22 13:00:00 EAT"),
        "{}",
        by_id(&html, "footer")
    );

    // A sale head office refuses: the lane is online, but someone must act.
    refused_sale(&lane, &backend, "receipt_no_conflict").await;
    let html = page_in(&lane, "en-GB,en;q=0.9").await;
    assert_eq!(banner(&html), ("banner act".into(), "stuck_sales".into()));
    assert_eq!(by_id(&html, "headline"), "1 sale needs attention");
    assert!(by_id(&html, "detail").contains("Call support to fix and resend it"));
    // The refusal in a cashier's words, the code behind a fold; the
    // receipt number does not wrap; the amount names its currency once.
    assert!(unescape(&html).contains(
        "Head office already has a sale with this receipt number. Call support; nothing is lost."
    ));
    assert!(html.contains("<summary>Details for support</summary><code>receipt_no_conflict: "));
    assert!(
        html.contains("<td class=\"receipt\">L03-000001</td>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"num\">7.00 KES</td>"));
    assert_eq!(lane.status().await["verdict"], "attention");

    // The same page in Ukrainian and in Swahili; the codes stay English.
    let uk = page_in(&lane, "uk-UA,uk;q=0.9,en;q=0.5").await;
    assert!(uk.contains("<html lang=\"uk\">"));
    assert_eq!(by_id(&uk, "headline"), "1 продаж потребує уваги");
    assert!(unescape(&uk).contains("У головному офісі вже є продаж із цим номером чека."));
    assert_eq!(banner(&uk).1, "stuck_sales");
    let sw = page_in(&lane, "sw").await;
    assert_eq!(by_id(&sw, "headline"), "Uuzaji 1 unahitaji uangalizi");
    // A language laned does not speak: the lane's own (English here).
    let de = page_in(&lane, "de-DE").await;
    assert_eq!(by_id(&de, "headline"), "1 sale needs attention");

    // Head office refuses the till itself: worse news first, the stuck
    // sale below it.
    backend.script([Reply::Status(
        401,
        json!({"code": "unauthorized", "message": "bad token"}),
        vec![],
    )]);
    lane.ring(1).await;
    lane.until("the lane fault", || async {
        !lane.status().await["backend"]["fault"].is_null()
    })
    .await;
    let html = page_in(&lane, "en").await;
    assert_eq!(banner(&html), ("banner act".into(), "lane_fault".into()));
    assert_eq!(
        by_id(&html, "headline"),
        "Sales are not reaching head office"
    );
    assert!(
        by_id(&html, "detail").starts_with("Head office does not accept this till's access key.")
    );
    assert!(html.contains("<details id=\"banner-technical\">"));
    assert!(html.contains("data-trouble=\"stuck_sales\""));

    // The till's clock is set back: the lane still sells, staff are told.
    let lane_2 = {
        lane.stop().await;
        let backend = Backend::start(Some(TOKEN)).await;
        let dir = tempfile::tempdir().unwrap();
        let lane = Lane::start_with_clock(cfg(dir.path(), &backend), clock.clone()).await;
        lane.until("online", || async {
            lane.status().await["lane_state"] == "online"
        })
        .await;
        clock.set_wall(clock.wall() - Duration::from_secs(2 * 3600));
        lane.until("the set-back is seen", || async {
            lane.status().await["ceiling"]["clock_anomalies"]["count"] == 1
        })
        .await;
        (lane, backend, dir)
    };
    let html = page_in(&lane_2.0, "en").await;
    assert_eq!(
        banner(&html),
        ("banner warn".into(), "clock_set_back".into())
    );
    assert_eq!(by_id(&html, "headline"), "The till's clock was set back");
    assert!(
        unescape(&html).contains("The till's clock has been set back once, last "),
        "{html}"
    );
    lane_2.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_finds_the_status_figures_and_presses_sync_now() {
    let Some((driver_path, chrome)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let lane = Lane::start_with(cfg(dir.path(), &backend)).await;

    // One sale head office refuses, one it takes, then two while it is down.
    let stuck = refused_sale(&lane, &backend, "unknown_sku").await;
    let posted = lane.ring(1).await.remove(0);
    lane.until("posted", || async {
        lane.sale_state(&posted).await == "posted"
    })
    .await;
    backend.set_down(true);
    for (sku, price) in [("S3", 1_250), ("S4", 99_999)] {
        let id = Uuid::new_v4().to_string();
        assert_eq!(
            lane.put(&id, &common::sale_with(sku, 2, price)).await.0,
            201
        );
    }
    let status = lane.status().await;
    assert_eq!(status["counts"]["pending"], 2, "{status}");

    let (driver, web, _profile) =
        browser::open(driver_path, &chrome, "en-US,en", &format!("{}/", lane.base)).await;

    let text = |id: &'static str| {
        let web = web.clone();
        async move { browser::text(&web, &format!("#{id}")).await }
    };
    let attr = |id: &'static str, name: &'static str| {
        let web = web.clone();
        async move {
            web.find(fantoccini::Locator::Id(id))
                .await
                .unwrap()
                .attr(name)
                .await
                .unwrap()
                .unwrap_or_default()
        }
    };
    // The same figures as /v1/status.
    let status = lane.status().await;
    assert_eq!(
        text("pending-count").await,
        status["counts"]["pending"].to_string()
    );
    assert_eq!(
        text("stuck-count").await,
        status["counts"]["stuck"].to_string()
    );
    assert_eq!(
        attr("lane-state", "data-state").await,
        status["lane_state"].as_str().unwrap()
    );
    assert_eq!(
        attr("pending-amount-KES", "data-minor").await,
        status["pending_amount"]["KES"].to_string()
    );
    assert_eq!(text("pending-amount-KES").await, "2\u{202f}024.98 KES");
    let rows = web
        .find_all(fantoccini::Locator::Css("tr.stuck-sale"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attr("data-id").await.unwrap(), Some(stuck.clone()));
    assert!(rows[0].text().await.unwrap().contains("7.00 KES"));
    // Readable on a 1024×768 till screen: nothing wider than the window.
    assert!(browser::fits(&web).await);

    // The worst thing on the lane leads: the refused sale, in orange.
    assert_eq!(text("headline").await, "1 sale needs attention");
    assert_eq!(attr("lane-state", "data-verdict").await, "attention");
    assert_eq!(attr("lane-state", "class").await, "banner act");

    browser::screenshot(&web, "status_page", "status-page.png").await;

    // A Ukrainian browser gets the page in Ukrainian, still on one screen.
    let (web_uk, _profile_uk) = chromium(&driver, &chrome, "uk-UA,uk").await;
    web_uk.goto(&format!("{}/", lane.base)).await.unwrap();
    assert_eq!(
        browser::text(&web_uk, "#headline").await,
        "1 продаж потребує уваги"
    );
    let lang = web_uk
        .execute("return document.documentElement.lang;", vec![])
        .await
        .unwrap();
    assert_eq!(lang, Value::from("uk"));
    assert!(browser::fits(&web_uk).await);
    browser::screenshot(&web_uk, "status_page", "status-page-uk.png").await;
    web_uk.close().await.unwrap();

    // Head office is back; staff press "Sync now". The script resolves when
    // the page shows the answer (no polling).
    backend.set_down(false);
    let said = web
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const result = document.getElementById("sync-result");
               new MutationObserver(() => {
                 if (!result.textContent.startsWith("Contacting")) done(result.textContent);
               }).observe(result, {childList: true, characterData: true, subtree: true});
               document.getElementById("sync-now").click();"#,
            vec![],
        )
        .await
        .unwrap();
    assert!(
        said.as_str()
            .unwrap_or_default()
            .starts_with("Sync requested"),
        "{said}"
    );
    lane.until("the backlog is delivered", || async {
        lane.status().await["counts"]["pending"] == 0
    })
    .await;
    web.close().await.unwrap();
    drop(driver);

    let db = rusqlite::Connection::open_with_flags(
        dir.path().join(laned::lane::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let pressed: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'sync' AND actor = 'status-page'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pressed, 1);
}
