//! Protocol behaviour with a hand-driven phone: idempotent start, out-of-order fixes, phone
//! silence, watcher resume, responder resolve, and paced (never dropped) phone traffic.

mod support;

use std::time::{Duration, Instant};

use alertme_protocol::{
    Acks, AlertStatus, Fix, PhoneMsg, PhoneServerMsg, ResponderCmd, ResponderMsg, WatchMsg,
};
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn fix(seq: u64, time_ms: i64) -> Fix {
    Fix {
        seq,
        lat: 52.5 + seq as f64 * 1e-4,
        lon: 13.4,
        accuracy_m: 5.0,
        time_ms,
        battery_pct: Some(80),
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    }
}

/// Opens a phone socket and starts (or resumes) alert `client_id`.
async fn start(server: &Server, token: &str, client_id: &str) -> (Ws, String, String, bool, Acks) {
    let mut ws = connect(&server.ws("/v1/phone"), Some(token), None).await.unwrap();
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Welcome { .. }));
    send_json(
        &mut ws,
        &PhoneMsg::Start { client_id: client_id.into(), audio_mime: None, pressed_at_ms: None },
    )
    .await;
    loop {
        if let PhoneServerMsg::Started { alert_id, watch_url, created, acks, .. } = phone_msg(&mut ws).await {
            return (ws, alert_id, watch_url.rsplit('/').next().unwrap().to_owned(), created, acks);
        }
    }
}

async fn until_ack(ws: &mut Ws, want: u64) {
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(ws).await {
            if acks.fix >= want {
                assert_eq!(acks.fix, want);
                return;
            }
        }
    }
}

async fn watch_msg(ws: &mut Ws) -> WatchMsg {
    loop {
        match next(ws).await {
            Some(Message::Text(t)) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(_) => continue,
            None => panic!("watch socket closed"),
        }
    }
}

async fn protocol_behaviour(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let responder = env.responder("Rita");
    let server =
        Server::start(&env, "127.0.0.1:0", &["--phone-silence-ms", "600", "--heartbeat-ms", "10000"]);

    // Idempotent start: a retried start (new socket, same client id) resumes the same alert.
    let (ws1, alert_id, watch_token, created, _) = start(&server, &token, "sos-1").await;
    assert!(created);
    drop(ws1);
    let (mut ws, again, watch_again, created, acks) = start(&server, &token, "sos-1").await;
    assert_eq!((again.as_str(), created, acks), (alert_id.as_str(), false, Acks::default()));
    assert_eq!(watch_again, watch_token, "the phone gets the same watch link back");

    // Back online: newest fix first, then the backlog. Acks are cumulative; the trail is by time.
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(3, 3_000)] }).await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(1, 1_000), fix(2, 2_000), fix(1, 1_000)] }).await;
    until_ack(&mut ws, 3).await;
    let watch_url = server.ws(&format!("/v1/watch?token={watch_token}"));
    let mut watcher = connect(&watch_url, None, None).await.unwrap();
    let WatchMsg::Snapshot { epoch, ev, trail, phone, resync, .. } = watch_msg(&mut watcher).await else {
        panic!()
    };
    assert!(!resync);
    assert!(phone.connected);
    assert_eq!(trail.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert_id}'")).await, 3);

    // The phone goes quiet: watchers see the link lost, then restored when it speaks again.
    let silent_at = Instant::now();
    loop {
        if let WatchMsg::Phone { phone, .. } = watch_msg(&mut watcher).await {
            assert!(!phone.connected);
            break;
        }
    }
    assert!(silent_at.elapsed() >= Duration::from_millis(300), "not before the configured silence");
    send_json(&mut ws, &PhoneMsg::Ping { t: Some(1) }).await;
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Pong { t: Some(1), .. }));
    let last_ev = loop {
        if let WatchMsg::Phone { phone, ev } = watch_msg(&mut watcher).await {
            assert!(phone.connected);
            break ev;
        }
    };
    assert!(last_ev > ev);

    // A watcher that drops and comes back with (epoch, ev) gets exactly what it missed.
    drop(watcher);
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(4, 4_000), fix(5, 5_000)] }).await;
    until_ack(&mut ws, 5).await;
    let mut watcher = connect(&format!("{watch_url}&epoch={epoch}&ev={last_ev}"), None, None).await.unwrap();
    assert!(
        matches!(watch_msg(&mut watcher).await, WatchMsg::Resumed { from_ev, .. } if from_ev == last_ev + 1)
    );
    let mut missed = Vec::new();
    while missed.len() < 2 {
        if let WatchMsg::Fix { fix, .. } = watch_msg(&mut watcher).await {
            missed.push(fix.seq);
        }
    }
    assert_eq!(missed, vec![4, 5]);
    // One from another epoch (say, before a server restart) gets a snapshot flagged as a resync.
    let mut stale = connect(&format!("{watch_url}&epoch=gone&ev=7"), None, None).await.unwrap();
    let WatchMsg::Snapshot { resync, trail, .. } = watch_msg(&mut stale).await else { panic!() };
    assert!(resync);
    assert_eq!(trail.len(), 5);

    // A responder resolves it from the console: phone and watchers learn, sockets close cleanly.
    let mut console = connect(&server.ws("/v1/responder"), Some(&responder), None).await.unwrap();
    let Some(Message::Text(t)) = next(&mut console).await else { panic!() };
    let ResponderMsg::Overview { alerts, .. } = serde_json::from_str(t.as_str()).unwrap() else { panic!() };
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].last_fix.as_ref().map(|f| f.seq), Some(5));
    // Notes reach every console (and later ones), never the contacts' watch pages.
    send_json(
        &mut console,
        &ResponderCmd::Note { alert_id: alert_id.clone(), text: "Police informed".into() },
    )
    .await;
    loop {
        let Some(Message::Text(t)) = next(&mut console).await else { panic!() };
        if let ResponderMsg::Update { alert } = serde_json::from_str(t.as_str()).unwrap() {
            if let Some(n) = alert.notes.first() {
                assert_eq!((n.by.as_str(), n.text.as_str()), ("Rita", "Police informed"));
                break;
            }
        }
    }
    send_json(&mut console, &ResponderCmd::Note { alert_id: alert_id.clone(), text: "x".repeat(1001) }).await;
    loop {
        let Some(Message::Text(t)) = next(&mut console).await else { panic!() };
        if let ResponderMsg::Error { code, .. } = serde_json::from_str(t.as_str()).unwrap() {
            assert_eq!(code, "bad_request");
            break;
        }
    }
    let mut second = connect(&server.ws("/v1/responder"), Some(&responder), None).await.unwrap();
    let Some(Message::Text(t)) = next(&mut second).await else { panic!() };
    let ResponderMsg::Overview { alerts, .. } = serde_json::from_str(t.as_str()).unwrap() else { panic!() };
    assert_eq!(alerts[0].notes.len(), 1);
    send_json(&mut console, &ResponderCmd::Resolve { alert_id: alert_id.clone() }).await;
    loop {
        if let PhoneServerMsg::Stopped { status } = phone_msg(&mut ws).await {
            assert_eq!(status, AlertStatus::Resolved);
            break;
        }
    }
    let w = watch_until_close(watcher, Duration::from_secs(10)).await;
    assert_eq!(w.close, Some(1000));
    assert!(w
        .msgs
        .iter()
        .any(|m| matches!(m, WatchMsg::Alert { alert, .. } if alert.status == AlertStatus::Resolved)));
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert_id}' AND status = 'resolved'"))
            .await,
        1
    );
    // The console's history finds it by name (case-insensitive), and only it.
    let list = |q: &str, status: &str| {
        let url = server.http(&format!("/v1/alerts?status={status}&q={q}&token={responder}"));
        async move { reqwest::get(url).await.unwrap().json::<Vec<alertme_protocol::AlertInfo>>().await.unwrap() }
    };
    let found = list("aN", "ended").await;
    assert_eq!(
        found.iter().map(|a| (a.id.as_str(), a.user_name.as_str())).collect::<Vec<_>>(),
        vec![(alert_id.as_str(), "Ana")]
    );
    assert!(list("zzz", "ended").await.is_empty());
    assert!(list("", "active").await.is_empty());
    // Resolving again is a clear error, not a crash.
    send_json(&mut console, &ResponderCmd::Resolve { alert_id: "nope".into() }).await;
    loop {
        let Some(Message::Text(t)) = next(&mut console).await else { panic!() };
        if let ResponderMsg::Error { code, .. } = serde_json::from_str(t.as_str()).unwrap() {
            assert_eq!(code, "not_found");
            break;
        }
    }
    // Starting the ended alert's client id again reports it ended instead of opening a new one.
    let (mut ws, same, _, created, acks) = start(&server, &token, "sos-1").await;
    assert_eq!((same, created, acks.fix), (alert_id, false, 5));
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Stopped { status: AlertStatus::Resolved }));
}
both!(protocol, protocol_behaviour);

/// Phone reads beyond the configured rate are paced, never dropped.
async fn phone_rate_is_paced(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &["--phone-msgs-per-sec", "20"]);
    let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Welcome { .. }));
    let t0 = Instant::now();
    for i in 0..120 {
        send_json(&mut ws, &PhoneMsg::Ping { t: Some(i) }).await;
    }
    for i in 0..120 {
        assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Pong { t: Some(t), .. } if t == i));
    }
    // Burst 80, then 20/s: the last 40 cannot all be answered in under 1.5 s.
    assert!(t0.elapsed() >= Duration::from_millis(1500), "not paced: {:?}", t0.elapsed());
}
both!(pacing, phone_rate_is_paced);

/// A phone on a bad link drops its socket and reconnects again and again: watchers never see
/// "connection lost" for it. Only a phone silent for `--phone-silence-ms` shows as lost.
async fn no_flapping(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &["--phone-silence-ms", "1500"]);
    let (mut ws, _alert, watch_token, _, _) = start(&server, &token, "flappy").await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(1, 1_000)] }).await;
    until_ack(&mut ws, 1).await;
    let mut watcher = connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let WatchMsg::Snapshot { phone, .. } = watch_msg(&mut watcher).await else { panic!("no snapshot") };
    assert!(phone.connected);
    // Sixteen drops in about two seconds, each followed by a reconnect.
    let mut heard = Instant::now();
    for _ in 0..16 {
        drop(ws);
        tokio::time::sleep(Duration::from_millis(40)).await;
        ws = start(&server, &token, "flappy").await.0;
        heard = Instant::now();
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let seen = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let WatchMsg::Phone { phone, .. } = watch_msg(&mut watcher).await {
                return phone.connected;
            }
        }
    })
    .await;
    assert!(!matches!(seen, Ok(false)), "a watcher saw the link flap");
    // Gone for good: "connection lost" once the phone was silent for 1.5 s, not before.
    drop(ws);
    loop {
        if let WatchMsg::Phone { phone, .. } = watch_msg(&mut watcher).await {
            assert!(!phone.connected);
            break;
        }
    }
    let after = heard.elapsed();
    assert!(after >= Duration::from_millis(1400), "shown lost {after:?} after the phone was last heard");
}
both!(reconnects_do_not_flap, no_flapping);

/// A long SOS (20,000 fixes, five and a half hours at 1 Hz): a late joiner still gets a
/// snapshot, with the newest 2,000 fixes whole and the older trail thinned.
async fn long_sos(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &[]);
    let (mut ws, _alert, watch_token, _, _) = start(&server, &token, "long").await;
    for batch in 0..200u64 {
        let fixes = (1..=100).map(|i| batch * 100 + i).map(|seq| fix(seq, seq as i64 * 1000)).collect();
        send_json(&mut ws, &PhoneMsg::Fix { fixes }).await;
    }
    until_ack(&mut ws, 20_000).await;
    let mut watcher = connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let snapshot = tokio::time::timeout(Duration::from_secs(10), watch_msg(&mut watcher)).await.expect("a snapshot");
    let WatchMsg::Snapshot { trail, .. } = snapshot else { panic!("no snapshot") };
    assert!(trail.len() <= 4_000, "{} fixes in the snapshot", trail.len());
    let newest: Vec<u64> = trail[trail.len() - 2_000..].iter().map(|f| f.seq).collect();
    assert_eq!(newest, (18_001..=20_000).collect::<Vec<_>>(), "the newest fixes are whole");
    assert_eq!(trail[0].seq, 1, "the route starts where the SOS started");
}
both!(late_joiner_on_a_long_sos, long_sos);
