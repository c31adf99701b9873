//! Protocol behaviour with a hand-driven phone: idempotent start, out-of-order fixes, phone
//! silence, watcher resume, responder resolve, and paced (never dropped) phone traffic.

use crate::support;

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
async fn start(server: &impl Base, token: &str, client_id: &str) -> (Ws, String, String, bool, Acks) {
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
    let server = TestApp::start(&env, &["--phone-silence-ms", "600", "--heartbeat-ms", "10000"]).await;

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
    let server = TestApp::start(&env, &["--phone-msgs-per-sec", "20"]).await;
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
    let server = TestApp::start(&env, &["--phone-silence-ms", "1500"]).await;
    let (mut ws, _alert, watch_token, _, _) = start(&server, &token, "flappy").await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(1, 1_000)] }).await;
    until_ack(&mut ws, 1).await;
    let mut watcher =
        connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
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
    let server = TestApp::start(&env, &[]).await;
    let (mut ws, _alert, watch_token, _, _) = start(&server, &token, "long").await;
    for batch in 0..200u64 {
        let fixes = (1..=100).map(|i| batch * 100 + i).map(|seq| fix(seq, seq as i64 * 1000)).collect();
        send_json(&mut ws, &PhoneMsg::Fix { fixes }).await;
    }
    until_ack(&mut ws, 20_000).await;
    let mut watcher =
        connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let snapshot =
        tokio::time::timeout(Duration::from_secs(10), watch_msg(&mut watcher)).await.expect("a snapshot");
    let WatchMsg::Snapshot { trail, .. } = snapshot else { panic!("no snapshot") };
    assert!(trail.len() <= 4_000, "{} fixes in the snapshot", trail.len());
    let newest: Vec<u64> = trail[trail.len() - 2_000..].iter().map(|f| f.seq).collect();
    assert_eq!(newest, (18_001..=20_000).collect::<Vec<_>>(), "the newest fixes are whole");
    assert_eq!(trail[0].seq, 1, "the route starts where the SOS started");

    // The whole stored trail, unthinned: GeoJSON, or GPX on request.
    let url = server.http(&format!("/v1/alerts/{_alert}/trail"));
    let http = reqwest::Client::new();
    let geo: serde_json::Value =
        http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let features = geo["features"].as_array().unwrap();
    assert_eq!(features.len(), 20_000);
    let seqs: Vec<u64> = features.iter().map(|f| f["properties"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=20_000).collect::<Vec<_>>(), "in device-time order");
    assert_eq!(features[0]["geometry"]["coordinates"][1].as_f64().unwrap(), fix(1, 1000).lat);
    let gpx = http
        .get(&url)
        .query(&[("token", &watch_token)])
        .header("accept", "application/gpx+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(gpx.headers()["content-type"], "application/gpx+xml");
    let gpx = gpx.text().await.unwrap();
    assert_eq!(gpx.matches("<trkpt ").count(), 20_000);
    assert!(gpx.contains("<time>1970-01-01T00:00:01.000Z</time>"), "ISO times");
    let other = env.user("Eve", "+4915187654321");
    assert_eq!(http.get(&url).bearer_auth(&other).send().await.unwrap().status(), 403);
}
both!(late_joiner_on_a_long_sos, long_sos);

/// The network loses the phone's first `stop`: the simulator sends it again until `stopped`
/// comes back, so the alert ends instead of staying active forever.
async fn stop_until_stopped(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    let proxy = DropFirstStop::start(server.addr.clone()).await;
    let track = env.data_dir.join("short.csv");
    let t0 = 1_700_000_000_000i64;
    let rows: Vec<String> = (0..5).map(|i| format!("{},52.5{i},13.4,5", t0 + i * 1000)).collect();
    std::fs::write(&track, format!("unix_ms,lat,lon,accuracy_m\n{}\n", rows.join("\n"))).unwrap();
    let relay = format!("http://{}", proxy.addr);
    let phone = Phone::start_via(&relay, &token, &["--gpx", track.to_str().unwrap(), "--speed", "20"]);
    let alert = phone.alert_id.clone();
    let (ok, out, err) = phone.wait(Duration::from_secs(30));
    assert!(ok, "{out}\n{err}");
    assert!(proxy.dropped.load(std::sync::atomic::Ordering::SeqCst), "the first stop was lost");
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert}' AND status = 'resolved'"))
            .await,
        1
    );
}
both!(stop_is_resent_until_stopped, stop_until_stopped);

/// A server that accepts the phone, confirms its alert and then fails at once (storage down:
/// 4503), again and again. The simulator backs off across those failures instead of
/// reconnecting several times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_from_a_failing_server() {
    use alertme_protocol::{AlertStatus, Limits};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    let env = Env::new(Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = accepted.clone();
    let failing = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                let send = |m: &PhoneServerMsg| Message::Text(serde_json::to_string(m).unwrap().into());
                let welcome = PhoneServerMsg::Welcome {
                    protocol: 1,
                    server: "failing".into(),
                    limits: Limits {
                        max_message_bytes: 65536,
                        max_fixes_per_message: 100,
                        heartbeat_ms: 10_000,
                    },
                    active_alert: None,
                };
                let _ = ws.send(send(&welcome)).await;
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(&m, Message::Text(t) if t.contains("\"start\"")) {
                        let started = PhoneServerMsg::Started {
                            alert_id: "a1".into(),
                            client_id: "c1".into(),
                            created: true,
                            status: AlertStatus::Active,
                            watch_url: "http://127.0.0.1/w/amw_x".into(),
                            acks: Acks::default(),
                        };
                        let _ = ws.send(send(&started)).await;
                        let close =
                            CloseFrame { code: CloseCode::from(4503), reason: "storage failed".into() };
                        let _ = ws.close(Some(close)).await;
                        return;
                    }
                }
            });
        }
    });
    let track = env.data_dir.join("short.csv");
    std::fs::write(&track, "unix_ms,lat,lon,accuracy_m\n1700000000000,52.5,13.4,5\n").unwrap();
    let phone = Phone::start_via(
        &format!("http://{addr}"),
        "amd_x",
        &["--gpx", track.to_str().unwrap(), "--ack-timeout", "60"],
    );
    let first = accepted.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let in_3s = accepted.load(std::sync::atomic::Ordering::SeqCst) - first;
    drop(phone);
    failing.abort();
    // 50 ms doubling to 5 s with jitter: at most ~7 attempts in 3 s (a reset on every connect
    // made ~60).
    assert!(in_3s <= 8, "{in_3s} reconnects in 3 s");
    assert!(in_3s >= 2, "it keeps trying ({in_3s})");
}

/// A watcher that stops reading its socket is cut with 4410 within the stall limit (1.5 s
/// here), and the phone's audience count drops, while the phone streams on.
async fn stalled_watcher(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &["--watcher-stall-ms", "1500"]).await;
    let (mut ws, _alert, watch_token, _, _) = start(&server, &token, "stall").await;
    // A raw client: the handshake, then it reads nothing and writes nothing (no pongs).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let req = format!(
        "GET /v1/watch?token={watch_token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // The phone streams; the watcher reads nothing more.
    let stalled_at = Instant::now();
    let mut seq = 0;
    let mut watching = Vec::new();
    while stalled_at.elapsed() < Duration::from_secs(5) {
        seq += 1;
        send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(seq, seq as i64 * 1000)] }).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(Some(Message::Text(t))) = tokio::time::timeout_at(deadline, next(&mut ws)).await {
            if let Ok(PhoneServerMsg::Audience { watching: n, .. }) = serde_json::from_str(t.as_str()) {
                watching.push((stalled_at.elapsed(), n));
            }
        }
    }
    let seen = watching.iter().position(|(_, n)| *n == 1).expect("the watcher was counted");
    let gone = watching[seen..].iter().find(|(_, n)| *n == 0).map(|(t, _)| *t);
    assert!(gone.is_some_and(|t| t < Duration::from_millis(3500)), "{watching:?}");
    // What the server sent ends with a close frame: 4410.
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut bytes)).await.unwrap().unwrap();
    let close = bytes.windows(4).rposition(|w| w[0] == 0x88 && w[2..4] == 4410u16.to_be_bytes());
    assert!(close.is_some(), "no 4410 close frame in {} bytes", bytes.len());
}
both!(stalled_watcher_is_cut, stalled_watcher);

/// SIGTERM: phone, watcher and console sockets close with 1012 (reconnect at once), what was
/// acked stays stored, and the process exits 0 within a few seconds.
async fn graceful_stop(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let rt = env.responder("Rita");
    let mut server = Server::start(&env, "127.0.0.1:0", &[]);
    let (mut ws, alert, watch_token, _, _) = start(&server, &token, "graceful").await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(1, 1_000), fix(2, 2_000)] }).await;
    until_ack(&mut ws, 2).await;
    let mut watcher =
        connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let _snapshot = watch_msg(&mut watcher).await;
    let mut console = connect(&server.ws("/v1/responder"), Some(&rt), None).await.unwrap();
    let _overview = next(&mut console).await;
    // A connection that has sent nothing yet has no request to finish: the stop does not wait
    // for its first bytes (nor hyper's deadline for them).
    let silent = tokio::net::TcpStream::connect(server.addr.as_str()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = std::thread::spawn(move || {
        let code = server.terminate(Duration::from_secs(15));
        (code, server.log())
    });
    for (what, socket) in [("phone", &mut ws), ("watcher", &mut watcher), ("console", &mut console)] {
        let code = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match futures_util::StreamExt::next(socket).await {
                    Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                    Some(Ok(_)) => continue,
                    _ => return 0,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: no close"));
        assert_eq!(code, 1012, "{what}");
    }
    let (code, log) = stopping.join().unwrap();
    assert_eq!(code, Some(0), "exit code");
    assert!(!log.iter().any(|l| l.contains("still running after")), "the stop waited:\n{}", log.join("\n"));
    drop(silent);
    assert_eq!(env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}'")).await, 2);
}
both!(sigterm_drains_with_1012, graceful_stop);

/// A second server on the same SQLite database refuses to start, saying why (each would take
/// itself for the only writer); once the first has stopped, a server starts on it at once.
#[tokio::test]
async fn one_server_per_sqlite_database() {
    let env = Env::new(Backend::Sqlite).await;
    let mut first = Server::start(&env, "127.0.0.1:0", &[]);
    let mut second = std::process::Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &env.url, "--db-lock-wait-ms", "300"])
        .arg("--data-dir")
        .arg(&env.data_dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = exited(&mut second, Duration::from_secs(20)) else {
        second.kill().unwrap();
        second.wait().unwrap();
        panic!("a second server runs on the same database");
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said).unwrap();
    assert!(!status.success(), "{said}");
    assert!(said.contains("another AlertMe server is using the database"), "{said}");
    assert_eq!(first.terminate(Duration::from_secs(15)), Some(0));
    let _next = Server::start(&env, "127.0.0.1:0", &[]);
}

/// `/metrics` in Prometheus' text format: live alerts, sockets by kind, frames relayed, writer
/// batches, ack latency, outbox states, errors — and nothing that identifies anyone. Without a
/// token configured only this machine may read it; with one, only its bearer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_for_operators() {
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &["--metrics-token", "scrape-secret"]);
    let (mut ws, alert, watch_token, _, _) = start(&server, &token, "metrics").await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(1, 1_000)] }).await;
    until_ack(&mut ws, 1).await;
    let mut watcher =
        connect(&server.ws(&format!("/v1/watch?token={watch_token}")), None, None).await.unwrap();
    let _snapshot = watch_msg(&mut watcher).await;
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix(2, 2_000)] }).await;
    until_ack(&mut ws, 2).await;
    let _fix = watch_msg(&mut watcher).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.http("/v1/devices")).bearer_auth("amd_wrong").send().await.unwrap().status(),
        401
    );
    let url = server.http("/metrics");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 403, "the token is required");
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 403);
    let text = http.get(&url).bearer_auth("scrape-secret").send().await.unwrap().text().await.unwrap();
    for want in [
        "alertme_live_alerts 1",
        "alertme_sockets{kind=\"phone\"} 1",
        "alertme_sockets{kind=\"watch\"} 1",
        "alertme_frames_relayed_total",
        "alertme_writer_batch_rows_count",
        "alertme_ack_latency_seconds_count",
        "alertme_http_errors_total{error=\"unauthorized\"}",
    ] {
        assert!(text.contains(want), "no {want} in\n{text}");
    }
    for secret in [token.as_str(), watch_token.as_str(), alert.as_str(), "4915112345678", "52.5"] {
        assert!(!text.contains(secret), "{secret} leaked into /metrics");
    }
}
