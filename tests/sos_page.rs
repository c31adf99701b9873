//! The web SOS page (`/sos`) in headless Chromium with a fake microphone and DevTools
//! geolocation, against the real server and a fake Twilio: sign in by texted code, set up
//! contacts and PIN, press SOS; a contact's watcher gets the position and audio that decodes; the
//! server is killed and the page reloaded mid-SOS, and the stored data has no gaps.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertme_protocol::audio::KIND_INIT;
use alertme_protocol::WatchMsg;
use fantoccini::{Client, Locator};
use futures_util::StreamExt;
use serde_json::json;
use support::browser::*;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const ANA: &str = "+4915112345678";
const BEN: &str = "+4915100000001";
const MEDIA_FLAGS: [&str; 2] = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"];

/// (lat, lon, accuracy) of every second of the walk fixture.
fn walk() -> Vec<(f64, f64, f64)> {
    std::fs::read_to_string(fixture("gps/gps_walk_10min.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[3].parse().unwrap(), c[4].parse().unwrap(), c[5].parse().unwrap())
        })
        .collect()
}

async fn set_position(c: &Client, (lat, lon, acc): (f64, f64, f64)) {
    cdp(c, "Emulation.setGeolocationOverride", json!({ "latitude": lat, "longitude": lon, "accuracy": acc }))
        .await;
}

/// Moves the emulated position along the walk, one point every 200 ms, until stopped.
fn walk_in_background(c: Client) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    tokio::spawn(async move {
        for p in walk().into_iter().cycle() {
            if s.load(Ordering::Relaxed) {
                break;
            }
            // A reload in progress may refuse the command; the next point will do.
            let _ = c
                .issue_cmd(Cdp::new(
                    "Emulation.setGeolocationOverride",
                    json!({ "latitude": p.0, "longitude": p.1, "accuracy": p.2 }),
                ))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    stop
}

async fn state(c: &Client, name: &str) -> String {
    attr(c, "[data-testid=sos-state]", &format!("data-{name}")).await.unwrap_or_default()
}

async fn num(c: &Client, name: &str) -> u64 {
    state(c, name).await.parse().unwrap_or(0)
}

async fn fill(c: &Client, testid: &str, text: &str) {
    let e = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .unwrap_or_else(|e| panic!("no {testid}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, testid: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .unwrap_or_else(|e| panic!("no {testid}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The stored parts of an alert, for a failure's message.
async fn parts_table(env: &Env, alert: &str) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let db = env.db().await;
    let q = format!(
        "SELECT part, mime, first_seq, (SELECT MAX(seq) FROM audio_chunks c WHERE c.alert_id = p.alert_id AND c.part = p.part) AS last \
         FROM audio_parts p WHERE alert_id = '{alert}' ORDER BY part"
    );
    let rows = db.query_all_raw(Statement::from_string(env.db_backend(), q)).await.unwrap();
    db.close().await.ok();
    rows.iter()
        .map(|r| {
            let part: i32 = r.try_get("", "part").unwrap_or(-1);
            let mime: String = r.try_get("", "mime").unwrap_or_default();
            let first: i64 = r.try_get("", "first_seq").unwrap_or(-1);
            let last: Option<i64> = r.try_get("", "last").unwrap_or(None);
            format!("({part}, {mime}, {first}..={last:?})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn text(c: &Client, testid: &str) -> String {
    match c.find(Locator::Css(&format!("[data-testid={testid}]"))).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Like `until`, but a timeout shows what the page said.
async fn wait_for<F, Fut>(c: &Client, what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        if Instant::now() > deadline {
            let body = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap_or_default();
            let st = c.find(Locator::Css("[data-testid=sos-state]")).await.ok();
            let st = match st {
                Some(e) => e.html(false).await.unwrap_or_default(),
                None => String::new(),
            };
            panic!("timed out waiting for {what}; the page says:\n{body}\n{st}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuses location and microphone to pages of `origin`, as a person tapping "Block" would.
async fn deny_sensors(c: &Client, origin: &str) {
    for name in ["geolocation", "microphone"] {
        let permission = json!({ "permission": { "name": name }, "setting": "denied", "origin": origin });
        cdp(c, "Browser.setPermission", permission).await;
    }
}

/// The newest code texted to `phone`.
async fn code_for(fake: &FakeTwilio, phone: &str) -> String {
    let m =
        eventually(Duration::from_secs(10), "code text", || async { fake.to(phone).await.last().cloned() })
            .await;
    let body = m["body"].as_str().unwrap().to_owned();
    body.split(|ch: char| !ch.is_ascii_digit()).find(|w| w.len() == 6).expect("a 6-digit code").to_owned()
}

/// The page's device token (what the sign-in stored).
async fn page_token(c: &Client) -> String {
    let v =
        c.execute("return JSON.parse(localStorage.getItem('alertme.device')).token", vec![]).await.unwrap();
    v.as_str().unwrap().to_owned()
}

/// Seconds of audio in a file: the sum of its packets' durations (MediaRecorder's WebM has no
/// duration in its header).
fn audio_seconds(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "packet=duration_time"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .sum()
}

/// Waits until everything the page took is stored on the server; returns (fixes, audio chunks).
async fn all_acked(c: &Client, limit: Duration) -> (u64, u64) {
    let deadline = Instant::now() + limit;
    loop {
        let t = (num(c, "taken-fix").await, num(c, "taken-audio").await);
        let a = (num(c, "acked-fix").await, num(c, "acked-audio").await);
        if t == a && t.0 > 0 {
            return t;
        }
        assert!(Instant::now() < deadline, "the server never held everything: taken {t:?}, acked {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sign in, set up, SOS; watcher gets position + audio; kill the server and reload the page
/// mid-SOS; nothing taken is lost; the recording plays; the PIN ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sos_page_streams_and_survives_cuts() {
    require_dashboard_build();
    let env = Env::new(Backend::Sqlite).await;
    let fake = FakeTwilio::start(&[]);
    // The page reaches the server through a proxy that can cut its network; watchers do not.
    let proxy = CutProxy::start().await;
    let page = format!("http://{}", proxy.addr);
    let mut args = fake.server_args();
    args.extend(["--tile-url".to_owned(), String::new(), "--allowed-origins".to_owned(), page.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&env, "127.0.0.1:0", &args);
    proxy.set_target(&server.addr);
    let driver = Driver::start();
    let c = driver.browser_with(&MEDIA_FLAGS).await;
    cdp(&c, "Browser.grantPermissions", json!({ "permissions": ["geolocation"], "origin": page })).await;
    let walk = walk();
    set_position(&c, walk[0]).await;

    // Sign in with the texted code.
    c.goto(&format!("{page}/sos")).await.unwrap();
    fill(&c, "phone", ANA).await;
    let violations = axe_serious(&c).await;
    assert!(violations.is_empty(), "axe-core on the sign-in page:\n{}", violations.join("\n"));
    let small = small_targets(&c).await;
    assert!(small.is_empty(), "sign-in: touch targets under 44 px: {small:?}");
    click(&c, "send-code").await;
    let code = code_for(&fake, ANA).await;
    fill(&c, "code", &code).await;
    fill(&c, "name", "Ana").await;
    click(&c, "verify").await;

    // Contacts and PIN.
    fill(&c, "contact-name", "Ben").await;
    fill(&c, "contact-phone", BEN).await;
    click(&c, "contact-add").await;
    wait_for(&c, "the contact listed", Duration::from_secs(10), || async {
        text(&c, "contacts").await.contains("Ben")
    })
    .await;
    fill(&c, "pin-new", "2468").await;
    fill(&c, "pin-duress", "1357").await;
    click(&c, "pin-save").await;
    wait_for(&c, "PIN saved", Duration::from_secs(10), || async {
        text(&c, "setup-note").await.contains("PIN saved")
    })
    .await;

    // A check-in timer keeps the last known position fresh (`track`), before any SOS.
    click(&c, "timer-start").await;
    wait_for(&c, "the page's first tracking fix on the server", Duration::from_secs(15), || async {
        env.scalar("SELECT COUNT(*) FROM user_positions").await == 1
    })
    .await;

    // SOS, after the countdown.
    let pressed = Instant::now();
    click(&c, "sos").await;
    assert!(text(&c, "countdown").await.contains("Sending SOS in"), "a cancel countdown first");
    let stop_walk = walk_in_background(c.clone());
    wait_for(&c, "the alert", Duration::from_secs(15), || async { !state(&c, "alert").await.is_empty() })
        .await;
    let alert_id = state(&c, "alert").await;
    eprintln!("SOS pressed → alert id on the page: {} ms (3 s countdown)", pressed.elapsed().as_millis());

    // Ben's text links to the live view; his watcher gets the position and audio that decodes.
    let text_to_ben = eventually(Duration::from_secs(10), "Ben's alert text", || async {
        fake.to(BEN).await.into_iter().find(|m| m["body"].as_str().unwrap_or("").contains("/w/amw_"))
    })
    .await;
    let body = text_to_ben["body"].as_str().unwrap();
    let watch_token = body[body.find("/w/").unwrap() + 3..].split_whitespace().next().unwrap().to_owned();
    let mut ws = connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let (mut fixes, mut audio, mut init) = (0, Vec::new(), false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fixes < 3 || audio.len() < 40_000 {
        assert!(Instant::now() < deadline, "watcher got {fixes} fixes and {} audio bytes", audio.len());
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<WatchMsg>(t.as_str()).unwrap() {
                WatchMsg::Snapshot { trail, audio: a, .. } => {
                    fixes += trail.len();
                    if let Some(a) = a {
                        assert_eq!(a.mime, "audio/webm;codecs=opus");
                    }
                }
                WatchMsg::AudioPart { mime, .. } => assert_eq!(mime, "audio/webm;codecs=opus"),
                WatchMsg::Fix { fix, .. } => {
                    fixes += 1;
                    assert!((fix.lat - walk[0].0).abs() < 0.01, "a position from the walk");
                }
                _ => {}
            },
            Ok(Some(Ok(Message::Binary(b)))) => {
                let (h, payload) = alertme_protocol::audio::WatchHeader::parse(&b).unwrap();
                init |= h.kind == KIND_INIT;
                if init {
                    audio.extend_from_slice(payload);
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("watch socket ended: {other:?}"),
        }
    }
    let live = env.data_dir.join("watcher.webm");
    std::fs::write(&live, &audio).unwrap();
    decodes_cleanly(&live).unwrap_or_else(|e| panic!("the watcher's audio does not decode: {e}"));
    assert!(probe_packets(&live) > 20, "the watcher's audio has packets");
    wait_for(&c, "the page to count the watcher and the text", Duration::from_secs(10), || async {
        let a = text(&c, "audience").await;
        a.contains("1 person watching") && a.contains("Contacts notified: 1 of 1")
    })
    .await;
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    save_screenshot("sos-active.png", &c.screenshot().await.unwrap());
    let violations = axe_serious(&c).await;
    assert!(violations.is_empty(), "axe-core on the SOS page during an SOS:\n{}", violations.join("\n"));
    let small = small_targets(&c).await;
    assert!(small.is_empty(), "SOS page during an SOS: touch targets under 44 px: {small:?}");

    // Network cut with the server up: the watcher stays; after the cut the page sends the
    // newest fix first, then the backlog oldest first.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(Instant, u64)>::new()));
    let log = seen.clone();
    let watcher = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                if let Ok(WatchMsg::Fix { fix, .. }) = serde_json::from_str::<WatchMsg>(t.as_str()) {
                    log.lock().unwrap().push((Instant::now(), fix.seq));
                }
            }
        }
    });
    all_acked(&c, Duration::from_secs(15)).await;
    proxy.cut();
    wait_for(&c, "the page to see the network gone", Duration::from_secs(10), || async {
        state(&c, "link").await == "offline"
    })
    .await;
    let cut_taken = num(&c, "taken-fix").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let offline_taken = num(&c, "taken-fix").await;
    assert!(
        offline_taken >= cut_taken + 3,
        "positions keep coming while offline: {cut_taken} → {offline_taken}"
    );
    let healed = Instant::now();
    proxy.heal();
    let after = all_acked(&c, Duration::from_secs(20)).await;
    assert!(after.0 >= offline_taken);
    tokio::time::sleep(Duration::from_millis(500)).await;
    watcher.abort();
    let post: Vec<u64> = seen.lock().unwrap().iter().filter(|(t, _)| *t > healed).map(|(_, s)| *s).collect();
    assert!(post.len() >= 3, "the watcher got the backlog: {post:?}");
    let newest = post[0];
    let backlog: Vec<u64> = post[1..].iter().copied().take_while(|&s| s < newest).collect();
    assert!(newest >= offline_taken && !backlog.is_empty(), "newest first, then the backlog: {post:?}");
    assert!(backlog.windows(2).all(|w| w[0] < w[1]), "the backlog oldest first: {post:?}");
    let all: std::collections::BTreeSet<u64> = seen.lock().unwrap().iter().map(|(_, s)| *s).collect();
    let first = *all.iter().next().unwrap();
    assert!((first..=newest).all(|s| all.contains(&s)), "the watcher saw every fix from {first} to {newest}");

    // The server dies (SIGKILL) and comes back on the same port; the page keeps recording into
    // IndexedDB meanwhile.
    let before_cut = all_acked(&c, Duration::from_secs(15)).await;
    server.kill();
    wait_for(&c, "the page to see the link down", Duration::from_secs(10), || async {
        state(&c, "link").await == "offline"
    })
    .await;
    // A fix taken just after `before_cut` may have been acked before the kill; from here on
    // the link is down and nothing more may be.
    let acked_at_cut = num(&c, "acked-fix").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken_offline = (num(&c, "taken-fix").await, num(&c, "taken-audio").await);
    assert!(
        taken_offline.0 > before_cut.0 && taken_offline.1 > before_cut.1,
        "fixes and audio keep coming while offline: {before_cut:?} → {taken_offline:?}"
    );
    assert_eq!(num(&c, "acked-fix").await, acked_at_cut, "nothing acked while the server is down");
    let addr = server.addr.clone();
    server = Server::start(&env, &addr, &args);
    let after_cut = all_acked(&c, Duration::from_secs(30)).await;
    assert!(after_cut.0 >= taken_offline.0 && after_cut.1 >= taken_offline.1);

    // Reload mid-SOS, with data in flight: the page resumes the same alert from IndexedDB.
    let before_reload = (num(&c, "taken-fix").await, num(&c, "taken-audio").await);
    c.refresh().await.unwrap();
    wait_for(&c, "the page to resume the SOS", Duration::from_secs(20), || async {
        state(&c, "phase").await == "active" && state(&c, "alert").await == alert_id
    })
    .await;
    wait_for(&c, "the recorder to run again", Duration::from_secs(20), || async {
        state(&c, "mic").await.starts_with("Working")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_walk.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fix_n, audio_n) = all_acked(&c, Duration::from_secs(30)).await;
    assert!(
        fix_n > before_reload.0 && audio_n > before_reload.1,
        "the seqs went on across the reload: {before_reload:?} → {:?}",
        (fix_n, audio_n)
    );

    // End with the PIN; the recording (one part per recorder: before and after the reload) plays.
    fill(&c, "pin", "2468").await;
    click(&c, "end").await;
    wait_for(&c, "the page to show the end", Duration::from_secs(10), || async {
        state(&c, "phase").await == "ended(cancelled)"
    })
    .await;
    // No gaps: every fix and chunk the page took, once, seqs 1..=n. Read after the end: until
    // then the recorder keeps taking chunks. (The page waits for the acks before ending.)
    let (fix_n, audio_n) = (num(&c, "taken-fix").await, num(&c, "taken-audio").await);
    assert_eq!((num(&c, "acked-fix").await, num(&c, "acked-audio").await), (fix_n, audio_n), "all acked");
    let q = |what: &str, table: &str| format!("SELECT {what} FROM {table} WHERE alert_id = '{alert_id}'");
    assert_eq!(env.scalar(&q("COUNT(DISTINCT seq)", "fixes")).await as u64, fix_n, "stored fixes");
    assert_eq!(env.scalar(&q("MIN(seq)", "fixes")).await, 1);
    assert_eq!(env.scalar(&q("MAX(seq)", "fixes")).await as u64, fix_n);
    assert_eq!(env.scalar(&q("COUNT(DISTINCT seq)", "audio_chunks")).await as u64, audio_n, "stored chunks");
    assert_eq!(env.scalar(&q("MAX(seq)", "audio_chunks")).await as u64, audio_n);

    let token = page_token(&c).await;
    let http = reqwest::Client::new();
    let parts: Vec<alertme_protocol::RecordingPart> =
        server.get_json(&format!("/v1/alerts/{alert_id}/recording"), &token).await;
    assert_eq!(parts.len(), 2, "one part before the reload, one after: {parts:?}");
    let mut secs = 0.0;
    for p in &parts {
        let bytes =
            http.get(server.http(&p.url)).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, p.bytes);
        let f = env.data_dir.join(format!("part{}.webm", p.part));
        std::fs::write(&f, &bytes).unwrap();
        match decodes_cleanly(&f) {
            Ok(()) => {}
            // The reload killed the first recorder: MediaRecorder's chunks end anywhere, not on
            // WebM element boundaries, so that part's last element is cut. Everything before it
            // must decode without a single error. The last part was finished cleanly (the page
            // stops its recorder and waits for the acks before ending the SOS).
            Err(e)
                if usize::from(p.part) + 1 < parts.len()
                    && e.lines().all(|l| l.contains("File ended prematurely")) => {}
            Err(e) => panic!("stored part {} does not decode: {e}", p.part),
        }
        secs += audio_seconds(&f);
    }
    eprintln!("stored: {fix_n} fixes, {audio_n} audio chunks, {secs:.1} s of audio in {} parts", parts.len());
    assert!(secs > 8.0, "the recording covers the SOS: {secs} s");
}

/// Location and microphone refused: the SOS still goes out and the page says why. A check-in
/// timer is started and checked in from the page. The duress PIN "cancels" on the page while
/// the alert goes on, flagged, with the contacts told; a responder's resolve ends it on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sos_page_denied_sensors_timer_and_duress() {
    require_dashboard_build();
    let env = Env::new(Backend::Sqlite).await;
    let fake = FakeTwilio::start(&[]);
    let args = fake.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&env, "127.0.0.1:0", &args);
    let token = env.user("Ana", ANA);
    let http = reqwest::Client::new();
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
    };
    ok(http
        .post(server.http("/v1/contacts"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Ben", "phone": BEN }))
        .send()
        .await
        .unwrap());
    ok(http
        .put(server.http("/v1/pin"))
        .bearer_auth(&token)
        .json(&json!({ "pin": "2468", "duress_pin": "1357" }))
        .send()
        .await
        .unwrap());

    let driver = Driver::start();
    let c = driver.browser_with(&["--use-fake-device-for-media-stream"]).await;
    deny_sensors(&c, &server.http("")).await;
    c.goto(&server.http("/sos")).await.unwrap();
    // The page runs under a policy that forbids inline and foreign scripts (the token is in its
    // storage); everything in this test works under it.
    let page = reqwest::get(server.http("/sos")).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval';") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let account = json!({ "token": token, "name": "Ana", "phone": ANA }).to_string();
    c.execute("localStorage.setItem('alertme.device', arguments[0])", vec![json!(account)]).await.unwrap();
    c.refresh().await.unwrap();
    wait_for(&c, "the first tab ready", Duration::from_secs(10), || async {
        state(&c, "link").await == "online"
    })
    .await;

    // A second tab of the same browser defers to the first (they share the outbox and its seq
    // counters), and takes over when the first closes; the rest of the test runs in it.
    let first = c.window().await.unwrap();
    let second = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(second.clone()).await.unwrap();
    c.goto(&server.http("/sos")).await.unwrap();
    wait_for(&c, "the second tab to defer", Duration::from_secs(10), || async {
        state(&c, "phase").await == "othertab" && text(&c, "other-tab").await.contains("another tab")
    })
    .await;
    assert!(c.find(Locator::Css("[data-testid=sos]")).await.is_err(), "no SOS button in the waiting tab");
    c.switch_to_window(first).await.unwrap();
    c.close_window().await.unwrap();
    c.switch_to_window(second).await.unwrap();
    wait_for(&c, "the second tab to take over", Duration::from_secs(10), || async {
        state(&c, "phase").await == "idle" && state(&c, "link").await == "online"
    })
    .await;
    deny_sensors(&c, &server.http("")).await; // DevTools settings follow the tab

    // A check-in timer from the page, then checked in with the PIN.
    fill(&c, "timer-minutes", "20").await;
    fill(&c, "timer-note", "Walking home").await;
    click(&c, "timer-start").await;
    wait_for(&c, "the running timer", Duration::from_secs(10), || async {
        text(&c, "timer").await.contains("check in within")
    })
    .await;
    let timers: Vec<alertme_protocol::Timer> = server.get_json("/v1/timers", &token).await;
    assert_eq!(timers.len(), 1);
    assert_eq!((timers[0].status.as_str(), timers[0].deadline_ms > 0), ("active", true));
    fill(&c, "timer-pin", "2468").await;
    click(&c, "checkin").await;
    wait_for(&c, "the timer gone", Duration::from_secs(10), || async {
        c.find(Locator::Css("[data-testid=timer]")).await.is_err()
    })
    .await;
    assert_eq!(env.scalar("SELECT COUNT(*) FROM timers WHERE status = 'checked_in'").await, 1);

    // SOS without location and microphone: it still goes out, and the page says why.
    click(&c, "sos").await;
    wait_for(&c, "the alert", Duration::from_secs(15), || async { !state(&c, "alert").await.is_empty() })
        .await;
    let alert_id = state(&c, "alert").await;
    wait_for(&c, "both refusals explained", Duration::from_secs(10), || async {
        text(&c, "location").await.contains("permission denied")
            && text(&c, "mic").await.contains("permission denied")
    })
    .await;
    eventually(Duration::from_secs(10), "Ben's alert text", || async {
        fake.to(BEN).await.into_iter().find(|m| m["body"].as_str().unwrap_or("").contains("needs help"))
    })
    .await;
    let status = |id: String| {
        let env = &env;
        async move {
            env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{id}' AND status = 'active'")).await
        }
    };
    assert_eq!(status(alert_id.clone()).await, 1);

    // A wrong PIN is refused; the duress PIN looks like a cancel, and the alert goes on.
    fill(&c, "pin", "0000").await;
    click(&c, "end").await;
    wait_for(&c, "wrong PIN", Duration::from_secs(10), || async {
        c.find(Locator::Css("main")).await.unwrap().text().await.unwrap_or_default().contains("Wrong PIN")
    })
    .await;
    fill(&c, "pin", "1357").await;
    click(&c, "end").await;
    wait_for(&c, "the page to look cancelled", Duration::from_secs(10), || async {
        text(&c, "ended").await.contains("Your SOS was cancelled") && state(&c, "hidden").await == "true"
    })
    .await;
    assert!(c.find(Locator::Css("[data-testid=active]")).await.is_err(), "nothing shows the SOS goes on");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(alert_id.clone()).await, 1, "the duress PIN does not end the alert");
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert_id}' AND duress = TRUE")).await,
        1,
        "flagged duress"
    );
    eventually(Duration::from_secs(10), "Ben's duress text", || async {
        fake.to(BEN).await.into_iter().find(|m| m["body"].as_str().unwrap_or("").contains("duress PIN"))
    })
    .await;
    assert_eq!(state(&c, "link").await, "online", "the page still streams");
    // The duress PIN again: the same answer, and no second text.
    let again = http
        .post(server.http(&format!("/v1/alerts/{alert_id}/cancel")))
        .bearer_auth(&token)
        .json(&json!({ "pin": "1357" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), json!({ "status": "cancelled" }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duress_texts =
        fake.to(BEN).await.iter().filter(|m| m["body"].as_str().unwrap_or("").contains("duress PIN")).count();
    assert_eq!(duress_texts, 1, "contacts are told once");

    // A responder resolves it: the page learns.
    let responder = env.responder("Rita");
    let mut console = connect(&server.ws("/v1/responder"), Some(&responder), None).await.unwrap();
    send_json(&mut console, &alertme_protocol::ResponderCmd::Resolve { alert_id: alert_id.clone() }).await;
    wait_for(&c, "the page to show the resolve", Duration::from_secs(10), || async {
        state(&c, "phase").await == "ended(resolved)" && text(&c, "ended").await.contains("resolved")
    })
    .await;
}

/// The p-th percentile of `v` (sorted here).
fn percentile(v: &mut [u32], p: f64) -> u32 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
}

/// The camera on a slow link (a 64 kB/s uplink through the proxy): the SOS page streams
/// video, yet a fix never goes out behind more than a small window of unacknowledged media
/// (fixes first, then audio, then video). The page's fix ack latencies with the camera off
/// and on are printed (the issue's note quotes them); the only timing asserted is a loose
/// bound that catches fixes stuck behind seconds of video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sos_page_video_on_a_slow_link() {
    require_dashboard_build();
    let env = Env::new(Backend::Sqlite).await;
    let proxy = CutProxy::start().await;
    proxy.set_rate(64_000);
    let page = format!("http://{}", proxy.addr);
    let server = Server::start(&env, "127.0.0.1:0", &["--tile-url", "", "--allowed-origins", &page]);
    proxy.set_target(&server.addr);
    let token = env.user("Ana", ANA);
    let r = reqwest::Client::new()
        .put(server.http("/v1/pin"))
        .bearer_auth(&token)
        .json(&json!({ "pin": "2468" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let driver = Driver::start();
    let c = driver.browser_with(&MEDIA_FLAGS).await;
    cdp(&c, "Browser.grantPermissions", json!({ "permissions": ["geolocation"], "origin": page })).await;
    set_position(&c, walk()[0]).await;
    c.goto(&format!("{page}/sos")).await.unwrap();
    let account = json!({ "token": token, "name": "Ana", "phone": ANA }).to_string();
    c.execute("localStorage.setItem('alertme.device', arguments[0])", vec![json!(account)]).await.unwrap();
    c.refresh().await.unwrap();
    wait_for(&c, "the page online", Duration::from_secs(15), || async {
        state(&c, "link").await == "online"
    })
    .await;
    let violations = axe_serious(&c).await;
    assert!(violations.is_empty(), "axe-core on the signed-in SOS page:\n{}", violations.join("\n"));
    let stop_walk = walk_in_background(c.clone());
    let mut measured = Vec::new();
    let mut before = String::new();
    for camera in [false, true] {
        if camera {
            click(&c, "camera").await;
        }
        click(&c, "sos").await;
        wait_for(&c, "the alert", Duration::from_secs(20), || async {
            let a = state(&c, "alert").await;
            !a.is_empty() && a != before
        })
        .await;
        before = state(&c, "alert").await;
        if !camera {
            // The person's own position, ready to read out or copy (no geocoder here: no address).
            wait_for(&c, "the place panel", Duration::from_secs(30), || async {
                text(&c, "location-text").await.contains("Plus Code: 9F4MG")
            })
            .await;
        }
        let alert = state(&c, "alert").await;
        tokio::time::sleep(Duration::from_secs(25)).await;
        let mut acks: Vec<u32> =
            state(&c, "fix-ack-ms").await.split(',').filter_map(|v| v.parse().ok()).collect();
        let behind = num(&c, "fix-behind-max").await;
        assert!(acks.len() > 50, "fixes were acknowledged: {acks:?}");
        let (p50, p95) = (percentile(&mut acks, 0.5), percentile(&mut acks, 0.95));
        eprintln!(
            "64 kB/s uplink, camera {}: fix ack p50 {p50} ms, p95 {p95} ms over {} fixes; most media a fix waited behind: {behind} B",
            if camera { "on" } else { "off" },
            acks.len()
        );
        assert!(behind <= 16 * 1024, "a fix went out behind {behind} B of unacknowledged media");
        measured.push((p50, p95));
        if camera {
            assert_eq!(state(&c, "camera").await, "on", "64 kB/s carries the camera: it was not paused");
            let q = format!(
                "SELECT COUNT(*) FROM audio_parts WHERE alert_id = '{alert}' AND mime LIKE 'video/webm%'"
            );
            assert!(env.scalar(&q).await >= 1, "the server stores a video part");
            let q = format!("SELECT COALESCE(SUM(len), 0) FROM audio_chunks WHERE alert_id = '{alert}'");
            assert!(env.scalar(&q).await > 300_000, "video arrives at its rate (~30 kB/s)");
            assert!(p95 < 1_000, "fixes do not wait behind seconds of video: p95 {p95} ms");
            // The link drops below what video needs: the page goes on with audio only (a new
            // part, announced by `media`), and back to video once the link recovered.
            proxy.set_rate(12_000);
            wait_for(&c, "the camera paused", Duration::from_secs(60), || async {
                state(&c, "camera").await == "paused"
            })
            .await;
            let parts = |kind: &'static str| {
                let (env, alert) = (&env, alert.clone());
                async move {
                    let q = format!("SELECT COUNT(*) FROM audio_parts WHERE alert_id = '{alert}' AND mime LIKE '{kind}/webm%'");
                    env.scalar(&q).await
                }
            };
            proxy.set_rate(64_000);
            wait_for(&c, "an audio-only part stored", Duration::from_secs(60), || async {
                parts("audio").await >= 1
            })
            .await;
            wait_for(&c, "the camera back on", Duration::from_secs(90), || async {
                state(&c, "camera").await == "on"
            })
            .await;
            // Under load (CI runs this beside other browser tests) the backlog from the slow
            // spell drains first; what is asserted is that video comes back, not how fast.
            let deadline = Instant::now() + Duration::from_secs(90);
            while parts("video").await < 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if parts("video").await < 2 {
                eprintln!("parts stored (part, mime, first seq): {}", parts_table(&env, &alert).await);
            }
            wait_for(&c, "a second video part stored", Duration::from_secs(1), || async {
                parts("video").await >= 2
            })
            .await;
        }
        fill(&c, "pin", "2468").await;
        click(&c, "end").await;
        wait_for(&c, "the end", Duration::from_secs(20), || async {
            state(&c, "phase").await.starts_with("ended")
        })
        .await;
    }
    stop_walk.store(true, Ordering::Relaxed);
    eprintln!("fix ack latency (p50, p95) off {:?}, on {:?}", measured[0], measured[1]);
}
