//! Twilio's webhooks (delivery status, inbound STOP/START) and the console provider's demo list.

use crate::error::{Error, Result};
use crate::sms::outbox::normalize_status;
use crate::sms::SmsClient;
use crate::web::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sms/status", post(status_callback))
        .route("/v1/sms/inbound", post(inbound))
        .route("/v1/dev/sms", get(console_texts))
}

/// Parses a form body and checks Twilio's signature over the URL we gave Twilio.
fn verified(state: &AppState, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>> {
    let twilio = state.sms.twilio().ok_or(Error::NotFound)?;
    let params: Vec<(String, String)> = form_urlencoded(body);
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let url = format!("{}{path}", state.settings.public_url);
    if sig.is_empty() || !twilio.verify(&url, &params, sig) {
        tracing::warn!(path, "webhook with a missing or wrong signature refused");
        return Err(Error::Forbidden);
    }
    Ok(params)
}

fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Delivery reports. Statuses only move forward, whatever order the callbacks arrive in.
async fn status_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let params = verified(&state, "/v1/sms/status", &headers, &body)?;
    let (Some(sid), Some(reported)) = (param(&params, "MessageSid"), param(&params, "MessageStatus")) else {
        return Err(Error::BadRequest("MessageSid and MessageStatus are required".into()));
    };
    let Some(new) = normalize_status(reported) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    crate::domain::notify::delivery_report(&state, sid, new, param(&params, "ErrorCode")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replies to our number: STOP and friends opt a contact out, START opts back in.
async fn inbound(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let params = verified(&state, "/v1/sms/inbound", &headers, &body)?;
    let from = param(&params, "From").unwrap_or_default().to_owned();
    let word = param(&params, "Body").unwrap_or_default().trim().to_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => {
            crate::domain::contacts::opt_out(&state.db, &from).await?;
            tracing::info!("a contact opted out");
        }
        "START" | "UNSTOP" | "YES" => crate::domain::contacts::opt_in(&state.db, &from).await?,
        // Beyond STOP: the number leaves every contact list and is never added again.
        "FORGET" | "FORGETME" | "ЗАБЫТЬ" => {
            crate::domain::erasure::forget_number(&state, &from).await?;
        }
        _ => {}
    }
    Ok(([(header::CONTENT_TYPE, "text/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")
        .into_response())
}

/// Texts the console provider "sent": only with `--dev-sms` or `--demo` on a loopback bind.
async fn console_texts(State(state): State<AppState>) -> Result<Json<Vec<crate::sms::console::ConsoleText>>> {
    match &state.sms {
        SmsClient::Console(c) if c.reveals() => Ok(Json(c.texts())),
        _ => Err(Error::NotFound),
    }
}
