//! Escalation without the button: check-in timers with a controllable clock (exactly when and as
//! often as they should, across restarts and two servers), the duress PIN, a silent SOS phone.

use crate::support;

use std::time::Duration;

use alertme_protocol::{ContactInput, Fix, PhoneMsg, PhoneServerMsg, Timer, TimerStart};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const ANA: &str = "+4915112345678";

struct Person {
    token: String,
    api: alertme_client::Api,
}

impl Person {
    async fn new(env: &Env, server: &impl Base) -> Self {
        let token = env.user("Ana", ANA);
        let api = alertme_client::Api::new(&server.http("")).with_token(&token);
        api.set_pin("1234", Some("9999")).await.unwrap();
        let ben = ContactInput {
            name: "Ben".into(),
            phone: "+4915211111111".into(),
            position: None,
            language: None,
        };
        api.add_contact(&ben).await.unwrap();
        Self { token, api }
    }

    /// The same person on another server (same database).
    fn on(&self, server: &impl Base) -> alertme_client::Api {
        alertme_client::Api::new(&server.http("")).with_token(&self.token)
    }

    async fn start_timer(&self, server: &impl Base, secs: u64, grace: u64) -> Timer {
        let t = TimerStart {
            duration_s: secs,
            grace_s: Some(grace),
            note: Some("walking home".into()),
            destination: Some("Kreuzberg".into()),
        };
        self.on(server).start_timer(&t).await.unwrap()
    }

    /// Checks in (`checkin`) or cancels (`cancel`) with a PIN.
    async fn end_timer(&self, id: &str, how: &str, pin: &str) -> Result<Timer, alertme_client::ApiError> {
        match how {
            "checkin" => self.api.check_in(id, pin).await,
            _ => self.api.cancel_timer(id, pin).await,
        }
    }
}

async fn advance(server: &TestApp, ms: i64) {
    server.clock.advance(ms);
}

async fn timer_alerts(env: &Env) -> i64 {
    env.scalar("SELECT COUNT(*) FROM alerts WHERE source = 'timer'").await
}

/// Waits a little for the scheduler and returns the count of timer alerts.
async fn settled_alerts(env: &Env) -> i64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    timer_alerts(env).await
}

/// Fires once at deadline + grace, after prompting the phone; never again.
async fn fires_once(backend: Backend) {
    let env = Env::new(backend).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let ana = Person::new(&env, &server).await;
    let mut phone = connect(&server.ws("/v1/phone"), Some(&ana.token), None).await.unwrap();
    let _welcome = next(&mut phone).await;
    let fix = Fix {
        seq: 1,
        lat: 52.5,
        lon: 13.4,
        accuracy_m: 8.0,
        time_ms: 1_700_000_000_000,
        battery_pct: None,
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    };
    send_json(&mut phone, &PhoneMsg::Track { fix }).await;
    let t = ana.start_timer(&server, 1500, 60).await;
    assert_eq!(t.status, "active");
    advance(&server, 1_499_000).await;
    assert_eq!(settled_alerts(&env).await, 0, "not before the deadline");
    advance(&server, 2_000).await;
    let prompt = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let Some(Message::Text(t)) = next(&mut phone).await else { panic!("phone closed") };
            if let PhoneServerMsg::CheckInDue { timer_id, fires_at_ms } =
                serde_json::from_str(t.as_str()).unwrap()
            {
                return (timer_id, fires_at_ms);
            }
        }
    })
    .await
    .expect("the phone is prompted at the deadline");
    assert_eq!(prompt.0, t.id);
    assert_eq!(prompt.1, t.deadline_ms + 60_000);
    // A phone that connects during the grace period (it was offline at the deadline) is
    // prompted too, right after `welcome`.
    let mut late = connect(&server.ws("/v1/phone"), Some(&ana.token), None).await.unwrap();
    let _welcome = next(&mut late).await;
    let Some(Message::Text(t2)) = next(&mut late).await else { panic!("no prompt") };
    let PhoneServerMsg::CheckInDue { timer_id, fires_at_ms } = serde_json::from_str(t2.as_str()).unwrap()
    else {
        panic!("expected check_in_due, got {t2}")
    };
    assert_eq!((timer_id.as_str(), fires_at_ms), (t.id.as_str(), t.deadline_ms + 60_000));
    drop(late);
    assert_eq!(settled_alerts(&env).await, 0, "not during the grace period");
    advance(&server, 60_000).await;
    eventually(Duration::from_secs(5), "the alert", || async {
        (timer_alerts(&env).await == 1).then_some(())
    })
    .await;
    advance(&server, 3_600_000).await;
    assert_eq!(settled_alerts(&env).await, 1, "exactly once");
    let alert = env.scalar("SELECT COUNT(*) FROM fixes f JOIN alerts a ON a.id = f.alert_id WHERE a.source = 'timer' AND f.seq = 0 AND f.lat = 52.5").await;
    assert_eq!(alert, 1, "the alert carries the last known position");
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'alert'").await,
        1,
        "the contact is texted once"
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM timers WHERE status = 'fired'").await, 1);
    // The text says why, with what the person wrote on the timer.
    let texts: Vec<serde_json::Value> = eventually(Duration::from_secs(10), "the alert text", || async {
        let list: Vec<serde_json::Value> =
            reqwest::get(server.http("/v1/dev/sms")).await.ok()?.json().await.ok()?;
        let alert: Vec<_> =
            list.into_iter().filter(|m| m["body"].as_str().unwrap().contains("check-in")).collect();
        (!alert.is_empty()).then_some(alert)
    })
    .await;
    let body = texts[0]["body"].as_str().unwrap();
    assert!(body.contains("missed a safety check-in (walking home, Kreuzberg)"), "{body}");
}
both!(fires_once_after_grace, fires_once);

/// A check-in (with the PIN) stops it for good; a wrong PIN does not.
async fn check_in_stops_it(backend: Backend) {
    let env = Env::new(backend).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let ana = Person::new(&env, &server).await;
    let t = ana.start_timer(&server, 600, 0).await;
    assert_eq!(ana.end_timer(&t.id, "checkin", "0000").await.unwrap_err().status, 403);
    assert_eq!(ana.end_timer(&t.id, "checkin", "1234").await.unwrap().status, "checked_in");
    advance(&server, 7_200_000).await;
    assert_eq!(settled_alerts(&env).await, 0);
    assert_eq!(ana.end_timer(&t.id, "cancel", "1234").await.unwrap_err().status, 404, "already over");
}
both!(check_in_never_fires, check_in_stops_it);

/// A deadline that passes while the server is down fires right after start, once.
async fn restart_spanning_deadline(backend: Backend) {
    let env = Env::new(backend).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let ana = Person::new(&env, &server).await;
    ana.start_timer(&server, 600, 0).await;
    let clock = server.clock.clone();
    server.stop().await;
    // Time passes while the server is down.
    clock.advance(700_000);
    let server = TestApp::start_with(&env, &env.data_dir, &["--dev-sms"], clock).await;
    eventually(Duration::from_secs(5), "the alert after restart", || async {
        (timer_alerts(&env).await == 1).then_some(())
    })
    .await;
    advance(&server, 3_600_000).await;
    assert_eq!(settled_alerts(&env).await, 1);
}
both!(restart_spans_deadline, restart_spanning_deadline);

/// Two servers on one PostgreSQL database: one alert, one text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_fire_once() {
    let env = Env::new(Backend::Postgres).await;
    let secret = ["--secret", "shared-secret-for-both-servers"];
    let a = TestApp::start(&env, &secret).await;
    let ana = Person::new(&env, &a).await;
    let other_dir = env.data_dir.join("second");
    std::fs::create_dir_all(&other_dir).unwrap();
    // One clock for both: they pass the deadlines at the same moment.
    let b = TestApp::start_with(&env, &other_dir, &secret, a.clock.clone()).await;
    for _ in 0..5 {
        ana.start_timer(&a, 600, 0).await;
    }
    advance(&a, 601_000).await;
    let _still_running = &b;
    eventually(Duration::from_secs(10), "five alerts", || async {
        (timer_alerts(&env).await >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(timer_alerts(&env).await, 5, "each timer fired once");
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'alert'").await,
        5,
        "one text per timer"
    );
}

/// The duress PIN cancels like the real one for whoever holds the phone, and raises a silent alert.
async fn duress(backend: Backend) {
    let env = Env::new(backend).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let ana = Person::new(&env, &server).await;
    let normal = ana.start_timer(&server, 600, 60).await;
    let forced = ana.start_timer(&server, 600, 60).await;
    let b1 = ana.end_timer(&normal.id, "cancel", "1234").await.unwrap();
    let b2 = ana.end_timer(&forced.id, "cancel", "9999").await.unwrap();
    let strip = |t: Timer| Timer { id: String::new(), deadline_ms: 0, ..t };
    assert_eq!(strip(b1), strip(b2), "the answer does not betray the duress PIN");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM alerts WHERE duress = TRUE").await, 1);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM alerts").await, 1, "the normal cancel raised nothing");
    // The phone sees no active alert; contacts are told it may be duress.
    let mut phone = connect(&server.ws("/v1/phone"), Some(&ana.token), None).await.unwrap();
    let Some(Message::Text(t)) = next(&mut phone).await else { panic!() };
    let PhoneServerMsg::Welcome { active_alert, .. } = serde_json::from_str(t.as_str()).unwrap() else {
        panic!()
    };
    assert!(active_alert.is_none(), "nothing on the phone gives the alert away");
    let texts = eventually(Duration::from_secs(10), "console text", || async {
        let list: Vec<serde_json::Value> =
            reqwest::get(server.http("/v1/dev/sms")).await.unwrap().json().await.unwrap();
        let alert: Vec<serde_json::Value> =
            list.into_iter().filter(|m| m["body"].as_str().unwrap().contains("Watch live")).collect();
        (!alert.is_empty()).then_some(alert)
    })
    .await;
    assert!(texts[0]["body"].as_str().unwrap().contains("possible duress"), "{texts:?}");
}
both!(duress_pin, duress);

/// An SOS phone that goes silent: watchers see the link lost, contacts are texted once with the
/// last known position.
async fn silent_phone(backend: Backend) {
    let env = Env::new(backend).await;
    let server = Server::start(
        &env,
        "127.0.0.1:0",
        &["--phone-silence-ms", "300", "--phone-silent-text-ms", "800", "--dev-sms"],
    );
    let ana = Person::new(&env, &server).await;
    let mut phone = connect(&server.ws("/v1/phone"), Some(&ana.token), None).await.unwrap();
    let _welcome = next(&mut phone).await;
    send_json(
        &mut phone,
        &PhoneMsg::Start { client_id: "sos".into(), audio_mime: None, pressed_at_ms: None },
    )
    .await;
    let fix = Fix {
        seq: 1,
        lat: 52.51234,
        lon: 13.41234,
        accuracy_m: 6.0,
        time_ms: 1_700_000_000_000,
        battery_pct: Some(9),
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    };
    send_json(&mut phone, &PhoneMsg::Fix { fixes: vec![fix] }).await;
    // Then nothing: no fix, no audio, no ping.
    let texts = eventually(Duration::from_secs(10), "phone-silent text", || async {
        let list: Vec<serde_json::Value> =
            reqwest::get(server.http("/v1/dev/sms")).await.unwrap().json().await.unwrap();
        let t: Vec<serde_json::Value> =
            list.into_iter().filter(|m| m["body"].as_str().unwrap().contains("went silent")).collect();
        (!t.is_empty()).then_some(t)
    })
    .await;
    let body = texts[0]["body"].as_str().unwrap();
    assert!(body.contains("mlat=52.51234&mlon=13.41234"), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'phone_silent'").await, 1, "once");
    drop(phone);
}
both!(silent_phone_texts_once, silent_phone);

/// The 10-minute walk against a 150 m safe zone around its start: exactly one exit, where the
/// walk really leaves it, and none again after a crash and a resend of the same fixes.
async fn walk_leaves_safe_zone_once(backend: Backend) {
    let env = Env::new(backend).await;
    let mut server = Server::start(&env, "127.0.0.1:0", &[]);
    let addr = server.addr.clone();
    let ana = Person::new(&env, &server).await;
    let track = alertme_client::track::load(&fixture("gps/gps_walk_10min.gpx")).unwrap();
    let start = &track[0];
    let zone = alertme_protocol::Zone {
        id: None,
        name: "Home".into(),
        kind: "safe".into(),
        geometry: json!({"type": "Point", "coordinates": [start.lon, start.lat]}),
        radius_m: Some(150.0),
        inside: None,
    };
    let added = ana.api.add_zone(&zone).await.unwrap();
    assert!(added.id.is_some());
    let send = |range: std::ops::Range<usize>, server_ws: String| {
        let (token, track) = (ana.token.clone(), track.clone());
        async move {
            let mut phone = connect(&server_ws, Some(&token), None).await.unwrap();
            let _welcome = next(&mut phone).await;
            for f in &track[range] {
                send_json(&mut phone, &PhoneMsg::Track { fix: f.clone() }).await;
            }
            send_json(&mut phone, &PhoneMsg::Ping { t: Some(1) }).await;
            // The pong comes after every track message before it was handled.
            loop {
                if let PhoneServerMsg::Pong { .. } = phone_msg(&mut phone).await {
                    break;
                }
            }
        }
    };
    // Where the walk confirms the exit, by the same rules: the server dies one fix before it.
    let shape =
        alertme_server::domain::geozones::Shape::Circle { lat: start.lat, lon: start.lon, radius_m: 150.0 };
    let k = zone_exit(&track, &shape);
    send(0..k, server.ws("/v1/phone")).await;
    let alerts = || env.scalar("SELECT COUNT(*) FROM alerts WHERE source = 'geozone'");
    assert_eq!(alerts().await, 0, "not yet: one clear fix outside is pending");
    server.kill();
    let server = Server::start(&env, &addr, &[]);
    // After the restart the phone resends an overlapping stretch (ignored as backfill), then the rest.
    send(k - 5..600, server.ws("/v1/phone")).await;
    assert_eq!(alerts().await, 1, "exactly one exit: the pending crossing survived the crash");
    let lat = env.scalar("SELECT CAST(f.lat * 10000000 AS BIGINT) FROM fixes f JOIN alerts a ON a.id = f.alert_id WHERE a.source = 'geozone'").await as f64 / 1e7;
    let lon = env.scalar("SELECT CAST(f.lon * 10000000 AS BIGINT) FROM fixes f JOIN alerts a ON a.id = f.alert_id WHERE a.source = 'geozone'").await as f64 / 1e7;
    let d = 150.0 - shape.signed_distance(lat, lon);
    println!("safe zone left at fix {} ({d:.0} m from its centre)", k + 1);
    assert!((150.0..=230.0).contains(&d), "exit reported {d:.0} m from the centre");
    assert!((lat - track[k].lat).abs() < 1e-6 && (lon - track[k].lon).abs() < 1e-6, "at the confirming fix");
}
both!(geozone_walk, walk_leaves_safe_zone_once);

/// The phone-side CLI drives the same API: start a timer, check in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_from_the_command_line() {
    let env = Env::new(Backend::Sqlite).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let ana = Person::new(&env, &server).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["timer", "--server", &server.http(""), "--token", &ana.token])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&["start", "--minutes", "25", "--note", "walking home"]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    assert!(out.contains("active"), "{out}");
    // The deadline as a local wall-clock time and a distance, not epoch milliseconds.
    assert!(out.contains(", in 25 min)"), "{out}");
    assert!(run(&["checkin", &id, "--pin", "1234"]).contains("checked_in"));
    // Without an id, the one running timer; with two running, a clear refusal naming both.
    run(&["start", "--minutes", "30"]);
    assert!(run(&["extend", "--minutes", "40"]).contains(", in 70 min)"), "40 minutes added to 30");
    run(&["start", "--minutes", "50"]);
    let out = std::process::Command::new(BIN)
        .args(["timer", "--server", &server.http(""), "--token", &ana.token, "checkin", "--pin", "1234"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("2 timers are running; name one:"), "{err}");
    for t in ana.api.timers().await.unwrap().iter().filter(|t| t.status == "active") {
        run(&["cancel", &t.id, "--pin", "1234"]);
    }
    advance(&server, 3_600_000).await;
    assert_eq!(settled_alerts(&env).await, 0);
}
