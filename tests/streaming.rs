//! End-to-end streaming: the real server, the real phone simulator, watchers and a responder
//! over real sockets, on SQLite and on PostgreSQL.

use crate::support;

use std::time::Duration;

use alertme_protocol::audio::{KIND_INIT, KIND_UNIT};
use alertme_protocol::{AlertStatus, ResponderCmd, ResponderMsg, WatchMsg};
use sea_orm::ConnectionTrait;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const WALK: &str = "gps/gps_walk_10min.gpx";
const ADTS: &str = "audio/speech_aac32k.aac";

fn walk() -> String {
    fixture(WALK).display().to_string()
}

fn adts() -> String {
    fixture(ADTS).display().to_string()
}

/// Checks what the database holds for a finished alert: every fix once, the recording exact.
async fn assert_stored(env: &Env, server: &impl Base, alert: &str, token: &str, source: &[u8]) {
    assert_eq!(env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}'")).await, 600);
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(DISTINCT seq) FROM fixes WHERE alert_id = '{alert}'")).await,
        600
    );
    assert_eq!(env.scalar(&format!("SELECT MIN(seq) FROM fixes WHERE alert_id = '{alert}'")).await, 1);
    assert_eq!(env.scalar(&format!("SELECT MAX(seq) FROM fixes WHERE alert_id = '{alert}'")).await, 600);
    let http = reqwest::Client::new();
    let parts: Vec<alertme_protocol::RecordingPart> =
        server.get_json(&format!("/v1/alerts/{alert}/recording"), token).await;
    assert_eq!(parts.len(), 1, "one recorder run, one part: {parts:?}");
    assert_eq!(parts[0].bytes, source.len() as u64);
    let body = http.get(server.http(&parts[0].url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.headers()["content-type"], parts[0].mime.as_str());
    let stored = body.bytes().await.unwrap();
    assert_eq!(sha256(&stored), sha256(source), "stored recording must be byte-identical");
    let ranged = http
        .get(server.http(&parts[0].url))
        .bearer_auth(token)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], format!("bytes 100-199/{}", source.len()).as_str());
    assert_eq!(&ranged.bytes().await.unwrap()[..], &source[100..200]);
    let get =
        |range: String| http.get(server.http(&parts[0].url)).bearer_auth(token).header("range", range).send();
    // A span across many chunks (the server reads them step by step), and the last bytes.
    let tail = get(format!("bytes={}-", source.len() - 150_000)).await.unwrap();
    assert_eq!(tail.status(), 206);
    assert!(tail.bytes().await.unwrap()[..] == source[source.len() - 150_000..]);
    let suffix = get("bytes=-50".into()).await.unwrap();
    assert_eq!(&suffix.bytes().await.unwrap()[..], &source[source.len() - 50..]);
    let beyond = get(format!("bytes={}-", source.len() + 10)).await.unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], format!("bytes */{}", source.len()).as_str());
}

/// Asserts the watcher saw every fix exactly once and every audio byte in order.
fn assert_watched_everything(w: &Watched, source: &[u8]) {
    let seqs = w.fix_seqs();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "a fix reached the watcher twice");
    assert_eq!(sorted, (1..=600).collect::<Vec<_>>(), "watcher missed fixes");
    let WatchMsg::Snapshot { audio, .. } = &w.msgs[0] else { panic!("first message must be the snapshot") };
    if let Some(a) = audio {
        assert_eq!(a.first_unit, 0, "joined at the start, so audio must start at unit 0");
    }
    let got = w.audio_bytes(0);
    assert!(got == source, "watcher audio ({} B) differs from the source ({} B)", got.len(), source.len());
    for (h, _) in &w.audio {
        assert!(h.kind == KIND_UNIT || h.kind == KIND_INIT);
    }
    let evs: Vec<u64> = w
        .msgs
        .iter()
        .filter_map(|m| match m {
            WatchMsg::Fix { ev, .. } | WatchMsg::Alert { ev, .. } | WatchMsg::Phone { ev, .. } => Some(*ev),
            _ => None,
        })
        .collect();
    assert!(evs.windows(2).all(|p| p[0] < p[1]), "events must arrive in order");
}

/// Test 1: the walk and the ADTS recording, sped up; a watcher and a responder follow it.
async fn streams_walk_and_recording(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let responder_token = env.responder("Rita");
    let server = TestApp::start(&env, &[]).await;
    let mut console = connect(&server.ws("/v1/responder"), Some(&responder_token), None).await.unwrap();
    let Some(Message::Text(t)) = next(&mut console).await else { panic!() };
    assert!(
        matches!(serde_json::from_str(t.as_str()).unwrap(), ResponderMsg::Overview { alerts, .. } if alerts.is_empty())
    );

    let phone = Phone::start(&server, &token, &["--gpx", &walk(), "--audio", &adts(), "--speed", "60"]);
    let watcher =
        connect(&server.ws(&format!("/v1/watch?token={}", phone.watch_token())), None, None).await.unwrap();
    let watching = tokio::spawn(watch_until_close(watcher, Duration::from_secs(60)));

    // The console sees the new alert and claims it; the watcher will see who is on it.
    loop {
        let Some(Message::Text(t)) = next(&mut console).await else { panic!("console closed") };
        if let ResponderMsg::Update { alert } = serde_json::from_str(t.as_str()).unwrap() {
            assert_eq!(alert.alert.id, phone.alert_id);
            assert_eq!(alert.alert.user_name, "Ana");
            break;
        }
    }
    send_json(&mut console, &ResponderCmd::Claim { alert_id: phone.alert_id.clone() }).await;

    let alert_id = phone.alert_id.clone();
    let (ok, out, err) = phone.wait(Duration::from_secs(60));
    assert!(ok, "phone failed:\n{out}\n{err}");
    assert!(out.contains("all acknowledged (fix 600, audio 168)"), "{out}");

    let w = watching.await.unwrap();
    assert_eq!(w.close, Some(1000), "watchers are closed normally when the alert ends");
    let source = std::fs::read(fixture(ADTS)).unwrap();
    assert_watched_everything(&w, &source);
    let claimed = w
        .msgs
        .iter()
        .any(|m| matches!(m, WatchMsg::Alert { alert, .. } if alert.claimed_by.as_deref() == Some("Rita")));
    assert!(claimed, "watcher must see the responder claim");
    let Some(WatchMsg::Alert { alert, .. }) =
        w.msgs.iter().rev().find(|m| matches!(m, WatchMsg::Alert { .. }))
    else {
        panic!("no final status")
    };
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_stored(&env, &server, &alert_id, &token, &source).await;

    // A recording stored by an earlier version (its bytes in a part file, none in the rows) is
    // imported when the server starts and plays the same.
    drop(server);
    let dir = env.data_dir.join("audio").join(&alert_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0000.aac"), &source).unwrap();
    let db = env.db().await;
    db.execute_unprepared(&format!("UPDATE audio_chunks SET data = NULL WHERE alert_id = '{alert_id}'"))
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_eq!(env.scalar("SELECT COUNT(*) FROM audio_chunks WHERE data IS NULL").await, 168);
    let server = TestApp::start(&env, &[]).await;
    assert_eq!(env.scalar("SELECT COUNT(*) FROM audio_chunks WHERE data IS NULL").await, 0);
    assert_stored(&env, &server, &alert_id, &token, &source).await;
}
both!(walk_and_recording, streams_walk_and_recording);

/// Test 2: the same with at least ten forced drops, half of them in the middle of a frame.
async fn survives_forced_drops(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    let phone = Phone::start(
        &server,
        &token,
        &["--gpx", &walk(), "--audio", &adts(), "--speed", "60", "--drop-every", "0.3"],
    );
    let watcher =
        connect(&server.ws(&format!("/v1/watch?token={}", phone.watch_token())), None, None).await.unwrap();
    let watching = tokio::spawn(watch_until_close(watcher, Duration::from_secs(90)));
    let alert_id = phone.alert_id.clone();
    let (ok, out, err) = phone.wait(Duration::from_secs(90));
    assert!(ok, "phone failed:\n{out}\n{err}");
    let drops: u32 = out.rsplit("forced drops ").next().unwrap().trim().parse().unwrap();
    assert!(drops >= 10, "only {drops} drops: {out}");
    assert!(err.contains("resumed alert"), "the phone must have resumed its alert: {err}");
    let source = std::fs::read(fixture(ADTS)).unwrap();
    assert_watched_everything(&watching.await.unwrap(), &source);
    assert_stored(&env, &server, &alert_id, &token, &source).await;
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert_id}' OR client_id IN (SELECT client_id FROM alerts WHERE id = '{alert_id}')")).await,
        1,
        "resumes must never create a second alert"
    );
}
both!(forced_drops, survives_forced_drops);

/// Test 3: SIGKILL mid-stream, restart on the same port: the phone resumes, nothing acked is lost.
async fn survives_sigkill(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let mut server = Server::start(&env, "127.0.0.1:0", &[]);
    let addr = server.addr.clone();
    let phone = Phone::start(&server, &token, &["--gpx", &walk(), "--audio", &adts(), "--speed", "40"]);
    let alert_id = phone.alert_id.clone();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let acked_before =
        env.scalar(&format!("SELECT COUNT(*) FROM audio_chunks WHERE alert_id = '{alert_id}'")).await;
    server.kill();
    assert!(acked_before > 0, "audio should have been streaming when the server died");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = Server::start(&env, &addr, &[]);
    let health: serde_json::Value =
        reqwest::get(server.http("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["live_alerts"], 1, "the active alert is live again after restart");
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert_id}' AND status = 'active'"))
            .await,
        1
    );

    let (ok, out, err) = phone.wait(Duration::from_secs(90));
    assert!(ok, "phone failed:\n{out}\n{err}");
    assert!(err.contains(&format!("resumed alert {alert_id}")), "{err}");
    let source = std::fs::read(fixture(ADTS)).unwrap();
    assert_stored(&env, &server, &alert_id, &token, &source).await;
}
both!(sigkill_restart, survives_sigkill);

/// Test 4: a watcher joining mid-stream gets init + recent whole units that decode on their own.
async fn late_joiner_audio_decodes(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    let cases = [
        ("adts", fixture(ADTS).display().to_string(), "aac"),
        ("webm", fixture("audio/chunks/mediarecorder_webm").display().to_string(), "webm"),
        ("mp4", fixture("audio/chunks/mediarecorder_mp4").display().to_string(), "mp4"),
    ];
    for (name, audio, ext) in cases {
        let phone = Phone::start(
            &server,
            &token,
            &["--gpx", &walk(), "--audio", &audio, "--speed", "4", "--chunk-ms", "300", "--finish", "keep"],
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut ws = connect(&server.ws(&format!("/v1/watch?token={}", phone.watch_token())), None, None)
            .await
            .unwrap();
        let Some(Message::Text(t)) = next(&mut ws).await else { panic!() };
        let WatchMsg::Snapshot { audio: Some(a), trail, .. } = serde_json::from_str(t.as_str()).unwrap()
        else {
            panic!("{name}: snapshot without audio: {t}")
        };
        assert!(!trail.is_empty());
        assert!(a.first_unit > 0, "{name}: a late joiner starts mid-stream");
        let mut bytes = Vec::new();
        let frames = a.units + u64::from(name != "adts");
        for _ in 0..frames {
            let Some(Message::Binary(b)) = next(&mut ws).await else {
                panic!("{name}: expected audio frame")
            };
            let (h, payload) = alertme_protocol::audio::WatchHeader::parse(&b).unwrap();
            if bytes.is_empty() && name != "adts" {
                assert_eq!(h.kind, KIND_INIT, "{name}: init segment first");
            }
            bytes.extend_from_slice(payload);
        }
        let path = env.data_dir.join(format!("late.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        decodes_cleanly(&path).unwrap_or_else(|e| panic!("{name}: late-join audio does not decode: {e}"));
        let packets = probe_packets(&path);
        assert!(packets >= 40, "{name}: only {packets} audio packets (< ~1 s) for a late joiner");
        drop(phone);
    }
}
both!(late_joiner, late_joiner_audio_decodes);

/// Test 5: a watcher that stops reading delays neither the phone nor other watchers, and is cut off.
async fn stalled_watcher_is_cut_off(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &["--heartbeat-ms", "300", "--send-timeout-ms", "1000"]).await;
    let started = std::time::Instant::now();
    let phone = Phone::start(&server, &token, &["--gpx", &walk(), "--audio", &adts(), "--speed", "60"]);
    let url = server.ws(&format!("/v1/watch?token={}", phone.watch_token()));
    let stalled = connect(&url, None, None).await.unwrap();
    let good = connect(&url, None, None).await.unwrap();
    let watching = tokio::spawn(watch_until_close(good, Duration::from_secs(60)));

    // The stalled watcher reads nothing for 3 s; by then the server must have dropped it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut stalled = stalled;
    let drained = tokio::time::timeout(Duration::from_secs(3), async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = stalled.next().await {}
    })
    .await;
    assert!(drained.is_ok(), "stalled watcher was not cut off");
    assert!(reqwest::get(server.http("/healthz")).await.unwrap().status().is_success());
    let still_live: serde_json::Value =
        reqwest::get(server.http("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(still_live["live_alerts"], 1, "the stalled watcher was cut while the SOS was still live");

    let (ok, out, err) = phone.wait(Duration::from_secs(60));
    assert!(ok, "phone failed:\n{out}\n{err}");
    // The walk takes 10 s at 60x; a phone slowed by the stalled watcher would take far longer.
    assert!(started.elapsed() < Duration::from_secs(25), "phone took {:?}", started.elapsed());
    let source = std::fs::read(fixture(ADTS)).unwrap();
    assert_watched_everything(&watching.await.unwrap(), &source);
}
both!(stalled_watcher, stalled_watcher_is_cut_off);

/// The reference watcher (`alertme_client::Watcher`) follows an SOS through cut connections,
/// resuming each time where it left off (no resync), sees every fix exactly once and stops
/// when the alert ends.
async fn client_watcher_resumes(backend: Backend) {
    use alertme_client::{Seen, Watcher};
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    let phone = Phone::start(&server, &token, &["--gpx", &walk(), "--speed", "30", "--finish", "resolve"]);
    let proxy = CutProxy::start().await;
    proxy.set_target(&server.addr);
    let mut watcher = Watcher::new(&format!("http://{}", proxy.addr), &phone.watch_token()).unwrap();
    let (mut seqs, mut resumed, mut reconnects, mut resyncs, mut ended) = (Vec::new(), 0, 0, 0, false);
    let cut_at = [Duration::from_secs(4), Duration::from_secs(9)];
    let t0 = tokio::time::Instant::now();
    let follow = async {
        while let Some(seen) = watcher.next().await {
            match seen {
                Seen::Msg(WatchMsg::Snapshot { trail, resync, .. }) => {
                    resyncs += usize::from(resync);
                    seqs.extend(trail.iter().map(|f| f.seq));
                }
                Seen::Msg(WatchMsg::Resumed { .. }) => resumed += 1,
                Seen::Msg(WatchMsg::Fix { fix, .. }) => seqs.push(fix.seq),
                Seen::Msg(WatchMsg::Alert { alert, .. }) => ended |= alert.status != AlertStatus::Active,
                Seen::Reconnecting { .. } => reconnects += 1,
                _ => {}
            }
            if reconnects < cut_at.len() && t0.elapsed() > cut_at[reconnects] {
                proxy.cut();
                tokio::time::sleep(Duration::from_millis(300)).await;
                proxy.heal();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), follow).await.expect("the alert ends within 90 s");
    assert!(ended, "the watcher saw the alert end");
    assert_eq!(reconnects, 2, "both cuts were noticed");
    assert_eq!((resumed, resyncs), (2, 0), "each reconnect resumed; none needed a fresh snapshot");
    let stored = env.scalar("SELECT COUNT(*) FROM fixes").await as usize;
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "no fix seen twice");
    assert_eq!(seqs.len(), stored, "every stored fix seen");
    let (ok, _, err) = phone.wait(Duration::from_secs(30));
    assert!(ok, "{err}");
}
both!(client_watcher, client_watcher_resumes);
