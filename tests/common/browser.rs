//! A real headless Chromium for the page tests, through chromedriver
//! (fantoccini). Found on the machine; when `LANED_REQUIRE_BROWSER=1` (CI)
//! a missing browser fails the test instead of skipping it.

use std::io::BufRead;

use serde_json::json;

/// chromedriver and Chromium, or `None` after saying visibly that the
/// test is skipped (a failure under `LANED_REQUIRE_BROWSER=1`).
pub fn browser() -> Option<(String, String)> {
    let found = find();
    if found.is_none() {
        assert!(
            std::env::var("LANED_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "LANED_REQUIRE_BROWSER=1 but no chromedriver and Chromium were found \
             (apt-get install chromium chromium-driver)"
        );
        super::skipped(
            "this test",
            "no chromedriver and Chromium on this machine (apt-get install chromium \
             chromium-driver)",
            "LANED_REQUIRE_BROWSER",
        );
    }
    found
}

/// chromedriver and a Chromium, from the environment or the PATH.
fn find() -> Option<(String, String)> {
    let on_path = |names: &[&str]| -> Option<String> {
        let path = std::env::var_os("PATH")?;
        names.iter().find_map(|n| {
            std::env::split_paths(&path)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        })
    };
    let driver = std::env::var("LANED_CHROMEDRIVER")
        .ok()
        .or_else(|| on_path(&["chromedriver"]))?;
    let chrome = std::env::var("LANED_CHROMIUM")
        .ok()
        .or_else(|| on_path(&["chromium", "chromium-browser", "google-chrome"]))?;
    Some((driver, chrome))
}

/// chromedriver on a free port, once it says it is ready.
pub struct Driver {
    child: std::process::Child,
    pub url: String,
}

impl Driver {
    pub fn start(path: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("started successfully") {
                // Keep draining its output so it never blocks on a full pipe.
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return Driver {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            line.clear();
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromedriver exited before it was ready");
    }
}

/// A headless Chromium session through `driver`: a 1024×768 window, a
/// fresh profile (kept in the returned directory), asking for the
/// `languages` (an `Accept-Language` list) first.
pub async fn chromium(
    driver: &Driver,
    chrome: &str,
    languages: &str,
) -> (fantoccini::Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let first = languages.split(',').next().unwrap_or(languages);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chrome, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1024,768", format!("--lang={first}"),
            format!("--user-data-dir={}", profile.path().display())],
            "prefs": {"intl.accept_languages": languages}}),
    );
    let web =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session with Chromium");
    (web, profile)
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver started, and a Chromium session (see [`chromium`]) at `url`.
pub async fn open(
    driver_path: String,
    chrome: &str,
    languages: &str,
    url: &str,
) -> (Driver, fantoccini::Client, tempfile::TempDir) {
    let driver = tokio::task::spawn_blocking(move || Driver::start(&driver_path))
        .await
        .unwrap();
    let (web, profile) = chromium(&driver, chrome, languages).await;
    web.goto(url).await.unwrap();
    (driver, web, profile)
}

/// The text of the first element `css` selects.
pub async fn text(web: &fantoccini::Client, css: &str) -> String {
    web.find(fantoccini::Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Whether the page is no wider than the window.
pub async fn fits(web: &fantoccini::Client) -> bool {
    web.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        vec![],
    )
    .await
    .unwrap()
        == serde_json::Value::Bool(true)
}

/// A screenshot of the page, checked to be a PNG, saved as `name` in
/// cargo's `target/tmp/{dir}/`.
pub async fn screenshot(web: &fantoccini::Client, dir: &str, name: &str) {
    let shot = web.screenshot().await.unwrap();
    assert!(shot.starts_with(b"\x89PNG"));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), &shot).unwrap();
}
