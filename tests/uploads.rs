//! Recording uploads: the original app's multipart upload, tus uploads cut and resumed, a
//! streamed recording completed rather than stored twice, and what is refused.

use crate::support;

use std::time::Duration;

use alertme_protocol::{PhoneMsg, PhoneServerMsg, RecordingPart, StopReason};
use futures_util::SinkExt;
use support::*;
use tokio::io::AsyncWriteExt;

/// Starts an alert over the phone socket, streams the first `chunks` chunks of `audio` (in
/// 4 KiB chunks, acked), and ends it if `end`. Returns the alert id and the open socket.
async fn sos(server: &impl Base, token: &str, audio: &[u8], chunks: usize, end: bool) -> (String, Ws) {
    let mut ws = connect(&server.ws("/v1/phone"), Some(token), None).await.unwrap();
    let start =
        PhoneMsg::Start { client_id: "c1".into(), audio_mime: Some("audio/aac".into()), pressed_at_ms: None };
    send_json(&mut ws, &start).await;
    let alert = loop {
        if let PhoneServerMsg::Started { alert_id, .. } = phone_msg(&mut ws).await {
            break alert_id;
        }
    };
    for (i, chunk) in audio.chunks(4096).take(chunks).enumerate() {
        let frame = alertme_protocol::audio::encode_phone_chunk(i as u64 + 1, chunk);
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(frame.into())).await.unwrap();
    }
    if chunks > 0 {
        loop {
            if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
                if acks.audio >= chunks as u64 {
                    break;
                }
            }
        }
    }
    if end {
        send_json(&mut ws, &PhoneMsg::Stop { reason: StopReason::Resolve }).await;
        while !matches!(phone_msg(&mut ws).await, PhoneServerMsg::Stopped { .. }) {}
    }
    (alert, ws)
}

/// The original app's request: a multipart form with the file in field `audio`.
fn app_form(file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----alertmeboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"alert\"\r\n\r\n42\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"record.aac\"\r\n\
             Content-Type: audio/aac\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A tus `PATCH` of `body` at `offset`.
async fn patch(
    server: &impl Base,
    location: &str,
    token: &str,
    ct: &str,
    offset: usize,
    body: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .patch(server.http(location))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", ct)
        .header("upload-offset", offset.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A tus creation `POST` declaring `length`.
async fn tus_create(server: &impl Base, alert: &str, token: &str, length: usize) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.http(&format!("/v1/alerts/{alert}/recording")))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", "filetype YXVkaW8vYWFj,filename cmVjb3JkLmFhYw==")
        .send()
        .await
        .unwrap()
}

async fn parts(server: &impl Base, alert: &str, token: &str) -> Vec<RecordingPart> {
    let r = reqwest::Client::new()
        .get(server.http(&format!("/v1/alerts/{alert}/recording")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn part_bytes(server: &impl Base, alert: &str, part: u16, token: &str) -> Vec<u8> {
    let url = server.http(&format!("/v1/alerts/{alert}/recording/{part}"));
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

async fn post(
    server: &impl Base,
    alert: &str,
    token: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(server.http(&format!("/v1/alerts/{alert}/recording")))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The seed-style upload of the 128 kbit/s recording to an ended alert: stored byte for byte
/// as part 0, listed as uploaded, in the alert's timeline, and chained into the evidence (the
/// exported bundle verifies and holds it).
async fn app_multipart_upload(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &[]).await;
    let token = env.user("Ana", "+4915112345678");
    let rita = env.responder("Rita");
    let file = std::fs::read(fixture("audio/speech_aac128k.aac")).unwrap();
    let (alert, _ws) = sos(&server, &token, &file, 0, true).await;
    let (ct, body) = app_form(&file);
    let (status, answer) = post(&server, &alert, &token, &ct, body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["part"], 0);
    assert_eq!(answer["received"], file.len() as u64);
    assert_eq!(answer["stored"], file.len() as u64);
    let listed = parts(&server, &alert, &rita).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].mime.as_str(), listed[0].track.as_str(), listed[0].uploaded),
        ("audio/aac", "audio", true)
    );
    assert_eq!(listed[0].bytes, file.len() as u64);
    assert!(part_bytes(&server, &alert, 0, &rita).await == file, "stored byte for byte");
    let q = format!(
        "SELECT COUNT(*) FROM alert_events WHERE alert_id = '{alert}' AND kind = 'recording_uploaded'"
    );
    assert_eq!(env.scalar(&q).await, 1);
    let r = reqwest::Client::new()
        .get(server.http(&format!("/v1/alerts/{alert}/evidence")))
        .bearer_auth(&rita)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle = r.bytes().await.unwrap();
    let key: serde_json::Value =
        reqwest::get(server.http("/v1/evidence/key")).await.unwrap().json().await.unwrap();
    let report = alertme_server::domain::evidence::verify::verify(&bundle, key["public_key"].as_str())
        .expect("the bundle with the uploaded recording verifies");
    let chunks = env.scalar(&format!("SELECT COUNT(*) FROM audio_chunks WHERE alert_id = '{alert}'")).await;
    assert!(
        format!("{report:?}").contains(&format!("items: {chunks},")),
        "every uploaded chunk chained: {report:?}"
    );
    server.stop().await;
}
both!(app_upload, app_multipart_upload);

/// tus: a 50 MB recording whose PATCH requests are cut three times (the connection dropped
/// mid-body) and resumed from `HEAD`'s offset: every byte that arrived is kept, and the stored
/// part is the file byte for byte.
async fn tus_cut_and_resumed(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &[]).await;
    let token = env.user("Ana", "+4915112345678");
    let one = std::fs::read(fixture("audio/speech_aac128k.aac")).unwrap();
    let file: Vec<u8> = one.iter().copied().cycle().take(50_000_000).collect();
    let (alert, _ws) = sos(&server, &token, &one, 0, true).await;
    let http = reqwest::Client::new();
    let discovery = http
        .request(reqwest::Method::OPTIONS, server.http(&format!("/v1/alerts/{alert}/recording")))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.headers()["tus-version"], "1.0.0");
    assert!(discovery.headers()["tus-extension"].to_str().unwrap().contains("creation"));
    let created = tus_create(&server, &alert, &token, file.len()).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/uploads/"), "{location}");
    let head = |http: reqwest::Client| {
        let (url, token) = (server.http(&location), token.clone());
        async move {
            let r = http.head(url).bearer_auth(token).header("tus-resumable", "1.0.0").send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["cache-control"], "no-store");
            r.headers()["upload-offset"].to_str().unwrap().parse::<usize>().unwrap()
        }
    };
    let addr = server.http("").trim_start_matches("http://").to_owned();
    let mut offset = 0;
    for cut_at in [12_345_678usize, 27_000_001, 41_999_999] {
        // A PATCH for the rest of the file whose connection dies after `cut_at - offset` bytes.
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let headers = format!(
            "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
             Upload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
            file.len() - offset
        );
        tcp.write_all(headers.as_bytes()).await.unwrap();
        tcp.write_all(&file[offset..cut_at]).await.unwrap();
        tcp.flush().await.unwrap();
        drop(tcp);
        offset = eventually(Duration::from_secs(60), "the cut request's bytes all stored", || {
            let h = head(http.clone());
            async move {
                let at = h.await;
                (at == cut_at).then_some(at)
            }
        })
        .await;
    }
    // A PATCH at a wrong offset is refused and changes nothing.
    let wrong =
        patch(&server, &location, &token, "application/offset+octet-stream", 0, file[..10].to_vec()).await;
    assert_eq!(wrong.status(), 409);
    let done =
        patch(&server, &location, &token, "application/offset+octet-stream", offset, file[offset..].to_vec())
            .await;
    assert_eq!(done.status(), 204);
    assert_eq!(done.headers()["upload-offset"], file.len().to_string().as_str());
    assert_eq!(head(http.clone()).await, file.len());
    let listed = parts(&server, &alert, &token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].bytes, file.len() as u64);
    let stored = part_bytes(&server, &alert, 0, &token).await;
    assert!(sha256(&stored) == sha256(&file), "stored byte for byte");
    let q = format!("SELECT COALESCE(SUM(len), 0) FROM audio_chunks WHERE alert_id = '{alert}'");
    assert_eq!(env.scalar(&q).await, file.len() as i64, "nothing stored twice");
    let q = format!("SELECT COUNT(*) FROM uploads WHERE alert_id = '{alert}' AND completed_at IS NOT NULL");
    assert_eq!(env.scalar(&q).await, 1);
    server.stop().await;
}
both!(tus_resumed, tus_cut_and_resumed);

/// A phone streamed the first part of its recording, then lost its link; afterwards it
/// uploads the whole file. Only the missing tail is stored: part 0 is the file, once. While the
/// alert is still live, the stream then goes on in a new part (the uploaded one is complete).
async fn streamed_then_uploaded(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &[]).await;
    let token = env.user("Ana", "+4915112345678");
    let file = std::fs::read(fixture("audio/speech_aac32k.aac")).unwrap();
    let (alert, mut ws) = sos(&server, &token, &file, 20, false).await;
    let (status, answer) = post(&server, &alert, &token, "audio/aac", file.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["part"], 0);
    assert_eq!(answer["stored"], (file.len() - 20 * 4096) as u64, "only the tail is stored");
    // The same file again (a retry, through the reference client): nothing new.
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    let again = api.upload_recording(&alert, "audio/aac", file.clone()).await.unwrap();
    assert_eq!((again.part, again.stored, again.received), (0, 0, file.len() as u64));
    // And resumably: a tus upload of the same file, in two PATCHes, stores nothing either.
    let url = api.create_upload(&alert, file.len() as u64, "audio/aac").await.unwrap();
    assert_eq!(api.upload_bytes(&url, 0, file[..10_000].to_vec()).await.unwrap(), 10_000);
    assert_eq!(api.upload_offset(&url).await.unwrap(), 10_000);
    assert_eq!(api.upload_bytes(&url, 10_000, file[10_000..].to_vec()).await.unwrap(), file.len() as u64);
    // The phone's stream goes on: a new part.
    let more = alertme_protocol::audio::encode_phone_chunk(21, &file[..4096]);
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(more.into())).await.unwrap();
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
            if acks.audio >= 21 {
                break;
            }
        }
    }
    let listed = parts(&server, &alert, &token).await;
    let summary: Vec<(u16, u64, bool)> = listed.iter().map(|p| (p.part, p.bytes, p.uploaded)).collect();
    assert_eq!(summary, vec![(0, file.len() as u64, true), (1, 4096, false)]);
    assert!(part_bytes(&server, &alert, 0, &token).await == file);
    let q = format!("SELECT COALESCE(SUM(len), 0) FROM audio_chunks WHERE alert_id = '{alert}' AND part = 0");
    assert_eq!(env.scalar(&q).await, file.len() as i64, "stored once");
    // A different recording is a part of its own.
    let ogg = std::fs::read(fixture("audio/speech_opus32k.ogg")).unwrap();
    let (status, answer) = post(&server, &alert, &token, "audio/ogg", ogg.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["part"], 2);
    let listed = parts(&server, &alert, &token).await;
    assert_eq!(listed[2].mime, "audio/ogg");
    assert!(part_bytes(&server, &alert, 2, &token).await == ogg);
    server.stop().await;
}
both!(stream_then_upload, streamed_then_uploaded);

/// What is refused: not a recording (415), too big (413, declared or sent), another person's
/// device or a responder (403), a tus request without its version (412), an unknown upload
/// (404), an unknown alert (404).
async fn upload_refusals(backend: Backend) {
    let env = Env::new(backend).await;
    let server = support::app::TestApp::start(&env, &["--upload-max-bytes", "1000000"]).await;
    let token = env.user("Ana", "+4915112345678");
    let other = env.user("Bob", "+4915112345679");
    let rita = env.responder("Rita");
    let file = std::fs::read(fixture("audio/speech_aac128k.aac")).unwrap();
    let (alert, _ws) = sos(&server, &token, &file, 0, true).await;
    let wav = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00".repeat(100);
    let (status, body) = post(&server, &alert, &token, "audio/wav", wav).await;
    assert_eq!(status, 415, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("AAC"), "{body}");
    let big: Vec<u8> = file.iter().copied().cycle().take(1_500_000).collect();
    let (status, body) = post(&server, &alert, &token, "audio/aac", big.clone()).await;
    assert_eq!(status, 413, "{body}");
    // Without a length up front (chunked), the cap still holds.
    let addr = server.http("").trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/alerts/{alert}/recording HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: audio/aac\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before all is sent: write errors are expected then.
    for c in big.chunks(100_000) {
        let _ = tcp.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await;
        let _ = tcp.write_all(c).await;
        let _ = tcp.write_all(b"\r\n").await;
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let q = format!("SELECT COALESCE(MAX(\"offset\" + len), 0) FROM audio_chunks WHERE alert_id = '{alert}'");
    assert!(env.scalar(&q).await <= 1_000_000, "nothing past the cap is stored");
    let small = file[..50_000].to_vec();
    assert_eq!(
        post(&server, &alert, &other, "audio/aac", small.clone()).await.0,
        403,
        "another person's phone"
    );
    assert_eq!(
        post(&server, &alert, &rita, "audio/aac", small.clone()).await.0,
        401,
        "a responder token is no device"
    );
    assert_eq!(post(&server, "nosuchalert", &token, "audio/aac", small.clone()).await.0, 404);
    let http = reqwest::Client::new();
    let declared = tus_create(&server, &alert, &token, 2000000).await;
    assert_eq!(declared.status(), 413);
    let created = tus_create(&server, &alert, &token, 50000).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let no_version = http.head(server.http(&location)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(no_version.status(), 412);
    let foreign = http
        .head(server.http(&location))
        .bearer_auth(&other)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "another device does not see the upload");
    let wrong_type = patch(&server, &location, &token, "audio/aac", 0, small.clone()).await;
    assert_eq!(wrong_type.status(), 415);
    let too_long =
        patch(&server, &location, &token, "application/offset+octet-stream", 0, file[..60_000].to_vec())
            .await;
    assert_eq!(too_long.status(), 413, "more than Upload-Length");
    let unknown = http
        .head(server.http("/v1/uploads/upnope"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    server.stop().await;
}
both!(refusals, upload_refusals);
