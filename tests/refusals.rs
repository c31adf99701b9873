//! Bad input: missing or wrong credentials, foreign origins, malformed, oversized and
//! out-of-order traffic are refused as docs/protocol.md says, and the server stays up.

use crate::support;

use std::time::Duration;

use alertme_protocol::audio::encode_phone_chunk;
use alertme_protocol::{PhoneMsg, PhoneServerMsg};
use futures_util::SinkExt;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
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
    let server = TestApp::start(&env, &["--allowed-origins", "https://alertme.example"]).await;

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
    // The refused fix's seq is consumed: it is acked like a stored one.
    loop {
        if let PhoneServerMsg::Ack { acks } = phone_msg(&mut ws).await {
            assert_eq!(acks.fix, 1);
            break;
        }
    }
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

/// The console provider's texts (sign-in codes, watch links) are shown and listed only with
/// `--dev-sms` (or `--demo`) on a loopback bind; `--dev-sms` on any other bind refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_texts_stay_private() {
    let env = Env::new(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let server = Server::start(&env, "127.0.0.1:0", &[]);
    let r = http.post(server.http("/v1/auth/code")).json(&json!({"phone": "+4917612345678"})).send().await;
    assert_eq!(r.unwrap().status(), 202);
    assert_eq!(http.get(server.http("/v1/dev/sms")).send().await.unwrap().status(), 404, "no listing");
    let printed = eventually(Duration::from_secs(10), "the console line", || async {
        server.stdout().into_iter().find(|l| l.starts_with("[console sms]"))
    })
    .await;
    assert!(!printed.contains("AlertMe code"), "the text is not printed: {printed}");
    assert!(!printed.contains("+4917612345678"), "nor the number: {printed}");
    assert!(!printed.as_bytes().windows(6).any(|w| w.iter().all(u8::is_ascii_digit)), "no code in {printed}");
    drop(server);

    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let r = http.post(server.http("/v1/auth/code")).json(&json!({"phone": "+4917612345678"})).send().await;
    assert_eq!(r.unwrap().status(), 202);
    let texts: Vec<Value> = eventually(Duration::from_secs(10), "a listed text", || async {
        let t: Vec<Value> = http.get(server.http("/v1/dev/sms")).send().await.ok()?.json().await.ok()?;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert!(texts[0]["body"].as_str().unwrap().contains("AlertMe code"));

    // Not on an address other machines can reach (nothing is sent there: it exits first).
    let out = std::process::Command::new(BIN)
        .args(["serve", "--bind", "0.0.0.0:0", "--dev-sms", "--database-url", &env.url, "--data-dir"])
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

/// Twenty wrong guesses at once use up exactly the 5 tries (each takes its try in one
/// conditional update): the right code is refused afterwards.
async fn parallel_guesses(backend: Backend) {
    let env = Env::new(backend).await;
    let server = TestApp::start(&env, &["--dev-sms"]).await;
    let http = reqwest::Client::new();
    let phone = "+4917612345678";
    let r = http.post(server.http("/v1/auth/code")).json(&json!({"phone": phone})).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let code: String = eventually(Duration::from_secs(10), "the code", || async {
        let t: Vec<Value> = http.get(server.http("/v1/dev/sms")).send().await.ok()?.json().await.ok()?;
        let body = t.first()?["body"].as_str()?.to_owned();
        body.split_whitespace().find(|w| w.len() == 7 && w.ends_with('.')).map(|w| w[..6].to_owned())
    })
    .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let guesses = (0..20).map(|_| {
        let http = http.clone();
        let url = server.http("/v1/auth/verify");
        async move {
            http.post(url)
                .json(&json!({"phone": phone, "code": wrong}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
    let r =
        http.post(server.http("/v1/auth/verify")).json(&json!({"phone": phone, "code": code})).send().await;
    assert_eq!(r.unwrap().status(), 401, "the code died after 5 tries");
}
both!(code_guesses_race, parallel_guesses);

/// Pages and answers that carry tokens are neither cached nor sent on as a Referer; a phone's
/// audio type is stored only in an allow-listed form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_pages_and_audio_types() {
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    for path in ["/w/amw_sometoken", "/sos", "/console", "/v1/devices"] {
        let r = reqwest::Client::new().get(server.http(path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let css = reqwest::get(server.http("/style.css")).await.unwrap();
    assert_eq!(css.headers()["referrer-policy"], "no-referrer");
    assert!(css.headers().get("cache-control").is_none_or(|v| v != "no-store"), "assets may be cached");

    for (n, (sent, stored)) in [
        ("audio/aac\r\nX-Injected: 1", None),
        ("audio/webm;codecs=opus\u{1}", None),
        (&*format!("audio/webm;codecs={}", "x".repeat(60_000)), None),
        ("Audio/WebM; codecs=\"opus\"", Some("audio/webm;codecs=opus")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
        let _welcome = phone_msg(&mut ws).await;
        let start = PhoneMsg::Start {
            client_id: format!("m{n}"),
            audio_mime: Some(sent.into()),
            pressed_at_ms: None,
        };
        send_json(&mut ws, &start).await;
        let PhoneServerMsg::Started { alert_id, .. } = phone_msg(&mut ws).await else { panic!("no started") };
        if stored.is_none() {
            assert_eq!(error_code(&mut ws).await, "unsupported_audio");
        }
        let db = env.db().await;
        let row = alertme_server::storage::entity::alerts::Entity::find_by_id(alert_id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.audio_mime.as_deref(), stored, "{sent:?}");
        send_json(&mut ws, &PhoneMsg::Stop { reason: alertme_protocol::StopReason::Cancel }).await;
    }
}

/// Half-sent and idle connections are closed after the header deadline, one address holds at
/// most the configured number of connections (sockets included), and an address that keeps
/// presenting wrong tokens is refused for a while (others are not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits() {
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &["--header-timeout-ms", "1000", "--max-conns-per-address", "4"]).await;
    // Until the peer closes (0 bytes or a reset), at most 5 s; how long that took.
    async fn closed_after(s: &mut tokio::net::TcpStream) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("still open after 5 s"),
            }
        }
    }
    let mut silent = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let waited = closed_after(&mut silent).await;
    assert!(waited < Duration::from_secs(3), "a connection that sends nothing held {waited:?}");
    let mut creeping = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    creeping.write_all(b"PRI * HTTP/2").await.unwrap();
    let waited = closed_after(&mut creeping).await;
    assert!(waited < Duration::from_secs(3), "half an HTTP/2 preface held {waited:?}");
    let mut half = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let waited = closed_after(&mut half).await;
    assert!(waited < Duration::from_secs(3), "half a request head held {waited:?}");
    let mut idle = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let waited = closed_after(&mut idle).await;
    assert!(waited < Duration::from_secs(3), "an idle keep-alive connection held {waited:?}");

    // Four sockets from one address; the fifth connection is closed at once.
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap());
    }
    assert!(connect(&server.ws("/v1/phone"), Some(&token), None).await.is_err(), "a fifth is refused");
    drop(open.pop());
    let again = eventually(Duration::from_secs(5), "a place again", || async {
        connect(&server.ws("/v1/phone"), Some(&token), None).await.ok()
    })
    .await;
    drop((open, again));

    // Wrong tokens: 30 a minute per address, then that address is refused; others are not.
    let guesser = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3)))
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for i in 0..32 {
        let r = guesser.get(server.http("/v1/devices")).bearer_auth(format!("amd_guess{i}")).send().await;
        statuses.push(r.unwrap().status().as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[31], 429, "{statuses:?}");
    let r = guesser.get(server.http("/v1/devices")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 429, "the guessing address is refused even with a good token");
    let r = reqwest::Client::new().get(server.http("/v1/devices")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "everyone else is served");
}

/// A client that follows docs/protocol.md to the letter: it drops fixes once `ack.fix` covers
/// them and never resends a refused one. With a bad fix in the middle it still gets everything
/// acked and can stop, and the ack survives a restart.
async fn refused_fix_is_consumed(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let mut server = Server::start(&env, "127.0.0.1:0", &[]);
    let fix = |seq: u64, lat: f64| serde_json::json!({"seq": seq, "lat": lat, "lon": 13.4, "accuracy_m": 5.0, "time_ms": 1_700_000_000_000i64 + seq as i64});
    let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    let _welcome = phone_msg(&mut ws).await;
    let start = PhoneMsg::Start { client_id: "c1".into(), audio_mime: None, pressed_at_ms: None };
    send_json(&mut ws, &start).await;
    assert!(matches!(phone_msg(&mut ws).await, PhoneServerMsg::Started { .. }));
    send_json(&mut ws, &json!({"type": "fix", "fixes": [fix(1, 52.5), fix(2, 200.0), fix(3, 52.6)]})).await;
    let mut refused = false;
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match phone_msg(&mut ws).await {
                PhoneServerMsg::Error { code, .. } if code == "bad_fix" => refused = true,
                PhoneServerMsg::Ack { acks } if acks.fix == 3 => return acks.fix,
                _ => {}
            }
        }
    })
    .await
    .expect("every seq acked, the refused one included");
    assert!(refused);
    assert_eq!(acked, 3);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM fixes").await, 2, "the bad fix is not in the trail");

    // After a crash the acks are the same.
    server.kill();
    let server = Server::start(&env, &server.addr, &[]);
    let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    let _welcome = phone_msg(&mut ws).await;
    send_json(&mut ws, &start).await;
    let PhoneServerMsg::Started { acks, .. } = phone_msg(&mut ws).await else { panic!("no started") };
    assert_eq!(acks.fix, 3);
    send_json(&mut ws, &PhoneMsg::Stop { reason: alertme_protocol::StopReason::Cancel }).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let PhoneServerMsg::Stopped { .. } = phone_msg(&mut ws).await {
                return;
            }
        }
    })
    .await;
    assert!(stopped.is_ok(), "the client can stop cleanly");
}
both!(bad_fix_consumes_its_seq, refused_fix_is_consumed);

/// Every responder command gets an answer (`done` or `error`), a resolve of an ended alert
/// included; unreadable frames close every kind of socket with their RFC 6455 code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_answered_and_frames_closed_typed() {
    use alertme_protocol::{ResponderCmd, ResponderMsg};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let rt = env.responder("Rita");
    let server = TestApp::start(&env, &[]).await;
    let sos = |client: &'static str| {
        let (url, token) = (server.ws("/v1/phone"), token.clone());
        async move {
            let mut ws = connect(&url, Some(&token), None).await.unwrap();
            let _welcome = phone_msg(&mut ws).await;
            send_json(
                &mut ws,
                &PhoneMsg::Start { client_id: client.into(), audio_mime: None, pressed_at_ms: None },
            )
            .await;
            let PhoneServerMsg::Started { alert_id, .. } = phone_msg(&mut ws).await else {
                panic!("no started")
            };
            (ws, alert_id)
        }
    };
    let (_p1, a1) = sos("a1").await;
    let (mut p2, a2) = sos("a2").await;
    let (_p3, a3) = sos("a3").await;
    send_json(&mut p2, &PhoneMsg::Stop { reason: alertme_protocol::StopReason::Cancel }).await;
    eventually(Duration::from_secs(5), "a2 ended", || async {
        (env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{a2}' AND status = 'cancelled'")).await
            == 1)
            .then_some(())
    })
    .await;

    let mut console = connect(&server.ws("/v1/responder"), Some(&rt), None).await.unwrap();
    async fn answer_on(console: &mut Ws, cmd: serde_json::Value) -> ResponderMsg {
        console.send(Message::Text(cmd.to_string().into())).await.unwrap();
        loop {
            let Some(Message::Text(t)) = next(console).await else { panic!("console closed") };
            match serde_json::from_str::<ResponderMsg>(t.as_str()).unwrap() {
                m @ (ResponderMsg::Done { .. } | ResponderMsg::Error { .. }) => return m,
                _ => continue,
            }
        }
    }
    macro_rules! answer {
        ($cmd:expr) => {
            answer_on(&mut console, $cmd)
        };
    }
    let done =
        |c: &str, a: Option<&str>| ResponderMsg::Done { command: c.into(), alert_id: a.map(str::to_owned) };
    let cmd = |c: &ResponderCmd| serde_json::to_value(c).unwrap();
    assert_eq!(answer!(cmd(&ResponderCmd::Claim { alert_id: a1.clone() })).await, done("claim", Some(&a1)));
    let note = ResponderCmd::Note { alert_id: a1.clone(), text: "on my way".into() };
    assert_eq!(answer!(cmd(&note)).await, done("note", Some(&a1)));
    assert_eq!(answer!(cmd(&ResponderCmd::Ping)).await, done("ping", None));
    assert_eq!(
        answer!(cmd(&ResponderCmd::Resolve { alert_id: a1.clone() })).await,
        done("resolve", Some(&a1))
    );
    assert_eq!(
        answer!(cmd(&ResponderCmd::Resolve { alert_id: a1.clone() })).await,
        done("resolve", Some(&a1)),
        "again"
    );
    let ResponderMsg::Error { code, .. } =
        answer!(cmd(&ResponderCmd::Resolve { alert_id: a2.clone() })).await
    else {
        panic!("a cancelled alert cannot be resolved")
    };
    assert_eq!(code, "already_ended");
    let ResponderMsg::Error { code, .. } = answer!(json!({"type": "dance"})).await else { panic!() };
    assert_eq!(code, "bad_message");
    drop(console);

    // Unreadable frames: RFC 6455 codes on every socket.
    let watch = server.ws(&format!("/v1/watch?token={rt}&alert={a3}"));
    let not_utf8 = || Message::Frame(Frame::message(vec![0xC3u8, 0x28], OpCode::Data(Data::Text), true));
    let orphan = || Message::Frame(Frame::message(vec![1u8], OpCode::Data(Data::Continue), true));
    let huge = || Message::Binary(vec![1u8; 70 * 1024].into());
    for (what, frame, code) in [("utf8", 0, 1007u16), ("orphan", 1, 1002), ("huge", 2, 1009)] {
        for url in [server.ws("/v1/phone"), watch.clone(), server.ws("/v1/responder")] {
            let bearer = if url.contains("/v1/phone") { &token } else { &rt };
            let mut ws = connect(&url, Some(bearer), None).await.unwrap();
            let m = match frame {
                0 => not_utf8(),
                1 => orphan(),
                _ => huge(),
            };
            ws.send(m).await.unwrap();
            assert_eq!(close_code(&mut ws).await, code, "{what} on {url}");
        }
    }
}

/// One person may have at most 5 alerts active at once; a sixth start is refused with a clear
/// error (and resuming one of the five still works).
async fn live_alerts_capped(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    let mut open = Vec::new();
    for i in 0..6 {
        let mut ws = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
        let _welcome = phone_msg(&mut ws).await;
        send_json(
            &mut ws,
            &PhoneMsg::Start { client_id: format!("c{i}"), audio_mime: None, pressed_at_ms: None },
        )
        .await;
        match phone_msg(&mut ws).await {
            PhoneServerMsg::Started { .. } => assert!(i < 5, "the sixth alert was opened"),
            PhoneServerMsg::Error { code, .. } => {
                assert_eq!((i, code.as_str()), (5, "too_many_alerts"));
            }
            other => panic!("{other:?}"),
        }
        open.push(ws);
    }
    assert_eq!(env.scalar("SELECT COUNT(*) FROM alerts").await, 5);
    let mut again = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    let _welcome = phone_msg(&mut again).await;
    send_json(&mut again, &PhoneMsg::Start { client_id: "c0".into(), audio_mime: None, pressed_at_ms: None })
        .await;
    assert!(matches!(phone_msg(&mut again).await, PhoneServerMsg::Started { created: false, .. }));
}
both!(live_alerts_per_person_are_capped, live_alerts_capped);

/// Starting on an address that is taken says which address and how to choose another, instead
/// of a stack trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_in_use_is_explained() {
    let env = Env::new(Backend::Sqlite).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--bind", &addr, "--database-url", &env.url, "--data-dir"])
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("ALERTME_BIND") && !err.contains("Stack backtrace"), "{err}");
}
