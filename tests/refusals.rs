//! Bad input: missing or wrong credentials, foreign origins, malformed, oversized and
//! out-of-order traffic are refused as docs/protocol.md says, and the server stays up.

mod support;

use std::time::Duration;

use alertme_protocol::audio::encode_phone_chunk;
use alertme_protocol::{PhoneMsg, PhoneServerMsg};
use futures_util::SinkExt;
use support::*;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn http_status(e: WsError) -> u16 {
    match e {
        WsError::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn error_code(ws: &mut Ws) -> String {
    loop {
        if let PhoneServerMsg::Error { code, .. } = phone_msg(ws).await {
            return code;
        }
    }
}

async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(ws)).await.unwrap()
        {
            Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn refuses_bad_traffic(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let other = env.user("Ben", "+4915187654321");
    let server = Server::start(&env, "127.0.0.1:0", &["--allowed-origins", "https://alertme.example"]);

    // Credentials are checked before the upgrade.
    for path in ["/v1/phone", "/v1/watch", "/v1/responder"] {
        assert_eq!(http_status(connect(&server.ws(path), None, None).await.unwrap_err()), 401, "{path}");
        let bad = connect(&server.ws(path), Some("amd_not-a-real-token"), None).await.unwrap_err();
        assert_eq!(http_status(bad), 401, "{path}");
    }
    let watch_bad = connect(&server.ws("/v1/watch?token=amw_forged"), None, None).await.unwrap_err();
    assert_eq!(http_status(watch_bad), 401);
    let foreign =
        connect(&server.ws("/v1/phone"), Some(&token), Some("https://evil.example")).await.unwrap_err();
    assert_eq!(http_status(foreign), 403);
    let allowed = connect(&server.ws("/v1/phone"), Some(&token), Some("https://alertme.example")).await;
    assert!(allowed.is_ok(), "configured origin is accepted");

    let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Welcome { protocol: 1, .. }));
    // Before start, nothing streams.
    send_json(&mut ws, &serde_json::json!({"type": "fix", "fixes": []})).await;
    assert_eq!(error_code(&mut ws).await, "not_started");
    ws.send(Message::Binary(encode_phone_chunk(1, b"abc").into())).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "not_started");
    // Malformed JSON and unknown types get an error, and the socket stays usable.
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "bad_message");
    send_json(&mut ws, &serde_json::json!({"type": "teleport"})).await;
    assert_eq!(error_code(&mut ws).await, "bad_message");
    send_json(
        &mut ws,
        &PhoneMsg::Start {
            client_id: "c1".into(),
            audio_mime: Some("audio/aac".into()),
            pressed_at_ms: None,
        },
    )
    .await;
    let PhoneServerMsg::Started { alert_id, watch_url, .. } = phone_msg(&mut ws).await else {
        panic!("no started")
    };
    // Out-of-range fixes are refused one by one, with the reason.
    send_json(
        &mut ws,
        &serde_json::json!({"type": "fix", "fixes": [{"seq": 1, "lat": 200.0, "lon": 13.0, "accuracy_m": 5, "time_ms": 1}]}),
    )
    .await;
    assert_eq!(error_code(&mut ws).await, "bad_fix");
    // Audio must come in order: a chunk ahead of a missing one is refused with what to resend.
    ws.send(Message::Binary(encode_phone_chunk(5, b"\xff\xf1").into())).await.unwrap();
    match phone_msg(&mut ws).await {
        PhoneServerMsg::Error { code, expected, .. } => {
            assert_eq!(code, "audio_gap");
            assert_eq!(expected, Some(1));
        }
        other => panic!("expected audio_gap, got {other:?}"),
    }
    ws.send(Message::Binary(vec![9u8; 20].into())).await.unwrap();
    assert_eq!(error_code(&mut ws).await, "bad_frame");
    // Oversized messages close the socket with 1009.
    ws.send(Message::Binary(vec![1u8; 70 * 1024].into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1009);

    // A stream of garbage ends with 4400 after the documented tolerance.
    let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    for _ in 0..25 {
        if ws.send(Message::Text("garbage".into())).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, 4400);

    // Recordings are only for the owner, responders and watchers of that alert.
    let http = reqwest::Client::new();
    let url = server.http(&format!("/v1/alerts/{alert_id}/recording"));
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth(&other).send().await.unwrap().status(), 403);
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    let watch_token = watch_url.rsplit('/').next().unwrap();
    assert_eq!(http.get(format!("{url}?token={watch_token}")).send().await.unwrap().status(), 200);
    // A resume request must be complete.
    let half =
        connect(&server.ws(&format!("/v1/watch?token={watch_token}&ev=3")), None, None).await.unwrap_err();
    assert_eq!(http_status(half), 400);

    // Through all of it the server stayed up.
    assert!(reqwest::get(server.http("/healthz")).await.unwrap().status().is_success());
}
both!(bad_traffic, refuses_bad_traffic);
