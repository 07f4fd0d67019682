//! Headless Chromium driven through ChromeDriver's W3C WebDriver endpoints (plain JSON over
//! HTTP, so a few calls with `ureq` are the whole client), and the checks every page of a
//! journey gets: no console error, no failed request, no serious accessibility violation
//! found by axe-core (vendored from the npm registry in `tests/assets/axe.min.js`), and a
//! screenshot under `target/screenshots/`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AXE: &str = include_str!("../assets/axe.min.js");
/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52f-4a2d6e2e7e4e";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    pub screenshots: PathBuf,
    shots: usize,
    journey: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn binary(var: &str, default: &str) -> Option<String> {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    std::path::Path::new(&path).exists().then_some(path)
}

/// Chromium and ChromeDriver from Debian, where they are (`scripts/test` installs them);
/// in CI their absence is an error, elsewhere the browser suite is skipped with a word.
pub fn available() -> Option<(String, String)> {
    let found = binary("AIFACTORY_CHROMIUM", "/usr/bin/chromium")
        .zip(binary("AIFACTORY_CHROMEDRIVER", "/usr/bin/chromedriver"));
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser journeys: /usr/bin/chromium and /usr/bin/chromedriver are missing (scripts/test installs them)"
        );
        eprintln!("chromium or chromedriver missing: browser journeys skipped (./scripts/test installs them)");
    }
    found
}

impl Browser {
    /// A fresh headless browser, its screenshots named after `journey`.
    pub fn start(journey: &str) -> Option<Browser> {
        let (chromium, chromedriver) = available()?;
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!("aifactory-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            screenshots: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots"),
            shots: 0,
            journey: journey.to_string(),
        };
        let answer = browser.command("POST", "/session", caps);
        browser.session = answer["sessionId"].as_str().expect("a session").to_string();
        std::fs::create_dir_all(&browser.screenshots).unwrap();
        // This journey's pictures of an earlier run go.
        for file in std::fs::read_dir(&browser.screenshots).unwrap().flatten() {
            if file.file_name().to_string_lossy().starts_with(&format!("{journey}-")) {
                let _ = std::fs::remove_file(file.path());
            }
        }
        Some(browser)
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let answer: Value = serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {answer}");
        answer["value"].clone()
    }

    pub fn go(&mut self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Resizes the window (a phone: 390 × 844).
    pub fn window(&self, width: u32, height: u32) {
        self.command("POST", "/window/rect", json!({ "width": width, "height": height }));
    }

    pub fn url(&self) -> String {
        self.command("GET", "/url", Value::Null).as_str().unwrap().to_string()
    }

    pub fn title(&self) -> String {
        self.command("GET", "/title", Value::Null).as_str().unwrap().to_string()
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.script("return document.body.innerText", json!([]))
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", json!({"using": "css selector", "value": css}));
        found
            .as_object()
            .and_then(|o| o.get(ELEMENT).or_else(|| o.values().next()))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    pub fn exists(&self, css: &str) -> bool {
        let found = self.command("POST", "/elements", json!({"using": "css selector", "value": css}));
        !found.as_array().unwrap().is_empty()
    }

    /// Types `text` into the field `css` names, after clearing it.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/clear"), json!({}));
        self.command("POST", &format!("/element/{element}/value"), json!({ "text": text }));
    }

    pub fn select(&self, css: &str, value: &str) {
        self.script(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; return s.value",
            json!([css, value]),
        );
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// Waits until the page's text contains `wanted` (reloading every half second, as a
    /// user would), at most `limit`.
    pub fn wait_for_text(&mut self, wanted: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.text().contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{wanted}` did not appear on {}:\n{}",
                self.url(),
                self.text()
            );
            std::thread::sleep(Duration::from_millis(500));
            self.command("POST", "/refresh", json!({}));
        }
    }

    /// Waits until the page's text contains `wanted` without reloading it (the page
    /// updates itself), at most `limit`.
    pub fn wait_live(&mut self, wanted: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.text().contains(wanted) {
            assert!(
                Instant::now() < deadline,
                "`{wanted}` did not appear on {}:\n{}",
                self.url(),
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn fetch(&self, path: &str) -> Value {
        self.command(
            "POST",
            "/execute/async",
            json!({
                "script": "const done = arguments[arguments.length - 1];\
                           fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual'})\
                             .then(r => r.text().then(t => done({status: r.status, text: t})), e => done({status: -1, text: String(e)}));",
                "args": [path],
            }),
        )
    }

    /// A same-origin GET from the page, with the browser's cookies: its body.
    pub fn fetch_text(&self, path: &str) -> String {
        let answer = self.fetch(path);
        assert_eq!(answer["status"], 200, "{path}: {answer}");
        answer["text"].as_str().unwrap().to_string()
    }

    /// A same-origin GET from the page, with the browser's cookies: its status.
    pub fn fetch_status(&self, path: &str) -> i64 {
        self.fetch(path)["status"].as_i64().unwrap()
    }

    /// The checks of the page now shown, and its screenshot as `NN-journey-name.png`.
    pub fn check_page(&mut self, name: &str) {
        self.shots += 1;
        // The whole page, not only the window (Chromium's own command, through ChromeDriver).
        let shot = self.command(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Page.captureScreenshot", "params": {"format": "png", "captureBeyondViewport": true}}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        let file = self
            .screenshots
            .join(format!("{}-{:02}-{name}.png", self.journey, self.shots));
        std::fs::write(&file, png).unwrap();
        let url = self.url();
        let title = self.title();
        assert!(!title.is_empty(), "{url} has no title");
        self.no_errors(&url);
        self.accessible(&url);
    }

    /// Console errors and failed requests since the last look (both logs are drained when
    /// read).
    fn no_errors(&self, url: &str) {
        let console = self.command("POST", "/se/log", json!({"type": "browser"}));
        let errors: Vec<&Value> = console
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .collect();
        assert!(errors.is_empty(), "console errors on {url}: {errors:#?}");
        // Only the factory's own requests count (the browser's own background ones, to
        // hosts this machine cannot reach, do not).
        let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let network = self.command("POST", "/se/log", json!({"type": "performance"}));
        let mut urls = std::collections::HashMap::new();
        for entry in network.as_array().unwrap() {
            let message: Value = serde_json::from_str(entry["message"].as_str().unwrap()).unwrap();
            let message = &message["message"];
            let params = &message["params"];
            match message["method"].as_str() {
                Some("Network.requestWillBeSent") => {
                    urls.insert(
                        params["requestId"].to_string(),
                        params["request"]["url"].as_str().unwrap_or("").to_string(),
                    );
                }
                Some("Network.loadingFailed") => {
                    let failed = urls.get(&params["requestId"].to_string()).cloned().unwrap_or_default();
                    assert!(
                        !failed.starts_with(&origin),
                        "a request to {failed} failed on {url}: {params}"
                    );
                }
                Some("Network.responseReceived") => {
                    let response = &message["params"]["response"];
                    let status = response["status"].as_i64().unwrap_or(0);
                    assert!(status < 400, "{} answered {status} on {url}", response["url"]);
                }
                _ => {}
            }
        }
    }

    /// axe-core's serious and critical violations of the page (WCAG 2.1 A and AA rules and
    /// best practices).
    fn accessible(&self, url: &str) {
        let has_axe = self.script("return typeof axe !== 'undefined'", json!([]));
        if has_axe != Value::Bool(true) {
            self.script(&format!("{AXE}\n;return true;"), json!([]));
        }
        let result = self.command(
            "POST",
            "/execute/async",
            json!({
                "script": "const done = arguments[arguments.length - 1];\
                           axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));",
                "args": [],
            }),
        );
        let violations = result
            .as_array()
            .unwrap_or_else(|| panic!("axe failed on {url}: {result}"));
        let serious: Vec<String> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let nodes: Vec<String> = v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["html"].as_str().unwrap_or("").chars().take(160).collect())
                    .collect();
                format!(
                    "{} ({}): {}\n    {}",
                    v["id"],
                    v["impact"],
                    v["help"],
                    nodes.join("\n    ")
                )
            })
            .collect();
        assert!(
            serious.is_empty(),
            "accessibility violations on {url}:\n{}",
            serious.join("\n")
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
