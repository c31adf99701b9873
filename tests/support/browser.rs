//! A real browser for the dashboard tests: Debian Chromium driven by chromedriver over WebDriver,
//! plus DevTools commands (geolocation, permissions) through chromedriver's CDP bridge.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// chromedriver on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver; .ci/run installs it)");
        let profile = std::env::temp_dir().join(format!("alertme-chrome-{}", uuid::Uuid::new_v4().simple()));
        Self { child, port, profile }
    }

    pub async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// A browser session with extra Chromium flags.
    pub async fn browser_with(&self, extra: &[&str]) -> Client {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=420,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": args }));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium outlives a killed chromedriver (and a test that panicked never closed its
        // session): end every process of this profile, or they keep recording and using CPU.
        let profile = self.profile.display().to_string();
        let _ = Command::new("pkill").args(["-KILL", "-f", &profile]).status();
        // Killed processes may still be releasing files for a moment.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn require_dashboard_build() {
    let pkg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../static/pkg/dashboard_bg.wasm");
    assert!(
        pkg.exists(),
        "the dashboard is not built: run `cargo xtask test` (or `cargo xtask build` first)"
    );
}

pub async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.attr(name).await.ok()?
}

pub async fn js_f64(c: &Client, script: &str) -> f64 {
    c.execute(script, vec![]).await.unwrap().as_f64().unwrap_or(-1.0)
}

pub async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn save_screenshot(name: &str, png: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// A Chrome DevTools Protocol command sent through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
pub struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl Cdp {
    pub fn new(cmd: &'static str, params: Value) -> Self {
        Self { cmd, params }
    }
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

/// Runs a DevTools command in the browser (e.g. `Emulation.setGeolocationOverride`).
pub async fn cdp(c: &Client, cmd: &'static str, params: Value) -> Value {
    c.issue_cmd(Cdp { cmd, params }).await.unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs axe-core (injected from `tests/browser/node_modules`, installed by `.ci/run`) on the
/// page as it is now and returns its serious and critical violations as
/// `impact rule: help (N elements: first selector)`, for an assertion message.
pub async fn axe_serious(c: &Client) -> Vec<String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (run `npm install` in tests/browser; .ci/run does)", path.display())
    });
    c.execute(&format!("{source}\nreturn true;"), vec![]).await.expect("axe-core injected");
    let found = c
        .execute_async(
            "const done = arguments[0];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(r.violations
               .filter(v => v.impact === 'serious' || v.impact === 'critical')
               .map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length} elements: ${v.nodes[0].target.join(' ')})`)))
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe-core ran");
    serde_json::from_value(found).expect("axe-core's violations as a list")
}

/// Buttons, fields and button-like links smaller than a 44 px touch target, as `tag "label"
/// W×H` (links inside running text are exempt, as WCAG allows).
pub async fn small_targets(c: &Client) -> Vec<String> {
    let script = r#"
        const out = [];
        for (const el of document.querySelectorAll('button, input:not([type=hidden]), select, a.button')) {
            // A checkbox's target is its label, where it has one.
            const box = (el.type === 'checkbox' || el.type === 'radio') && el.closest('label') || el;
            const r = box.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.height < 44 || r.width < 44) {
                const label = (el.innerText || el.placeholder || el.getAttribute('aria-label') || '').trim().slice(0, 30);
                out.push(`${el.tagName.toLowerCase()} "${label}" ${Math.round(r.width)}x${Math.round(r.height)}`);
            }
        }
        return out;"#;
    let v = c.execute(script, vec![]).await.unwrap();
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or_default().to_owned()).collect()
}

/// The element `css` once it is on the page, waiting at most `secs`; panics naming it if not.
pub async fn shown(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} not shown within {secs} s: {e}"))
}
