//! Evidence: signed bundles that verify offline, fail on any changed byte, agree between a live
//! and a final export, log who saw what, and keep duress from the person's side.

use crate::support;

use std::io::{Read, Write};
use std::time::Duration;

use alertme_server::domain::evidence::verify::verify;
use futures_util::SinkExt;
use sea_orm::ConnectionTrait;
use support::*;

/// The files of a bundle, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

fn rezip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, b) in files {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn get_bytes(url: &str, token: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn public_key(server: &Server) -> String {
    let v: serde_json::Value =
        reqwest::get(server.http("/v1/evidence/key")).await.unwrap().json().await.unwrap();
    assert_eq!(v["algorithm"], "Ed25519");
    v["public_key"].as_str().unwrap().to_owned()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} in the bundle")).1
}

/// A streamed SOS, watched, its recording downloaded, exported by a responder: the bundle
/// verifies with the server's public key (also from the command line, in another directory),
/// holds the recording byte for byte and the custody log; one byte changed in any file, a
/// re-signed manifest, another key, or a fix changed in the database, and it no longer does.
async fn bundle_verifies_and_tampering_fails(backend: Backend) {
    let env = Env::new(backend).await;
    let server = Server::start(&env, "127.0.0.1:0", &[]);
    let token = env.user("Ana", "+4915112345678");
    let rita = env.responder("Rita");
    let walk = fixture("gps/gps_walk_10min.gpx").display().to_string();
    let aac_path = fixture("audio/speech_aac32k.aac");
    let aac = aac_path.display().to_string();
    let phone = Phone::start(
        &server,
        &token,
        &["--gpx", &walk, "--audio", &aac, "--speed", "60", "--finish", "resolve"],
    );
    let alert = phone.alert_id.clone();
    let watcher = connect(&format!("{}/v1/watch?token={}", server.ws(""), phone.watch_token()), None, None)
        .await
        .unwrap();
    let watched = tokio::spawn(watch_until_close(watcher, Duration::from_secs(60)));
    let (ok, out, err) = phone.wait(Duration::from_secs(90));
    assert!(ok, "{out}\n{err}");
    let _ = watched.await;
    let (status, part0) = get_bytes(&server.http(&format!("/v1/alerts/{alert}/recording/0")), &rita).await;
    assert_eq!(status, 200);
    assert_eq!(part0, std::fs::read(&aac_path).unwrap(), "the recording as sent");
    let key = public_key(&server).await;
    // The watch socket's close is logged as it goes.
    eventually(Duration::from_secs(10), "the watcher's close logged", || async {
        let n = env
            .scalar(&format!(
                "SELECT COUNT(*) FROM custody WHERE alert_id = '{alert}' AND action = 'watch_closed'"
            ))
            .await;
        (n > 0).then_some(())
    })
    .await;
    let (status, bundle) = get_bytes(&server.http(&format!("/v1/alerts/{alert}/evidence")), &rita).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bundle));

    let valid = verify(&bundle, Some(&key)).expect("the bundle verifies");
    let stored = env
        .scalar(&format!(
            "SELECT (SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}') + \
             (SELECT COUNT(*) FROM audio_chunks WHERE alert_id = '{alert}')"
        ))
        .await;
    assert_eq!(valid.items, stored, "every stored fix and chunk is in the chain");
    let files = unzip(&bundle);
    assert_eq!(file(&files, "recording/part-0.aac"), part0.as_slice());
    let custody = String::from_utf8(file(&files, "custody.json").to_vec()).unwrap();
    for (what, who) in [
        ("watch_opened", "the person's own watch link"),
        ("watch_closed", "the person's own watch link"),
        ("recording_downloaded", "responder Rita"),
        ("evidence_exported", "responder Rita"),
    ] {
        assert!(
            custody.contains(&format!("\"action\": \"{what}\",\n    \"who\": \"{who}\"")),
            "{what} by {who} in the custody log:\n{custody}"
        );
    }
    let events = String::from_utf8(file(&files, "events.json").to_vec()).unwrap();
    assert!(events.contains("\"triggered\"") && events.contains("\"resolved\""), "{events}");
    let gpx = String::from_utf8(file(&files, "trail.gpx").to_vec()).unwrap();
    assert_eq!(gpx.matches("<trkpt ").count(), 600, "every fix in the GPX");

    // Offline, elsewhere, with only the public key.
    let elsewhere = env.data_dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("bundle.zip"), &bundle).unwrap();
    let cli = |path: &str, key: &str| {
        std::process::Command::new(BIN)
            .current_dir(&elsewhere)
            .args(["evidence", "verify", path, "--key", key])
            .env_remove("ALERTME_DATA_DIR")
            .output()
            .unwrap()
    };
    let ok = cli("bundle.zip", &key);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success() && said.starts_with("valid: alert "), "{said}");

    // One byte changed in each file: verify names it (the manifest's own change breaks its signature).
    for (i, (name, b)) in files.iter().enumerate() {
        let mut changed = files.clone();
        let mut b = b.clone();
        let at = b.len() / 2;
        b[at] ^= 0x01;
        changed[i].1 = b;
        let tampered = rezip(&changed);
        let e = verify(&tampered, Some(&key)).expect_err(&format!("{name} changed but the bundle verified"));
        let expect =
            if name == "manifest.json" || name == "manifest.sig" { "signature" } else { name.as_str() };
        assert!(e.to_string().contains(expect), "{name} changed: {e}");
        if name.starts_with("recording/") {
            std::fs::write(elsewhere.join("tampered.zip"), &tampered).unwrap();
            let bad = cli("tampered.zip", &key);
            let said = String::from_utf8_lossy(&bad.stdout);
            assert!(!bad.status.success() && said.starts_with("INVALID: recording/part-0.aac"), "{said}");
        }
    }
    // A forger who re-signs the manifest with a key of their own fails against the server's key.
    let other =
        alertme_server::domain::evidence::key::SealKey::load(Some(&"ab".repeat(32)), &env.data_dir).unwrap();
    let mut forged = files.clone();
    let m = forged.iter().position(|(n, _)| n == "manifest.sig").unwrap();
    forged[m].1 = other.sign(file(&files, "manifest.json")).into_bytes();
    let e = verify(&rezip(&forged), Some(&key)).unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    assert!(verify(&bundle, Some(&other.public())).is_err(), "another key");
    // Not a zip at all, and a flipped byte in the raw zip.
    assert!(verify(b"hello", Some(&key)).is_err());
    let mut raw = bundle.clone();
    let mid = raw.len() / 3;
    raw[mid] ^= 0xFF;
    assert!(verify(&raw, Some(&key)).is_err(), "a flipped byte in the zip itself");

    // Someone with database access moves a fix: the next export shows where.
    let db = env.db().await;
    db.execute_unprepared(&format!(
        "UPDATE fixes SET lat = lat + 0.001 WHERE alert_id = '{alert}' AND seq = 300"
    ))
    .await
    .unwrap();
    let (_, after) = get_bytes(&server.http(&format!("/v1/alerts/{alert}/evidence")), &rita).await;
    let e = verify(&after, Some(&key)).unwrap_err().to_string();
    assert!(e.contains("(fix 300): its hash does not match"), "{e}");
    println!("a fix changed in the database: {e}");
}
both!(bundle_verifies, bundle_verifies_and_tampering_fails);

/// A bundle exported while the SOS streams and one after it ended agree on everything the first
/// holds: the live chain is a prefix of the final one, and the final one carries the end's seal.
async fn live_and_final_exports_agree(backend: Backend) {
    let env = Env::new(backend).await;
    let server = Server::start(&env, "127.0.0.1:0", &[]);
    let token = env.user("Ana", "+4915112345678");
    let walk = fixture("gps/gps_walk_10min.gpx").display().to_string();
    let aac = fixture("audio/speech_aac32k.aac").display().to_string();
    let phone = Phone::start(
        &server,
        &token,
        &["--gpx", &walk, "--audio", &aac, "--speed", "30", "--finish", "resolve"],
    );
    let alert = phone.alert_id.clone();
    let url = server.http(&format!("/v1/alerts/{alert}/evidence"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The person's own phone may export its alert too.
    let (status, live) = get_bytes(&url, &token).await;
    assert_eq!(status, 200);
    let (ok, out, err) = phone.wait(Duration::from_secs(90));
    assert!(ok, "{out}\n{err}");
    eventually(Duration::from_secs(10), "the end sealed", || async {
        let n = env
            .scalar(&format!(
                "SELECT COUNT(*) FROM evidence_seals WHERE alert_id = '{alert}' AND reason = 'ended'"
            ))
            .await;
        (n == 1).then_some(())
    })
    .await;
    let (_, last) = get_bytes(&url, &token).await;
    let key = public_key(&server).await;
    let a = verify(&live, Some(&key)).expect("the live export verifies");
    let b = verify(&last, Some(&key)).expect("the final export verifies");
    assert!(a.items > 0 && a.items < b.items, "live {} items, final {}", a.items, b.items);
    let chain = |bytes: &[u8]| String::from_utf8(file(&unzip(bytes), "chain.jsonl").to_vec()).unwrap();
    let (ca, cb) = (chain(&live), chain(&last));
    assert!(cb.starts_with(&ca), "the live chain is a prefix of the final one");
    let manifest: serde_json::Value = serde_json::from_slice(file(&unzip(&last), "manifest.json")).unwrap();
    let seals = manifest["seals"].as_array().unwrap();
    assert!(seals.iter().any(|s| s["reason"] == "ended" && s["items"] == b.items), "{seals:?}");
    assert!(
        seals.iter().any(|s| s["reason"] == "export" && s["items"] == a.items),
        "the live export's seal too"
    );
}
both!(live_and_final, live_and_final_exports_agree);

/// Duress stays hidden from the person's side: their phone gets the same answer for an SOS
/// "cancelled" with the duress PIN (which streams on, unseen) as for one really cancelled with
/// the PIN, and no bundle of either; a responder's bundle shows the duress.
async fn duress_only_for_responders(backend: Backend) {
    let env = Env::new(backend).await;
    let server = Server::start(&env, "127.0.0.1:0", &["--dev-sms"]);
    let token = env.user("Ana", "+4915112345678");
    let rita = env.responder("Rita");
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    api.set_pin("1234", Some("9999")).await.unwrap();
    let really = sos_over(&server, &token, "really", 3, false).await;
    let cancelled = api.cancel_alert(&really, "1234").await.unwrap();
    let forced = sos_over(&server, &token, "forced", 3, false).await;
    let looks = api.cancel_alert(&forced, "9999").await.unwrap();
    assert_eq!(cancelled.status, looks.status, "the same answer to the PIN");
    let url = |a: &str| server.http(&format!("/v1/alerts/{a}/evidence"));
    let (s1, b1) = get_bytes(&url(&really), &token).await;
    let (s2, b2) = get_bytes(&url(&forced), &token).await;
    assert_eq!((s1, &b1), (s2, &b2), "the phone cannot tell the two apart");
    assert_eq!(s1, 409, "{}", String::from_utf8_lossy(&b1));
    let (status, bundle) = get_bytes(&url(&forced), &rita).await;
    assert_eq!(status, 200);
    let events = String::from_utf8(file(&unzip(&bundle), "events.json").to_vec()).unwrap();
    assert!(events.contains("\"duress\""), "{events}");
    verify(&bundle, Some(&public_key(&server).await)).unwrap();
}
both!(duress_hidden, duress_only_for_responders);

/// An SOS straight over the socket: started, `fixes` fixes and 3 audio chunks stored (acked),
/// then ended by the phone unless `end` is false. Returns the alert id.
async fn sos_over(server: &impl Base, token: &str, client_id: &str, fixes: u64, end: bool) -> String {
    use alertme_protocol::{Fix, PhoneMsg, PhoneServerMsg, StopReason};
    let mut ws = connect(&server.ws("/v1/phone"), Some(token), None).await.unwrap();
    let start = PhoneMsg::Start {
        client_id: client_id.into(),
        audio_mime: Some("audio/aac".into()),
        pressed_at_ms: None,
    };
    send_json(&mut ws, &start).await;
    let alert = loop {
        if let PhoneServerMsg::Started { alert_id, .. } = phone_msg(&mut ws).await {
            break alert_id;
        }
    };
    let t0 = 1_700_000_000_000;
    let list: Vec<Fix> = (1..=fixes)
        .map(|seq| Fix {
            seq,
            lat: 52.5 + seq as f64 * 1e-4,
            lon: 13.4,
            accuracy_m: 5.0,
            time_ms: t0 + seq as i64 * 1000,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        })
        .collect();
    send_json(&mut ws, &PhoneMsg::Fix { fixes: list }).await;
    let aac = std::fs::read(fixture("audio/speech_aac32k.aac")).unwrap();
    for (i, chunk) in aac.chunks(1000).take(3).enumerate() {
        let frame = alertme_protocol::audio::encode_phone_chunk(i as u64 + 1, chunk);
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(frame.into())).await.unwrap();
    }
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
            if acks.fix >= fixes && acks.audio >= 3 {
                break;
            }
        }
    }
    if end {
        send_json(&mut ws, &PhoneMsg::Stop { reason: StopReason::Resolve }).await;
        loop {
            if let PhoneServerMsg::Stopped { .. } = phone_msg(&mut ws).await {
                break;
            }
        }
    }
    alert
}

async fn stored(env: &Env, alert: &str) -> (i64, i64) {
    let f = env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}'")).await;
    let c = env.scalar(&format!("SELECT COUNT(*) FROM audio_chunks WHERE alert_id = '{alert}'")).await;
    (f, c)
}

async fn send(method: reqwest::Method, url: String, token: &str, body: Option<serde_json::Value>) -> u16 {
    let mut r = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().status().as_u16()
}

const DAY_MS: i64 = 86_400_000;

/// The retention job (90 days, the server's clock moved by the test) deletes the fixes and
/// recordings of exactly the ended alerts past the period and not on hold; the alert rows, their
/// events and logs stay; a lifted hold lets the next sweep take that alert too.
async fn retention_deletes_exactly_what_it_should(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &[]).await;
    let token = env.user("Ana", "+4915112345678");
    let rita = env.responder("Rita");
    let old1 = sos_over(&server, &token, "old1", 5, true).await;
    let held = sos_over(&server, &token, "held", 6, true).await;
    let old2 = sos_over(&server, &token, "old2", 7, true).await;
    let live = sos_over(&server, &token, "live", 8, false).await;
    let hold_url = server.http(&format!("/v1/alerts/{held}/hold"));
    let reason = serde_json::json!({"reason": "court order 2026/123"});
    assert_eq!(
        send(reqwest::Method::PUT, hold_url.clone(), &token, Some(reason.clone())).await,
        403,
        "the person cannot"
    );
    let empty = serde_json::json!({"reason": " "});
    assert_eq!(
        send(reqwest::Method::PUT, hold_url.clone(), &rita, Some(empty)).await,
        400,
        "a hold needs a reason"
    );
    assert_eq!(send(reqwest::Method::PUT, hold_url.clone(), &rita, Some(reason)).await, 204);
    let all = [&old1, &held, &old2, &live];
    let mut before = Vec::new();
    for a in all {
        before.push(stored(&env, a).await);
    }
    assert_eq!(before, vec![(5, 3), (6, 3), (7, 3), (8, 3)]);
    server.clock.advance(89 * DAY_MS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (a, b) in all.iter().zip(&before) {
        assert_eq!(stored(&env, a).await, *b, "nothing is due after 89 days");
    }
    server.clock.advance(2 * DAY_MS);
    eventually(Duration::from_secs(10), "the sweep", || async {
        (env.scalar("SELECT COUNT(*) FROM alerts WHERE purged_at IS NOT NULL").await == 2).then_some(())
    })
    .await;
    let mut after = Vec::new();
    for a in all {
        after.push(stored(&env, a).await);
    }
    println!("retention after 91 days: (fixes, chunks) of old1, held, old2, live: before {before:?}, after {after:?}");
    assert_eq!(after, vec![(0, 0), (6, 3), (0, 0), (8, 3)]);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM alerts").await, 4, "the alerts themselves stay");
    assert_eq!(
        env.scalar(&format!(
            "SELECT COUNT(*) FROM alert_events WHERE alert_id = '{old1}' AND kind = 'purged'"
        ))
        .await,
        1
    );
    let (status, _) = get_bytes(&server.http(&format!("/v1/alerts/{old1}/evidence")), &rita).await;
    assert_eq!(status, 409, "nothing left to export");
    // The hold lifted: the next daily sweep takes it.
    assert_eq!(send(reqwest::Method::DELETE, hold_url.clone(), &rita, None).await, 204);
    assert_eq!(send(reqwest::Method::DELETE, hold_url, &rita, None).await, 409, "not on hold any more");
    server.clock.advance(DAY_MS);
    eventually(Duration::from_secs(10), "the next sweep", || async {
        (stored(&env, &held).await == (0, 0)).then_some(())
    })
    .await;
    assert_eq!(stored(&env, &live).await, (8, 3), "a live alert is never touched");
    let custody = env.scalar(&format!("SELECT COUNT(*) FROM custody WHERE alert_id = '{held}' AND action IN ('hold_set', 'hold_lifted')")).await;
    assert_eq!(custody, 2, "the hold and its lifting are in the custody log");
}
both!(retention, retention_deletes_exactly_what_it_should);

/// A person erases their account with their PIN: everything about them goes except an alert a
/// responder holds, which goes (with the last of them) when the hold is lifted. A wrong PIN
/// erases nothing; the duress PIN answers the same as the real one, erases nothing and raises a
/// silent alert. The operator's command line does the same with the PIN.
async fn erasure(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &["--dev-sms"]).await;
    let rita = env.responder("Rita");
    let token = env.user("Ana", "+4915112345678");
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    api.set_pin("1234", Some("9999")).await.unwrap();
    let ben = alertme_protocol::ContactInput {
        name: "Ben".into(),
        phone: "+4915211111111".into(),
        position: None,
        language: None,
    };
    api.add_contact(&ben).await.unwrap();
    let kept = sos_over(&server, &token, "kept", 4, true).await;
    let gone = sos_over(&server, &token, "gone", 4, true).await;
    let reason = serde_json::json!({"reason": "investigation"});
    assert_eq!(
        send(reqwest::Method::PUT, server.http(&format!("/v1/alerts/{kept}/hold")), &rita, Some(reason))
            .await,
        204
    );
    let me = server.http("/v1/me");
    assert_eq!(
        send(reqwest::Method::DELETE, me.clone(), &token, Some(serde_json::json!({"pin": "0000"}))).await,
        403
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM users").await, 1, "a wrong PIN erases nothing");
    assert_eq!(
        send(reqwest::Method::DELETE, me.clone(), &token, Some(serde_json::json!({"pin": "1234"}))).await,
        204
    );
    assert_eq!(stored(&env, &gone).await, (0, 0));
    assert_eq!(env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{gone}'")).await, 0);
    assert_eq!(stored(&env, &kept).await, (4, 3), "the held alert stays");
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM users WHERE phone = '+4915112345678'").await,
        0,
        "no name, no number"
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM geozones").await
            + env.scalar("SELECT COUNT(*) FROM user_pins").await,
        0
    );
    let r = reqwest::Client::new().get(server.http("/v1/devices")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the phone's token no longer works");
    assert_eq!(
        send(reqwest::Method::DELETE, server.http(&format!("/v1/alerts/{kept}/hold")), &rita, None).await,
        204
    );
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{kept}'")).await,
        0,
        "gone with the hold"
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM users").await, 0, "and the person with it");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM contacts").await, 0);

    // Under duress: the same answer, nothing erased, a silent alert.
    let bo = env.user("Bo", "+4915112345677");
    let api = alertme_client::Api::new(&server.http("")).with_token(&bo);
    api.set_pin("1234", Some("9999")).await.unwrap();
    assert_eq!(
        send(reqwest::Method::DELETE, me.clone(), &bo, Some(serde_json::json!({"pin": "9999"}))).await,
        204
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM users WHERE phone = '+4915112345677'").await,
        1,
        "nothing erased"
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM alerts WHERE duress = TRUE").await, 1, "a silent alert");

    // The operator, with the person's PIN.
    let cy = env.user("Cy", "+4915112345676");
    alertme_client::Api::new(&server.http("")).with_token(&cy).set_pin("4321", None).await.unwrap();
    let out = std::process::Command::new(BIN)
        .args(["user", "erase", "--phone", "+4915112345676", "--pin", "1111", "--database-url", &env.url])
        .arg("--data-dir")
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong PIN");
    let out = std::process::Command::new(BIN)
        .args(["user", "erase", "--phone", "+4915112345676", "--pin", "4321", "--database-url", &env.url])
        .arg("--data-dir")
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.scalar("SELECT COUNT(*) FROM users WHERE phone = '+4915112345676'").await, 0);
}
both!(erase_account, erasure);

/// A contact replies FORGET: their number leaves every contact list, the records of past texts
/// keep no number, and it cannot be added again.
async fn forget_a_number(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let args = fake.server_args();
    let server =
        support::app::TestApp::start(&env, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let token = env.user("Ana", "+4915112345678");
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    let ben = alertme_protocol::ContactInput {
        name: "Ben".into(),
        phone: "+4915211111111".into(),
        position: None,
        language: None,
    };
    api.add_contact(&ben).await.unwrap();
    eventually(Duration::from_secs(10), "Ben told he was added", || async {
        (!fake.to("+4915211111111").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(fake.inbound(&server.http("/v1/sms/inbound"), "+4915211111111", "forget").await, 200);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM contacts").await, 0);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE to_phone = '+4915211111111'").await, 0);
    let again = api.add_contact(&ben).await;
    assert!(again.is_err(), "a forgotten number cannot be added again");
}
both!(forget_number, forget_a_number);
