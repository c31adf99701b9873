//! Evidence: signed bundles that verify offline, fail on any changed byte, agree between a live
//! and a final export, log who saw what, and keep duress from the person's side.

use crate::support;

use std::io::{Read, Write};
use std::time::Duration;

use alertme_server::domain::evidence::verify::verify;
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
    // The watch socket's close is logged as it goes: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Duress stays hidden from the person's side: their phone gets no bundle of the duress alert,
/// a responder's bundle shows the duress. Watch links never export.
async fn duress_only_for_responders(backend: Backend) {
    let env = Env::new(backend).await;
    let server = Server::start(&env, "127.0.0.1:0", &["--dev-sms"]);
    let token = env.user("Ana", "+4915112345678");
    let rita = env.responder("Rita");
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    api.set_pin("1234", Some("9999")).await.unwrap();
    let t =
        alertme_protocol::TimerStart { duration_s: 600, grace_s: Some(60), note: None, destination: None };
    let timer = api.start_timer(&t).await.unwrap();
    api.cancel_timer(&timer.id, "9999").await.unwrap();
    let db = env.db().await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            env.db_backend(),
            "SELECT id FROM alerts WHERE duress = TRUE",
        ))
        .await
        .unwrap()
        .expect("a duress alert");
    let alert: String = row.try_get("", "id").unwrap();
    let url = server.http(&format!("/v1/alerts/{alert}/evidence"));
    let (status, _) = get_bytes(&url, &token).await;
    assert_eq!(status, 404, "the person's phone does not learn of the duress alert");
    let (status, bundle) = get_bytes(&url, &rita).await;
    assert_eq!(status, 200);
    let events = String::from_utf8(file(&unzip(&bundle), "events.json").to_vec()).unwrap();
    assert!(events.contains("\"duress\""), "{events}");
    verify(&bundle, Some(&public_key(&server).await)).unwrap();
}
both!(duress_hidden, duress_only_for_responders);
