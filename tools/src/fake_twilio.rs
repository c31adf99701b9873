//! `alertme-fake-twilio`: a local HTTP server that behaves like Twilio's Messages API.
//!
//! It implements `POST`/`GET …/Accounts/{sid}/Messages.json` as documented (form fields, Basic
//! auth, 201 JSON, error JSON with Twilio's codes, the magic test numbers), and posts signed
//! status callbacks. A control API under `/_fake/` scripts failures (429, 5xx, accept-then-time-
//! out), lists what it received, and sends callbacks in any order, signed or tampered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertme_server::sms::twilio::signature;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Options of `alertme-tools fake-twilio`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    bind: SocketAddr,
    /// Account SID clients must use.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    account_sid: String,
    /// Auth token clients must use; also signs callbacks.
    #[arg(long, default_value = "fake-auth-token")]
    auth_token: String,
    /// Post `sent` then `delivered` callbacks by itself after each accepted message.
    #[arg(long)]
    auto_callbacks: bool,
    /// How long a scripted `timeout` holds the response (the client should give up first).
    #[arg(long, default_value_t = 30_000)]
    hold_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Message {
    sid: String,
    to: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: String,
    status: String,
    status_callback: Option<String>,
    received_ms: i64,
}

struct Fake {
    args: Args,
    messages: Mutex<Vec<Message>>,
    plan: Mutex<VecDeque<String>>,
    /// Every request to the Messages endpoint, with what the fake did: for tests to count.
    attempts: Mutex<Vec<Value>>,
    http: reqwest::Client,
}

type Shared = Arc<Fake>;

/// Serves the fake until the process ends.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let addr = listener.local_addr()?;
    let fake = Arc::new(Fake {
        args,
        messages: Mutex::new(Vec::new()),
        plan: Mutex::new(VecDeque::new()),
        attempts: Mutex::new(Vec::new()),
        http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
    });
    let app = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create).get(list))
        .route("/2010-04-01/Accounts/{sid}/Messages/{msid}", get(fetch))
        .route("/_fake/messages", get(messages))
        .route("/_fake/attempts", get(attempts))
        .route("/_fake/plan", post(plan))
        .route("/_fake/callback", post(callback))
        .route("/_fake/inbound", post(inbound))
        .with_state(fake);
    println!("fake twilio listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

fn error(status: u16, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    (StatusCode::from_u16(status).expect("valid status"), Json(body)).into_response()
}

fn authorized(fake: &Fake, sid: &str, headers: &HeaderMap) -> bool {
    let expected =
        format!("Basic {}", STANDARD.encode(format!("{}:{}", fake.args.account_sid, fake.args.auth_token)));
    sid == fake.args.account_sid
        && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn e164_like(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn create(
    State(fake): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let behaviour = fake.plan.lock().unwrap().pop_front().unwrap_or_else(|| "ok".into());
    let to = get("To").unwrap_or_default();
    fake.attempts.lock().unwrap().push(json!({ "to": to, "behaviour": behaviour, "at_ms": now_ms() }));
    if !authorized(&fake, &sid, &headers) {
        return error(401, 20003, "Authenticate");
    }
    match behaviour.as_str() {
        "429" => return error(429, 20429, "Too Many Requests"),
        "500" => return error(500, 20500, "Internal Server Error"),
        "503" => return error(503, 20503, "Service Unavailable"),
        "hang" => {
            tokio::time::sleep(Duration::from_millis(fake.args.hold_ms)).await;
            return error(503, 20503, "Service Unavailable");
        }
        _ => {}
    }
    let from = get("From");
    let mg = get("MessagingServiceSid");
    let Some(body) = get("Body").filter(|b| !b.is_empty()) else {
        return error(400, 21602, "Message body is required.");
    };
    if body.chars().count() > 1600 {
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    if from.is_none() && mg.is_none() {
        return error(
            400,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    match from.as_deref() {
        Some("+15005550001") => return error(400, 21212, "The 'From' number is not a valid phone number."),
        Some("+15005550007") => {
            return error(
                400,
                21606,
                "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
            )
        }
        Some("+15005550008") => {
            return error(
                400,
                21611,
                "This 'From' number has exceeded the maximum number of queued messages.",
            )
        }
        _ => {}
    }
    match to.as_str() {
        "+15005550001" => return error(400, 21211, "The 'To' number is not a valid phone number."),
        "+15005550002" => {
            return error(400, 21612, "The 'To' phone number is not currently reachable via SMS.")
        }
        "+15005550003" => {
            return error(400, 21408, "Permission to send an SMS has not been enabled for the region.")
        }
        "+15005550004" => return error(400, 21610, "Attempt to send to unsubscribed recipient"),
        "+15005550009" => return error(400, 21614, "'To' number is not a valid mobile number"),
        t if !e164_like(t) => return error(400, 21211, "The 'To' number is not a valid phone number."),
        _ => {}
    }
    let msg = Message {
        sid: format!("SM{}", uuid::Uuid::new_v4().simple()),
        to,
        from,
        messaging_service_sid: mg.clone(),
        body,
        status: if mg.is_some() { "accepted".into() } else { "queued".into() },
        status_callback: get("StatusCallback"),
        received_ms: now_ms(),
    };
    fake.messages.lock().unwrap().push(msg.clone());
    if fake.args.auto_callbacks {
        let (f, sid) = (fake.clone(), msg.sid.clone());
        tokio::spawn(async move {
            for s in ["sent", "delivered"] {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = send_callback(&f, &sid, s, false, false).await;
            }
        });
    }
    if behaviour == "timeout" {
        // Accepted and recorded, but the answer comes too late: the client cannot know.
        tokio::time::sleep(Duration::from_millis(fake.args.hold_ms)).await;
    }
    if behaviour == "accept_then_500" {
        return error(500, 20500, "Internal Server Error");
    }
    (StatusCode::CREATED, Json(resource(&fake, &msg))).into_response()
}

fn resource(fake: &Fake, m: &Message) -> Value {
    let date = rfc2822(m.received_ms);
    json!({
        "sid": m.sid,
        "account_sid": fake.args.account_sid,
        "to": m.to,
        "from": m.from,
        "messaging_service_sid": m.messaging_service_sid,
        "body": m.body,
        "status": m.status,
        "num_segments": "1",
        "num_media": "0",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "price": null,
        "price_unit": "USD",
        "error_code": null,
        "error_message": null,
        "date_created": date,
        "date_updated": date,
        "date_sent": null,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{}.json", fake.args.account_sid, m.sid),
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "To")]
    to: Option<String>,
    #[serde(rename = "From")]
    from: Option<String>,
}

async fn list(
    State(fake): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if !authorized(&fake, &sid, &headers) {
        return error(401, 20003, "Authenticate");
    }
    let msgs: Vec<Value> = fake
        .messages
        .lock()
        .unwrap()
        .iter()
        .rev()
        .filter(|m| {
            q.to.as_ref().is_none_or(|t| *t == m.to)
                && q.from.as_ref().is_none_or(|f| m.from.as_ref() == Some(f))
        })
        .map(|m| resource(&fake, m))
        .collect();
    Json(json!({ "messages": msgs, "page": 0, "page_size": 50, "first_page_uri": null, "next_page_uri": null })).into_response()
}

async fn fetch(
    State(fake): State<Shared>,
    Path((sid, msid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&fake, &sid, &headers) {
        return error(401, 20003, "Authenticate");
    }
    let msid = msid.trim_end_matches(".json");
    match fake.messages.lock().unwrap().iter().find(|m| m.sid == msid) {
        Some(m) => Json(resource(&fake, m)).into_response(),
        None => error(404, 20404, "The requested resource was not found"),
    }
}

async fn messages(State(fake): State<Shared>) -> Json<Vec<Message>> {
    Json(fake.messages.lock().unwrap().clone())
}

async fn attempts(State(fake): State<Shared>) -> Json<Vec<Value>> {
    Json(fake.attempts.lock().unwrap().clone())
}

#[derive(Deserialize)]
struct Plan {
    responses: Vec<String>,
}

/// Scripts the next answers: `ok`, `429`, `500`, `503`, `timeout` (accept, answer too late),
/// `accept_then_500`, `hang` (no answer, nothing accepted).
async fn plan(State(fake): State<Shared>, Json(p): Json<Plan>) -> StatusCode {
    fake.plan.lock().unwrap().extend(p.responses);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct CallbackReq {
    sid: String,
    statuses: Vec<String>,
    #[serde(default)]
    tamper: bool,
    #[serde(default)]
    unsigned: bool,
}

/// Posts status callbacks for a message in the given order; answers with the HTTP statuses the
/// server returned.
async fn callback(State(fake): State<Shared>, Json(r): Json<CallbackReq>) -> Response {
    let mut codes = Vec::new();
    for s in &r.statuses {
        match send_callback(&fake, &r.sid, s, r.tamper, r.unsigned).await {
            Ok(c) => codes.push(c),
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        }
    }
    Json(codes).into_response()
}

async fn send_callback(
    fake: &Fake,
    sid: &str,
    status: &str,
    tamper: bool,
    unsigned: bool,
) -> Result<u16, String> {
    let m = {
        let mut all = fake.messages.lock().unwrap();
        let m = all.iter_mut().find(|m| m.sid == sid).ok_or("no such message")?;
        m.status = status.to_owned();
        m.clone()
    };
    let url = m.status_callback.clone().ok_or("message has no StatusCallback")?;
    let mut params: Vec<(String, String)> = vec![
        ("AccountSid".into(), fake.args.account_sid.clone()),
        ("ApiVersion".into(), "2010-04-01".into()),
        ("From".into(), m.from.clone().unwrap_or_default()),
        ("MessageSid".into(), m.sid.clone()),
        ("MessageStatus".into(), status.into()),
        ("SmsSid".into(), m.sid.clone()),
        ("SmsStatus".into(), status.into()),
        ("To".into(), m.to.clone()),
    ];
    if status == "undelivered" || status == "failed" {
        params.push(("ErrorCode".into(), "30003".into()));
    }
    let sig = signature(&fake.args.auth_token, &url, &params);
    if tamper {
        params.iter_mut().find(|(k, _)| k == "MessageStatus").expect("present").1 = "delivered".into();
        if status == "delivered" {
            params.iter_mut().find(|(k, _)| k == "To").expect("present").1 = "+10000000000".into();
        }
    }
    let mut req = fake.http.post(&url).form(&params);
    if !unsigned {
        req = req.header("X-Twilio-Signature", sig);
    }
    req.send().await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct InboundReq {
    url: String,
    from: String,
    body: String,
}

/// Posts a signed inbound-message webhook (a reply such as STOP) to `url`.
async fn inbound(State(fake): State<Shared>, Json(r): Json<InboundReq>) -> Response {
    let params: Vec<(String, String)> = vec![
        ("AccountSid".into(), fake.args.account_sid.clone()),
        ("Body".into(), r.body),
        ("From".into(), r.from),
        ("MessageSid".into(), format!("SM{}", uuid::Uuid::new_v4().simple())),
        ("To".into(), "+15005550006".into()),
    ];
    let sig = signature(&fake.args.auth_token, &r.url, &params);
    match fake.http.post(&r.url).header("X-Twilio-Signature", sig).form(&params).send().await {
        Ok(res) => Json(res.status().as_u16()).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

fn now_ms() -> i64 {
    alertme_client::now_ms()
}

/// RFC 2822 date as Twilio writes it: `Tue, 26 Jul 2016 12:50:07 +0000`.
fn rfc2822(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        [(m - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} +0000", rem / 3600, rem % 3600 / 60, rem % 60)
}
