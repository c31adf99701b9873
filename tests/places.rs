//! Where the person is: the address from a (stand-in) Nominatim-compatible geocoder, cached and
//! rate limited, with the Plus Code; and the watch page's panel for acting on it.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertme_protocol::{Fix, PhoneMsg, PhoneServerMsg, Place};
use support::*;

/// A stand-in for Nominatim's `/reverse`: answers an address for any position and notes each
/// request (when, the query, the User-Agent and Accept-Language).
/// Requests the stand-in saw: when, the query, the User-Agent, the Accept-Language.
type Seen = Vec<(Instant, String, String, String)>;

struct StandIn {
    addr: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/reverse",
            axum::routing::get(move |q: axum::extract::RawQuery, h: axum::http::HeaderMap| {
                let log = log.clone();
                async move {
                    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let lang = get("accept-language");
                    log.lock().unwrap().push((
                        Instant::now(),
                        q.0.unwrap_or_default(),
                        get("user-agent"),
                        lang.clone(),
                    ));
                    let name = if lang == "ru" {
                        "Унтер-ден-Линден 1, Берлин"
                    } else {
                        "Unter den Linden 1, Berlin"
                    };
                    axum::Json(serde_json::json!({ "display_name": name, "lat": "52.5", "lon": "13.4" }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    fn requests(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an alert over the phone socket with one fix at `(lat, lon)`; returns its id and
/// watch token.
async fn alert_at(server: &impl Base, token: &str, client: &str, lat: f64, lon: f64) -> (String, String) {
    let (mut ws, alert, url) = sos_socket(server, token, client).await;
    let watch = url.rsplit('/').next().unwrap().to_owned();
    let fix = Fix {
        seq: 1,
        lat,
        lon,
        accuracy_m: 6.0,
        time_ms: alertme_client::now_ms(),
        battery_pct: None,
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    };
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix] }).await;
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
            if acks.fix >= 1 {
                break;
            }
        }
    }
    (alert, watch)
}

async fn place(server: &impl Base, alert: &str, token: &str, lang: &str) -> (u16, Option<Place>) {
    let url = server.http(&format!("/v1/alerts/{alert}/place?token={token}&lang={lang}"));
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.ok())
}

/// The address comes from the geocoder in the reader's language, once per place and language
/// (cached), never faster than one request a second, with an identifying User-Agent and the
/// position rounded to ~11 m; the Plus Code is right; without a geocoder only the address is
/// missing; someone without access gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_plus_code_cache_and_rate_limit() {
    let stand_in = StandIn::start().await;
    let env = Env::new(Backend::Sqlite).await;
    let server = support::app::TestApp::start(&env, &["--geocoder-url", &stand_in.addr]).await;
    let token = env.user("Ana", "+4915112345678");
    let (alert, watch) = alert_at(&server, &token, "c1", 52.5140916, 13.3957022).await;
    let (status, p) = place(&server, &alert, &watch, "en-GB").await;
    assert_eq!(status, 200);
    let p = p.unwrap();
    assert_eq!(p.address.as_deref(), Some("Unter den Linden 1, Berlin"));
    // Independently computed (Open Location Code reference algorithm, 11 digits).
    assert_eq!(p.plus_code, "9F4MG97W+J7P");
    assert_eq!((p.lat, p.lon, p.accuracy_m), (52.5140916, 13.3957022, 6.0));
    let (_, ru) = place(&server, &alert, &watch, "ru-RU").await;
    assert_eq!(ru.unwrap().address.as_deref(), Some("Унтер-ден-Линден 1, Берлин"));
    for _ in 0..3 {
        place(&server, &alert, &watch, "en").await;
    }
    let seen = stand_in.requests();
    assert_eq!(seen.len(), 2, "one request per place and language: {seen:?}");
    let (_, query, agent, _) = &seen[0];
    assert!(agent.starts_with("AlertMe/"), "{agent}");
    assert!(query.contains("lat=52.5141") && query.contains("lon=13.3957"), "rounded to ~11 m: {query}");
    assert!(!query.contains("52.51409"), "the precise position does not leave: {query}");
    // Three more places at once: the service is asked at most once a second.
    let mut alerts = Vec::new();
    for (i, lat) in [52.52, 52.53, 52.54].into_iter().enumerate() {
        let t = env.user(&format!("P{i}"), &format!("+49151123456{}", 80 + i));
        alerts.push((alert_at(&server, &t, "c", lat, 13.4).await, t));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asks = alerts.iter().map(|((a, w), _)| place(&server, a, w, "en"));
    let answers = futures_util::future::join_all(asks).await;
    assert!(
        answers.iter().all(|(s, p)| *s == 200 && p.as_ref().is_some_and(|p| p.address.is_some())),
        "{answers:?}"
    );
    let seen = stand_in.requests();
    assert_eq!(seen.len(), 5, "each new place asked once: {seen:?}");
    let times: Vec<Instant> = seen.iter().map(|r| r.0).collect();
    for w in times[1..].windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(900), "at most one request a second: {:?}", w[1] - w[0]);
    }
    // One alert cannot make the service look up places faster than every 10 s.
    let (mover, mover_watch) = &alerts[0].0;
    let mut ws = connect(&server.ws("/v1/phone"), Some(&alerts[0].1), None).await.unwrap();
    send_json(&mut ws, &PhoneMsg::Start { client_id: "c".into(), audio_mime: None, pressed_at_ms: None })
        .await;
    let moved = Fix {
        seq: 2,
        lat: 48.1,
        lon: 11.6,
        accuracy_m: 5.0,
        time_ms: alertme_client::now_ms() + 1,
        battery_pct: None,
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    };
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![moved] }).await;
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
            if acks.fix >= 2 {
                break;
            }
        }
    }
    let (status, p) = place(&server, mover, mover_watch, "en").await;
    assert_eq!(status, 200);
    assert_eq!(
        (p.as_ref().map(|p| p.lat), p.and_then(|p| p.address)),
        (Some(48.1), None),
        "no new lookup yet"
    );
    assert_eq!(stand_in.requests().len(), 5);
    // Only who may follow this alert: a made-up token, or another alert's link, gets nothing.
    let (status, _) = place(&server, &alert, "amw_nonsense", "en").await;
    assert!(status == 401 || status == 403, "{status}");
    let (status, _) = place(&server, &alert, mover_watch, "en").await;
    assert_eq!(status, 403, "another alert's watch link");
    server.stop().await;

    // Without a geocoder: coordinates and Plus Code, no address.
    let env = Env::new(Backend::Sqlite).await;
    let server = support::app::TestApp::start(&env, &[]).await;
    let token = env.user("Ana", "+4915112345678");
    let (alert, watch) = alert_at(&server, &token, "c1", 52.5140916, 13.3957022).await;
    let (status, p) = place(&server, &alert, &watch, "en").await;
    assert_eq!(status, 200);
    let p = p.unwrap();
    assert_eq!((p.address, p.plus_code.as_str()), (None, "9F4MG97W+J7P"));
    server.stop().await;
}

/// The watch page shows the address, and a relative can act on it: "Directions" opens a map
/// app (`geo:`), "Copy location for emergency services" copies the address, coordinates with
/// accuracy and age, and the Plus Code (screenshot `watch-place.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_helps_act_on_the_position() {
    use fantoccini::Locator;
    use support::browser::*;
    require_dashboard_build();
    let stand_in = StandIn::start().await;
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &["--tile-url", "", "--geocoder-url", &stand_in.addr]);
    // A short walk, over before the page opens: the position the page shows stays put.
    let walk = short_walk(&env, 19);
    let phone = Phone::start(&server, &token, &["--gpx", &walk, "--speed", "20", "--finish", "keep"]);
    let driver = Driver::start();
    let c = driver.browser().await;
    let origin = server.http("");
    cdp(&c, "Browser.grantPermissions", serde_json::json!({ "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"], "origin": origin })).await;
    c.goto(&phone.watch_url).await.unwrap();
    let address = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("[data-testid=address]"))
        .await
        .unwrap();
    assert_eq!(address.text().await.unwrap(), "Unter den Linden 1, Berlin");
    let text = c.find(Locator::Css("[data-testid=location-text]")).await.unwrap().text().await.unwrap();
    assert!(text.starts_with("Unter den Linden 1, Berlin\n52.51"), "{text}");
    assert!(
        text.contains("accurate to")
            && (text.contains("ago") || text.contains("just now"))
            && text.contains("Plus Code: 9F4MG"),
        "{text}"
    );
    let href = attr(&c, "[data-testid=directions]", "href").await.unwrap();
    assert!(href.starts_with("geo:52.51") && href.contains("?q=52.51"), "{href}");
    c.find(Locator::Css("[data-testid=copy-location]")).await.unwrap().click().await.unwrap();
    until("copied", Duration::from_secs(5), || async {
        c.find(Locator::Css("[data-testid=copied]")).await.unwrap().text().await.unwrap_or_default()
            == "Copied."
    })
    .await;
    let copied = c.execute_async("navigator.clipboard.readText().then(arguments[0])", vec![]).await.unwrap();
    assert_eq!(copied.as_str(), Some(text.as_str()), "the clipboard holds what the page shows");
    c.execute("document.querySelector('[data-testid=place]').scrollIntoView()", vec![]).await.unwrap();
    save_screenshot("watch-place.png", &c.screenshot().await.unwrap());
    let violations = axe_serious(&c).await;
    assert!(violations.is_empty(), "axe-core on the live watch page:\n{}", violations.join("\n"));
    // The check sees what it should: an image without a text alternative is critical.
    c.execute("const i = document.createElement('img'); i.src = '/x.png'; document.body.append(i);", vec![])
        .await
        .unwrap();
    let planted = axe_serious(&c).await;
    assert!(planted.iter().any(|v| v.contains("image-alt")), "{planted:?}");
    drop(phone);
}
