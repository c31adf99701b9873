//! Twilio's webhooks (delivery status, inbound STOP/START) and the console provider's demo list.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::storage::entity::{contacts, sms_outbox};
use crate::error::{Error, Result};
use crate::sms::outbox::{self, kind, normalize_status, rank, status};
use crate::sms::SmsClient;
use crate::domain::AppState;

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
    let Some(row) =
        sms_outbox::Entity::find().filter(sms_outbox::Column::ProviderSid.eq(sid)).one(&state.db).await?
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    if rank(new) <= rank(&row.status) {
        return Ok(StatusCode::NO_CONTENT);
    }
    // Conditional on the status we read, so two racing callbacks cannot move it backwards.
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, new.into())
        .col_expr(sms_outbox::Column::ErrorCode, param(&params, "ErrorCode").map(str::to_owned).into())
        .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
        .filter(sms_outbox::Column::Id.eq(row.id))
        .filter(sms_outbox::Column::Status.eq(row.status.clone()))
        .exec(&state.db)
        .await?;
    if let Some(alert) = &row.alert_id {
        outbox::refresh(&state.db, &state.hub, alert).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Replies to our number: STOP and friends opt a contact out, START opts back in.
async fn inbound(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let params = verified(&state, "/v1/sms/inbound", &headers, &body)?;
    let from = param(&params, "From").unwrap_or_default().to_owned();
    let word = param(&params, "Body").unwrap_or_default().trim().to_ascii_uppercase();
    let now = crate::now_ms();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => {
            contacts::Entity::update_many()
                .col_expr(contacts::Column::OptedOutAt, now.into())
                .filter(contacts::Column::Phone.eq(from.clone()))
                .filter(contacts::Column::OptedOutAt.is_null())
                .exec(&state.db)
                .await?;
            sms_outbox::Entity::update_many()
                .col_expr(sms_outbox::Column::Status, status::OPTED_OUT.into())
                .col_expr(sms_outbox::Column::UpdatedAt, now.into())
                .filter(sms_outbox::Column::ToPhone.eq(from))
                .filter(sms_outbox::Column::Status.eq(status::PENDING))
                .filter(sms_outbox::Column::Kind.ne(kind::CODE))
                .exec(&state.db)
                .await?;
            tracing::info!("a contact opted out");
        }
        "START" | "UNSTOP" | "YES" => {
            contacts::Entity::update_many()
                .col_expr(contacts::Column::OptedOutAt, Option::<i64>::None.into())
                .filter(contacts::Column::Phone.eq(from))
                .exec(&state.db)
                .await?;
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
