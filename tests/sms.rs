//! Accounts, emergency contacts and SMS through Twilio's API, against the fake Twilio on
//! loopback, on SQLite and on PostgreSQL.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use alertme_protocol::{Contact, ContactInput, Delivery, PhoneMsg, PhoneServerMsg, StopReason, WatchMsg};
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const ANA: &str = "+4915112345678";
const CONTACTS: [(&str, &str); 3] =
    [("Ben", "+4915211111111"), ("Cleo", "+4915222222222"), ("Dan", "+447911123456")];

/// The fake's server flags, with any of them overridden by `extra`.
fn args(fake: &FakeTwilio, extra: &[&str]) -> Vec<String> {
    let mut a = Vec::new();
    for pair in fake.server_args().chunks(2) {
        if !extra.contains(&pair[0].as_str()) {
            a.extend_from_slice(pair);
        }
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

async fn start_server(env: &Env, fake: &FakeTwilio, extra: &[&str]) -> TestApp {
    let a = args(fake, extra);
    TestApp::start(env, &a.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// A server as a child process, for the test that kills it mid-send.
fn start_process(env: &Env, fake: &FakeTwilio, extra: &[&str]) -> Server {
    let a = args(fake, extra);
    Server::start(env, "127.0.0.1:0", &a.iter().map(String::as_str).collect::<Vec<_>>())
}

async fn add_contacts(server: &impl Base, token: &str, people: &[(&str, &str)]) -> Vec<Contact> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for (name, phone) in people {
        let r = http
            .post(server.http("/v1/contacts"))
            .bearer_auth(token)
            .json(&ContactInput {
                name: name.to_string(),
                phone: phone.to_string(),
                position: None,
                language: None,
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        out.push(r.json().await.unwrap());
    }
    out
}

/// Opens a phone socket and starts an alert; returns the socket, alert id and when start was sent.
async fn sos(server: &impl Base, token: &str, client_id: &str) -> (Ws, String, i64) {
    let mut ws = connect(&server.ws("/v1/phone"), Some(token), None).await.unwrap();
    let _welcome = next(&mut ws).await;
    let t0 = alertme_server::now_ms();
    send_json(
        &mut ws,
        &PhoneMsg::Start { client_id: client_id.into(), audio_mime: None, pressed_at_ms: None },
    )
    .await;
    loop {
        let Some(Message::Text(t)) = next(&mut ws).await else { panic!("phone socket closed") };
        if let PhoneServerMsg::Started { alert_id, .. } = serde_json::from_str(t.as_str()).unwrap() {
            return (ws, alert_id, t0);
        }
    }
}

async fn deliveries(server: &impl Base, token: &str, alert: &str) -> Vec<Delivery> {
    server.get_json(&format!("/v1/alerts/{alert}/deliveries"), token).await
}

async fn alert_texts(fake: &FakeTwilio) -> Vec<Value> {
    fake.messages().await.into_iter().filter(|m| m["body"].as_str().unwrap().contains("needs help")).collect()
}

/// SOS with 3 contacts: each gets one text with their own link, within a second; delivery
/// state and "opened" reach the person, watchers and the API; the end sends an all clear.
async fn sos_texts_each_contact_once(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &[]).await;
    let contacts = add_contacts(&server, &token, &CONTACTS).await;
    // Each new contact is told, once, and how to opt out.
    let added = eventually(Duration::from_secs(10), "contact-added texts", || async {
        let m = fake.messages().await;
        (m.len() == 3).then_some(m)
    })
    .await;
    for (_, phone) in CONTACTS {
        let m: Vec<_> = added.iter().filter(|m| m["to"] == phone).collect();
        assert_eq!(m.len(), 1);
        assert!(m[0]["body"].as_str().unwrap().contains("Ana added you as an emergency contact"));
        assert!(m[0]["body"].as_str().unwrap().contains("Reply STOP"));
    }

    let (mut phone, alert, t0) = sos(&server, &token, "sos-1").await;
    let texts = eventually(Duration::from_secs(10), "3 alert texts", || async {
        let t = alert_texts(&fake).await;
        (t.len() >= 3).then_some(t)
    })
    .await;
    assert_eq!(texts.len(), 3, "one text per contact, no more");
    // The person in danger sees that their contacts were texted.
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Message::Text(t)) = next(&mut phone).await else { panic!("phone closed") };
            if let PhoneServerMsg::Deliveries { deliveries } = serde_json::from_str(t.as_str()).unwrap() {
                if deliveries.len() == 3 && deliveries.iter().all(|d| d.status == "queued") {
                    return deliveries;
                }
            }
        }
    })
    .await
    .expect("phone saw its contacts texted");
    assert_eq!(seen.iter().map(|d| d.contact.as_str()).collect::<Vec<_>>(), vec!["Ben", "Cleo", "Dan"]);
    let mut links = Vec::new();
    for (name, number) in CONTACTS {
        let t: Vec<_> = texts.iter().filter(|m| m["to"] == number).collect();
        assert_eq!(t.len(), 1, "{name} texted exactly once");
        let m = t[0];
        assert_eq!(m["from"], TWILIO_FROM);
        assert_eq!(m["status_callback"], server.http("/v1/sms/status"));
        let body = m["body"].as_str().unwrap();
        let prefix = format!("Ana needs help. Watch live: {}/w/amw_", server.http(""));
        assert!(body.starts_with(&prefix), "{body}");
        let latency = m["received_ms"].as_i64().unwrap() - t0;
        println!("SOS start → provider request for {name}: {latency} ms");
        assert!(latency < 5_000, "{name}'s text took {latency} ms");
        links.push(body.rsplit('/').next().unwrap().to_owned());
    }
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 3, "each contact has a watch link of their own");

    // Ben opens his link: everyone sees that he did.
    let ben_link = texts.iter().find(|m| m["to"] == CONTACTS[0].1).unwrap()["body"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut ben = connect(&server.ws(&format!("/v1/watch?token={ben_link}")), None, None).await.unwrap();
    let Some(Message::Text(t)) = next(&mut ben).await else { panic!() };
    let WatchMsg::Snapshot { deliveries: first, .. } = serde_json::from_str(t.as_str()).unwrap() else {
        panic!()
    };
    assert_eq!(first.len(), 3);
    let d = eventually(Duration::from_secs(5), "opened", || async {
        let d = deliveries(&server, &token, &alert).await;
        d.iter().any(|x| x.contact == "Ben" && x.opened).then_some(d)
    })
    .await;
    assert!(d.iter().filter(|x| x.opened).count() == 1);
    assert!(d.iter().all(|x| x.phone.contains('•')), "numbers are masked for watchers");

    // Delivery reports flow in: the watcher sees them live.
    for m in &texts {
        let codes = fake.callback(m["sid"].as_str().unwrap(), &["sent", "delivered"], false, false).await;
        assert_eq!(codes, vec![204, 204]);
    }
    let live = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Message::Text(t)) = next(&mut ben).await else { panic!("watch closed") };
            if let WatchMsg::Deliveries { deliveries, .. } = serde_json::from_str(t.as_str()).unwrap() {
                if deliveries.iter().all(|d| d.status == "delivered") {
                    return deliveries;
                }
            }
        }
    })
    .await
    .expect("watcher saw delivery state");
    assert_eq!(live.len(), 3);
    assert_eq!(
        env.scalar(&format!(
            "SELECT COUNT(*) FROM sms_outbox WHERE alert_id = '{alert}' AND status = 'delivered'"
        ))
        .await,
        3
    );

    // The SOS ends: each contact gets one all clear.
    send_json(&mut phone, &PhoneMsg::Stop { reason: StopReason::Resolve }).await;
    let clear = eventually(Duration::from_secs(10), "all-clear texts", || async {
        let m: Vec<Value> = fake
            .messages()
            .await
            .into_iter()
            .filter(|m| m["body"].as_str().unwrap().starts_with("All clear"))
            .collect();
        (m.len() >= 3).then_some(m)
    })
    .await;
    assert_eq!(clear.len(), 3);
    for c in &contacts {
        assert_eq!(clear.iter().filter(|m| m["to"] == c.phone.as_str()).count(), 1);
    }
}
both!(sos_texts, sos_texts_each_contact_once);

/// 429 then success, a 5xx, and a timeout after the provider accepted: nobody lost, nobody twice.
async fn provider_failures(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&["--hold-ms", "3000"]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &[]).await;
    add_contacts(&server, &token, &CONTACTS).await;
    eventually(Duration::from_secs(10), "contact-added texts", || async {
        (fake.messages().await.len() == 3).then_some(())
    })
    .await;
    fake.plan(&["429", "500", "timeout", "429"]).await;
    let (_phone, alert, _) = sos(&server, &token, "sos-1").await;
    let d = eventually(Duration::from_secs(30), "all three accepted", || async {
        let d = deliveries(&server, &token, &alert).await;
        (d.len() == 3 && d.iter().all(|x| x.status == "queued")).then_some(d)
    })
    .await;
    assert_eq!(d.len(), 3);
    let texts = alert_texts(&fake).await;
    for (name, number) in CONTACTS {
        assert_eq!(texts.iter().filter(|m| m["to"] == number).count(), 1, "{name} must get exactly one text");
    }
    let attempts = fake.attempts().await;
    let behaviours: Vec<&str> = attempts.iter().map(|a| a["behaviour"].as_str().unwrap()).collect();
    for b in ["429", "500", "timeout"] {
        assert!(behaviours.contains(&b), "{b} was exercised: {behaviours:?}");
    }
    assert!(attempts.len() >= 3 + 3 + 3, "retries happened: {behaviours:?}");
}
both!(provider_failures_lose_nobody, provider_failures);

/// The server dies with texts unsent or in flight: after restart each goes out exactly once.
async fn restart_sends_once(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&["--hold-ms", "20000"]);
    let token = env.user("Ana", ANA);
    let mut server = start_process(&env, &fake, &["--sms-timeout-ms", "15000"]);
    let addr = server.addr.clone();
    add_contacts(&server, &token, &CONTACTS).await;
    eventually(Duration::from_secs(10), "contact-added texts", || async {
        (fake.messages().await.len() == 3).then_some(())
    })
    .await;
    // One accepted but unanswered, one never answered and not accepted, one fine.
    fake.plan(&["timeout", "hang"]).await;
    let (_phone, alert, _) = sos(&server, &token, "sos-1").await;
    eventually(Duration::from_secs(10), "attempts in flight", || async {
        let a = fake.attempts().await;
        (a.len() >= 6).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();
    let unsent = env
        .scalar(&format!(
            "SELECT COUNT(*) FROM sms_outbox WHERE alert_id = '{alert}' AND status IN ('pending', 'sending')"
        ))
        .await;
    assert!(unsent >= 2, "rows were caught mid-send: {unsent}");
    let a = args(&fake, &["--sms-timeout-ms", "15000"]);
    let server = Server::start(&env, &addr, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let d = eventually(Duration::from_secs(30), "all sent after restart", || async {
        let d = deliveries(&server, &token, &alert).await;
        (d.len() == 3 && d.iter().all(|x| x.status == "queued")).then_some(d)
    })
    .await;
    assert_eq!(d.len(), 3);
    let texts = alert_texts(&fake).await;
    for (name, number) in CONTACTS {
        assert_eq!(
            texts.iter().filter(|m| m["to"] == number).count(),
            1,
            "{name}: exactly once across the crash"
        );
    }
}
both!(sigkill_with_unsent_texts, restart_sends_once);

/// Callbacks: signed ones count, tampered or unsigned ones are refused, order never goes back.
/// Replies: STOP opts a contact out of the next SOS.
async fn callbacks_and_stop(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &["--sms-status-poll-secs", "1"]).await;
    add_contacts(&server, &token, &CONTACTS[..2]).await;
    let (mut phone, alert, _) = sos(&server, &token, "sos-1").await;
    let texts = eventually(Duration::from_secs(10), "alert texts", || async {
        let t = alert_texts(&fake).await;
        (t.len() == 2).then_some(t)
    })
    .await;
    let ben = texts.iter().find(|m| m["to"] == CONTACTS[0].1).unwrap()["sid"].as_str().unwrap().to_owned();
    let cleo = texts.iter().find(|m| m["to"] == CONTACTS[1].1).unwrap()["sid"].as_str().unwrap().to_owned();
    let status_of = |name: &'static str| {
        let (server, token, alert) = (&server, &token, &alert);
        async move {
            deliveries(server, token, alert).await.into_iter().find(|d| d.contact == name).unwrap().status
        }
    };
    assert_eq!(fake.callback(&ben, &["delivered"], true, false).await, vec![403], "tampered");
    assert_eq!(fake.callback(&ben, &["delivered"], false, true).await, vec![403], "unsigned");
    assert_eq!(status_of("Ben").await, "queued", "refused callbacks change nothing");
    assert_eq!(fake.callback(&ben, &["sent"], false, false).await, vec![204]);
    assert_eq!(status_of("Ben").await, "sent");
    // Out of order: delivered arrives before sent, and failed after delivered.
    assert_eq!(
        fake.callback(&cleo, &["delivered", "sent", "queued"], false, false).await,
        vec![204, 204, 204]
    );
    assert_eq!(status_of("Cleo").await, "delivered", "never backwards");
    assert_eq!(fake.callback(&ben, &["undelivered", "sent"], false, false).await, vec![204, 204]);
    assert_eq!(status_of("Ben").await, "undelivered");
    send_json(&mut phone, &PhoneMsg::Stop { reason: StopReason::Cancel }).await;

    // Lost delivery reports: the all-clear texts' callbacks never arrive (refused here), yet
    // the server fetches their status once they are stale and records the final state.
    let clear = eventually(Duration::from_secs(10), "all-clear texts", || async {
        let m: Vec<Value> = fake
            .messages()
            .await
            .into_iter()
            .filter(|m| m["body"].as_str().unwrap().starts_with("All clear"))
            .collect();
        (m.len() == 2).then_some(m)
    })
    .await;
    for m in &clear {
        assert_eq!(fake.callback(m["sid"].as_str().unwrap(), &["delivered"], false, true).await, vec![403]);
    }
    eventually(Duration::from_secs(10), "polled final states", || async {
        let n = env
            .scalar(&format!(
                "SELECT COUNT(*) FROM sms_outbox WHERE alert_id = '{alert}' AND kind = 'all_clear' AND status = 'delivered'"
            ))
            .await;
        (n == 2).then_some(())
    })
    .await;

    // Cleo replies STOP: she is opted out and not texted about the next SOS.
    assert_eq!(fake.inbound(&server.http("/v1/sms/inbound"), CONTACTS[1].1, " stop ").await, 200);
    let list: Vec<Contact> = server.get_json("/v1/contacts", &token).await;
    assert!(list.iter().find(|c| c.name == "Cleo").unwrap().opted_out);
    let before = fake.to(CONTACTS[1].1).await.len();
    let (_phone, alert2, _) = sos(&server, &token, "sos-2").await;
    eventually(Duration::from_secs(10), "second SOS texted Ben", || async {
        let t = alert_texts(&fake).await;
        (t.iter().filter(|m| m["to"] == CONTACTS[0].1).count() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.to(CONTACTS[1].1).await.len(), before, "an opted-out contact is not texted");
    let d = deliveries(&server, &token, &alert2).await;
    assert_eq!(d.len(), 1, "only Ben was queued: {d:?}");
    // An unsigned inbound webhook is refused.
    let r = reqwest::Client::new()
        .post(server.http("/v1/sms/inbound"))
        .form(&[("From", CONTACTS[0].1), ("Body", "STOP")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
both!(callbacks, callbacks_and_stop);

async fn request_code(http: &reqwest::Client, server: &impl Base, phone: &str) -> (u16, String) {
    let r = http.post(server.http("/v1/auth/code")).json(&json!({ "phone": phone })).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn verify(http: &reqwest::Client, server: &impl Base, phone: &str, code: &str) -> reqwest::Response {
    http.post(server.http("/v1/auth/verify"))
        .json(&json!({ "phone": phone, "code": code, "name": "Eve", "device_label": "test phone" }))
        .send()
        .await
        .unwrap()
}

/// The code in the `n`th text (1-based) to `phone`, once it arrived.
async fn nth_code(fake: &FakeTwilio, phone: &str, n: usize) -> String {
    let m = eventually(Duration::from_secs(10), "code text", || async {
        fake.to(phone).await.get(n - 1).cloned()
    })
    .await;
    let body = m["body"].as_str().unwrap();
    body.split_whitespace()
        .find(|w| w.len() == 7 && w.ends_with('.'))
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

/// Codes: single use, dead after 5 wrong tries, expire; sends rate-limited; same answer for
/// known and unknown numbers; devices listed and revoked (live sockets closed).
async fn registration(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    env.user("Ana", ANA);
    let server = start_server(&env, &fake, &["--code-ttl-secs", "2", "--reg-per-number", "3"]).await;
    let http = reqwest::Client::new();
    let eve = "+4917612345678";

    let known = request_code(&http, &server, ANA).await;
    let unknown = request_code(&http, &server, eve).await;
    assert_eq!(known, unknown, "the answer must not reveal who is registered");
    assert_eq!(unknown.0, 202);
    assert_eq!(request_code(&http, &server, "0176 1234").await.0, 400, "numbers must be international");

    // Brute force: five wrong guesses kill the code, even the right one fails after.
    let code = nth_code(&fake, eve, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(verify(&http, &server, eve, wrong).await.status(), 401);
    }
    assert_eq!(verify(&http, &server, eve, &code).await.status(), 401, "dead after 5 wrong tries");

    // A fresh code works once.
    assert_eq!(request_code(&http, &server, eve).await.0, 202);
    let code = nth_code(&fake, eve, 2).await;
    let r = verify(&http, &server, eve, &code).await;
    assert_eq!(r.status(), 201);
    let v: alertme_protocol::VerifyResponse = r.json().await.unwrap();
    assert!(v.device_token.starts_with("amd_"));
    assert_eq!(verify(&http, &server, eve, &code).await.status(), 401, "single use");

    // Expiry.
    assert_eq!(request_code(&http, &server, eve).await.0, 202);
    let code = nth_code(&fake, eve, 3).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(verify(&http, &server, eve, &code).await.status(), 401, "expired");
    // Per-number send limit (3 here).
    assert_eq!(request_code(&http, &server, eve).await.0, 429);
    assert_eq!(
        env.scalar(&format!("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'code' AND to_phone = '{eve}'"))
            .await,
        3
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'code' AND body IS NOT NULL AND status <> 'pending'").await,
        0,
        "codes are not kept once sent"
    );

    // Devices: a second device, listed, then revoked; its phone socket is closed at once.
    let second = {
        let (s, _) = request_code(&http, &server, ANA).await;
        assert_eq!(s, 202);
        let code = nth_code(&fake, ANA, 2).await;
        let v: alertme_protocol::VerifyResponse =
            verify(&http, &server, ANA, &code).await.json().await.unwrap();
        v
    };
    let first = env.user("Ana", ANA);
    let list: Vec<alertme_protocol::DeviceInfo> = server.get_json("/v1/devices", &first).await;
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|d| d.current).count(), 1);
    let mut ws = connect(&server.ws("/v1/phone"), Some(&second.device_token), None).await.unwrap();
    let _ = next(&mut ws).await;
    let r = http
        .delete(server.http(&format!("/v1/devices/{}", second.device_id)))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match futures_util::StreamExt::next(&mut ws).await {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(_)) => continue,
                _ => return 0,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, 4401);
    let refused = connect(&server.ws("/v1/phone"), Some(&second.device_token), None).await;
    assert!(refused.is_err(), "a revoked token is refused");
}
both!(registration_codes, registration);

/// SMS pumping: 1,000 registration attempts across one number block, from 100 client addresses,
/// create at most 10 texts; an SOS to contacts in that block is still texted.
async fn pumping(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &[]).await;
    let started = Instant::now();
    let mut accepted = 0;
    for ip in 0..100u8 {
        let http = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + ip)))
            .build()
            .unwrap();
        for i in 0..10u32 {
            let phone = format!("+49151123{:05}", u32::from(ip) * 10 + i);
            let (status, _) = request_code(&http, &server, &phone).await;
            assert!(status == 202 || status == 429, "{status}");
            accepted += u32::from(status == 202);
        }
    }
    println!("1000 registration attempts in {:?}: {accepted} accepted", started.elapsed());
    let codes = env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'code'").await;
    assert!(codes <= 10, "{codes} texts created");
    assert_eq!(codes, i64::from(accepted));
    // Contacts inside the pumped block still get the SOS.
    add_contacts(&server, &token, &[("Fay", "+4915112300042"), ("Gus", "+4915112300043")]).await;
    let (_phone, _alert, _) = sos(&server, &token, "sos-1").await;
    eventually(Duration::from_secs(10), "SOS texts despite the guard", || async {
        (alert_texts(&fake).await.len() == 2).then_some(())
    })
    .await;
}
both!(pumping_burst, pumping);

/// Contacts: validation, bounds, duplicates, update, delete, and the operator CLI.
async fn contacts_crud(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &[]).await;
    let http = reqwest::Client::new();
    let post = |name: &str, phone: &str| {
        http.post(server.http("/v1/contacts"))
            .bearer_auth(&token)
            .json(&json!({ "name": name, "phone": phone }))
            .send()
    };
    assert_eq!(post("X", "12345").await.unwrap().status(), 400);
    assert_eq!(post("", "+4915211111111").await.unwrap().status(), 400);
    assert_eq!(post("Me", ANA).await.unwrap().status(), 400, "not yourself");
    assert_eq!(http.get(server.http("/v1/contacts")).send().await.unwrap().status(), 401);
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = post(&format!("C{i}"), &format!("+49152111111{i:02}")).await.unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Contact>().await.unwrap().id);
    }
    assert_eq!(post("C10", "+4915211111199").await.unwrap().status(), 409, "at most 10");
    http.delete(server.http(&format!("/v1/contacts/{}", ids[9]))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(post("Dup", "+4915211111100").await.unwrap().status(), 409, "no duplicates");
    let r = http
        .put(server.http(&format!("/v1/contacts/{}", ids[0])))
        .bearer_auth(&token)
        .json(&json!({ "name": "Zoe", "phone": "+44 7911 123456", "position": 99 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .put(server.http(&format!("/v1/contacts/{}", ids[1])))
        .bearer_auth(&token)
        .json(&json!({ "name": "Clash", "phone": "+447911123456" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "two contacts cannot share a number");
    let list: Vec<Contact> = server.get_json("/v1/contacts", &token).await;
    assert_eq!(list.len(), 9);
    assert_eq!(list.last().unwrap().name, "Zoe");
    assert_eq!(list.last().unwrap().phone, "+447911123456", "normalized to E.164");
    // Another person cannot touch Ana's contacts.
    let other = env.user("Ben", "+4915299999999");
    let r = http
        .delete(server.http(&format!("/v1/contacts/{}", ids[1])))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The operator CLI shares the rules.
    let out = env.cli(&["contact", "add", "--user", ANA, "--name", "Hal", "--phone", "+4915211111177"]);
    assert!(out.contains("Hal\t+4915211111177"), "{out}");
    let out = env.cli(&["contact", "list", "--user", ANA]);
    assert_eq!(out.lines().count(), 10);
    assert!(out.lines().next().unwrap().contains("C1"), "{out}");
    // The REST description is served.
    let spec = http.get(server.http("/openapi.yaml")).send().await.unwrap().text().await.unwrap();
    assert!(spec.contains("/v1/auth/verify") && spec.contains("/v1/contacts"));
    // …and is valid YAML whose paths include every route a client needs.
    let docs = yaml_rust2::YamlLoader::load_from_str(&spec).unwrap_or_else(|e| panic!("openapi.yaml: {e}"));
    let paths = &docs[0]["paths"];
    for p in [
        "/v1/auth/code",
        "/v1/contacts/{id}",
        "/v1/alerts/{id}/cancel",
        "/v1/timers/{id}/checkin",
        "/v1/geozones",
        "/v1/uploads/{upload}",
    ] {
        assert!(!paths[p].is_badvalue(), "openapi.yaml lacks {p}");
    }
    assert!(!paths["/v1/alerts/{id}/recording"]["post"].is_badvalue(), "openapi.yaml lacks the upload");
}
both!(contacts, contacts_crud);

/// The first close code a socket gets within `limit`.
async fn closed_with(ws: &mut Ws, limit: Duration) -> u16 {
    tokio::time::timeout(limit, async {
        loop {
            match futures_util::StreamExt::next(ws).await {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(_)) => continue,
                _ => return 0,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no close within {limit:?}"))
}

/// Watch access can be withdrawn: removing a contact revokes their link and closes their page at
/// once; the person (REST) and an operator (`alertme link revoke`) revoke one contact's link;
/// `alertme responder revoke` closes a console; links expire a set time after the end.
async fn withdraw_access(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(&env, &fake, &["--link-ttl-secs", "3"]).await;
    let http = reqwest::Client::new();
    let contacts = add_contacts(&server, &token, &CONTACTS).await;
    let (phone, alert, _) = sos(&server, &token, "sos-1").await;
    let texts = eventually(Duration::from_secs(10), "3 alert texts", || async {
        let t = alert_texts(&fake).await;
        (t.len() >= 3).then_some(t)
    })
    .await;
    let link = |number: &str| {
        let m = texts.iter().find(|m| m["to"] == number).unwrap();
        m["body"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
    };
    let (ben, cleo, dan) = (link(CONTACTS[0].1), link(CONTACTS[1].1), link(CONTACTS[2].1));
    let mut watchers = Vec::new();
    for t in [&ben, &cleo, &dan] {
        let mut ws = connect(&server.ws(&format!("/v1/watch?token={t}")), None, None).await.unwrap();
        let _snapshot = next(&mut ws).await;
        watchers.push(ws);
    }
    let status = |t: String| {
        let url = server.http(&format!("/v1/watch/alert?token={t}"));
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };

    // Removing Ben from the contacts closes his open page at once, and his link is dead.
    let r = http.delete(server.http(&format!("/v1/contacts/{}", contacts[0].id))).bearer_auth(&token).send();
    assert_eq!(r.await.unwrap().status(), 204);
    assert_eq!(closed_with(&mut watchers[0], Duration::from_secs(2)).await, 4401);
    assert_eq!(status(ben.clone()).await, 401);
    assert_eq!(status(cleo.clone()).await, 200);

    // A contact cannot withdraw another's link; the person can.
    let revoke_cleo = server.http(&format!("/v1/alerts/{alert}/links/{}", contacts[1].id));
    let r = http.delete(&revoke_cleo).query(&[("token", &dan)]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(http.delete(&revoke_cleo).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert_eq!(closed_with(&mut watchers[1], Duration::from_secs(2)).await, 4401);
    assert_eq!(status(cleo).await, 401);
    assert_eq!(http.delete(&revoke_cleo).bearer_auth(&token).send().await.unwrap().status(), 404, "already");
    let d: Vec<Delivery> = deliveries(&server, &token, &alert).await;
    assert!(d.iter().find(|d| d.contact == "Cleo").unwrap().revoked, "{d:?}");

    // The operator's CLI, in another process: the server polls and closes Dan's page.
    env.cli(&["link", "revoke", "--alert", &alert, "--contact", &contacts[2].id]);
    assert_eq!(closed_with(&mut watchers[2], Duration::from_secs(10)).await, 4401);
    assert_eq!(status(dan).await, 401);

    // A responder revoked from the CLI loses their open console.
    let rt = env.responder("Rita");
    let mut console = connect(&server.ws("/v1/responder"), Some(&rt), None).await.unwrap();
    let _overview = next(&mut console).await;
    env.cli(&["responder", "revoke", "Rita"]);
    assert_eq!(closed_with(&mut console, Duration::from_secs(10)).await, 4401);
    assert!(connect(&server.ws("/v1/responder"), Some(&rt), None).await.is_err());

    // The phone's own link works after the end, until it expires (3 s here): then 410.
    drop(phone);
    let mut phone = connect(&server.ws("/v1/phone"), Some(&token), None).await.unwrap();
    let _welcome = next(&mut phone).await;
    send_json(
        &mut phone,
        &PhoneMsg::Start { client_id: "sos-1".into(), audio_mime: None, pressed_at_ms: None },
    )
    .await;
    let PhoneServerMsg::Started { watch_url, .. } = phone_msg(&mut phone).await else { panic!("no started") };
    let own = watch_url.rsplit('/').next().unwrap().to_owned();
    send_json(&mut phone, &PhoneMsg::Stop { reason: StopReason::Cancel }).await;
    eventually(Duration::from_secs(5), "the end", || async {
        (env.scalar(&format!("SELECT COUNT(*) FROM alerts WHERE id = '{alert}' AND ended_at IS NOT NULL"))
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(status(own.clone()).await, 200, "still open right after the end");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(status(own.clone()).await, 410, "expired");
    let body: Value = reqwest::get(server.http(&format!("/v1/watch/alert?token={own}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"], "link_expired");
}
both!(watch_access_withdrawn, withdraw_access);

/// SMS pumping through the API: premium-rate numbers and other countries are refused, adding and
/// removing a contact in a loop texts them once, contact notices and alert texts per person per
/// hour are capped, and `X-Forwarded-For` counts only from a configured proxy.
async fn pumping_guards(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let server = start_server(
        &env,
        &fake,
        &[
            "--sms-countries",
            "DE,GB",
            "--trusted-proxies",
            "127.0.0.1",
            "--reg-per-ip",
            "3",
            "--reg-per-number",
            "50",
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let add = |name: String, phone: String| {
        let (http, url, token) = (http.clone(), server.http("/v1/contacts"), token.clone());
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&ContactInput { name, phone, position: None, language: None })
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Premium rate (DE 0900, GB 09, US 1-900, FR 0891) and shared cost, for codes and contacts.
    for costly in ["+499001234567", "+449012345678", "+448431234567"] {
        let (s, body) = request_code(&http, &server, costly).await;
        assert_eq!(s, 400, "{costly}: {body}");
        assert!(body.contains("premium-rate"), "{body}");
        assert_eq!(add("Pay".into(), costly.into()).await.0, 400);
    }
    // Countries this deployment does not text.
    let (s, body) = request_code(&http, &server, "+14155552671").await;
    assert_eq!(s, 400);
    assert!(body.contains("US"), "{body}");
    assert_eq!(add("Sam".into(), "+33612345678".into()).await.0, 400);

    // Added and removed 60 times: told once.
    let loop_number = "+4915199990000";
    for _ in 0..60 {
        let (s, body) = add("Loop".into(), loop_number.into()).await;
        assert_eq!(s, 201, "{body}");
        let c: Contact = serde_json::from_str(&body).unwrap();
        let r = http.delete(server.http(&format!("/v1/contacts/{}", c.id))).bearer_auth(&token).send().await;
        assert_eq!(r.unwrap().status(), 204);
    }
    let told = |n: &str| {
        format!("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'contact_added' AND to_phone = '{n}'")
    };
    assert_eq!(env.scalar(&told(loop_number)).await, 1);
    // Twenty notices an hour: nine more contacts, then ten replaced, then a refusal.
    let mut contacts = Vec::new();
    for (i, p) in ["151", "152", "157", "159", "160", "162", "163", "170", "171"].into_iter().enumerate() {
        let (s, body) = add(format!("C{i}"), format!("+49{p}22345678")).await;
        assert_eq!(s, 201, "{i}: {body}");
        contacts.push(serde_json::from_str::<Contact>(&body).unwrap());
    }
    let mut last = 0;
    for i in 0..11 {
        let (s, body) = add(format!("R{i}"), format!("+49176{i:04}1234")).await;
        last = s;
        if s == 429 {
            assert_eq!(i, 10, "{body}");
            break;
        }
        assert_eq!(s, 201, "{body}");
        let c: Contact = serde_json::from_str(&body).unwrap();
        let r = http.delete(server.http(&format!("/v1/contacts/{}", c.id))).bearer_auth(&token).send().await;
        assert_eq!(r.unwrap().status(), 204);
    }
    assert_eq!(last, 429, "the 21st notice of the hour is refused");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'contact_added'").await, 20);

    // Five SOS start/cancel cycles with 9 contacts: alert texts stop at 30 an hour; every
    // contact who was texted an alert gets its all clear.
    for i in 0..5 {
        let (mut phone, _alert, _) = sos(&server, &token, &format!("cycle-{i}")).await;
        send_json(&mut phone, &PhoneMsg::Stop { reason: StopReason::Cancel }).await;
        loop {
            if let PhoneServerMsg::Stopped { .. } = phone_msg(&mut phone).await {
                break;
            }
        }
    }
    let count = |sql: &'static str| env.scalar(sql);
    assert_eq!(
        count("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'alert' AND status <> 'limited'").await,
        30
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'alert' AND status = 'limited'").await,
        15
    );
    assert_eq!(count("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'all_clear'").await, 30);

    // X-Forwarded-For from the trusted proxy (127.0.0.1 here) names the client: each client has
    // its own quota (3 here).
    let code_from = |client: &'static str, i: u32| {
        let (http, url) = (http.clone(), server.http("/v1/auth/code"));
        async move {
            let phone = format!("+49151{i:04}5678");
            let r = http
                .post(url)
                .header("x-forwarded-for", format!("6.6.6.6, {client}"))
                .json(&json!({"phone": phone}));
            r.send().await.unwrap().status().as_u16()
        }
    };
    let mut a = Vec::new();
    for i in 0..4 {
        a.push(code_from("203.0.113.1", i).await);
    }
    assert_eq!(a, vec![202, 202, 202, 429]);
    assert_eq!(code_from("203.0.113.2", 10).await, 202, "another client behind the proxy");
    drop(server);

    // Without a trusted proxy the header is ignored: every request is the socket's peer.
    let server = start_server(&env, &fake, &["--reg-per-ip", "2"]).await;
    let mut statuses = Vec::new();
    for (i, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"].into_iter().enumerate() {
        let r = http
            .post(server.http("/v1/auth/code"))
            .header("x-forwarded-for", client)
            .json(&json!({"phone": format!("+49152{i:04}5678")}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![202, 202, 429]);
}
both!(pumping_through_the_api, pumping_guards);

/// Each contact is texted in their own language (Russian here, English for the one who chose
/// none), and the all-clear says who resolved the SOS, never "false alarm".
async fn texts_in_each_contacts_language(backend: Backend) {
    let env = Env::new(backend).await;
    let fake = FakeTwilio::start(&[]);
    let token = env.user("Ana", ANA);
    let rita = env.responder("Rita");
    let server = start_server(&env, &fake, &[]).await;
    let api = alertme_client::Api::new(&server.http("")).with_token(&token);
    let contact = |name: &str, phone: &str, language: Option<&str>| ContactInput {
        name: name.into(),
        phone: phone.into(),
        position: None,
        language: language.map(str::to_owned),
    };
    let refused = api.add_contact(&contact("Eve", "+4915233333333", Some("klingon"))).await.unwrap_err();
    assert_eq!((refused.status, refused.body.detail.as_str()), (400, "language must be one of en, ru"));
    let ben = api.add_contact(&contact("Ben", CONTACTS[0].1, Some("ru-RU"))).await.unwrap();
    assert_eq!(ben.language.as_deref(), Some("ru"));
    api.add_contact(&contact("Cleo", CONTACTS[1].1, None)).await.unwrap();
    let to = |m: &Value, phone: &str| m["to"] == phone;
    let added = eventually(Duration::from_secs(10), "contact-added texts", || async {
        let m = fake.messages().await;
        (m.len() == 2).then_some(m)
    })
    .await;
    let ben_added = added.iter().find(|m| to(m, CONTACTS[0].1)).unwrap()["body"].as_str().unwrap().to_owned();
    assert!(ben_added.starts_with("Ana указывает вас экстренным контактом"), "{ben_added}");

    let (_phone, alert, _) = sos(&server, &token, "sos-ru").await;
    let texts = eventually(Duration::from_secs(10), "alert texts", || async {
        let m = fake.messages().await;
        (m.len() == 4).then_some(m)
    })
    .await;
    let body = |phone: &str| {
        texts.iter().filter(|m| to(m, phone)).map(|m| m["body"].as_str().unwrap().to_owned()).last().unwrap()
    };
    assert!(
        body(CONTACTS[0].1).starts_with("SOS: Ana просит помощи. Смотреть онлайн: "),
        "{}",
        body(CONTACTS[0].1)
    );
    assert!(body(CONTACTS[1].1).starts_with("Ana needs help. Watch live: "), "{}", body(CONTACTS[1].1));

    let mut console = connect(&server.ws(&format!("/v1/responder?token={rita}")), None, None).await.unwrap();
    let _overview = next(&mut console).await;
    send_json(&mut console, &alertme_protocol::ResponderCmd::Resolve { alert_id: alert.clone() }).await;
    let clear = eventually(Duration::from_secs(10), "all-clear texts", || async {
        let m = fake.messages().await;
        (m.len() == 6).then_some(m)
    })
    .await;
    let last = |phone: &str| {
        clear.iter().filter(|m| to(m, phone)).map(|m| m["body"].as_str().unwrap().to_owned()).last().unwrap()
    };
    assert_eq!(last(CONTACTS[0].1), "Отбой: SOS (Ana) закрыт, ответственный: Rita.");
    assert_eq!(last(CONTACTS[1].1), "All clear: Rita (responder) resolved Ana's SOS.");
    assert!(clear.iter().all(|m| !m["body"].as_str().unwrap().contains("false alarm")));
}
both!(texts_in_languages, texts_in_each_contacts_language);
