//! `GET /v1/alerts/{id}/evidence` (the signed bundle) and `GET /v1/evidence/key` (to check it with).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::domain::evidence::{bundle, custody, retention};
use crate::error::Result;
use crate::web::error::AppJson;
use crate::web::extract::{authorize_owner_or_responder, ClientIp};
use crate::web::socket;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts/{id}/evidence", get(export))
        .route("/v1/alerts/{id}/hold", put(hold).delete(lift))
        .route("/v1/evidence/key", get(key))
}

/// Body of `PUT /v1/alerts/{id}/hold`.
#[derive(serde::Deserialize)]
struct HoldBody {
    reason: String,
}

/// A responder puts an alert on legal hold: retention and erasure leave it alone.
async fn hold(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashMap<String, String>>,
    AppJson(b): AppJson<HoldBody>,
) -> Result<StatusCode> {
    let who = responder(&state, &headers, &query).await?;
    let mark = custody::addr_hash(&state.secret, ip);
    retention::hold(&state, &id, &who, &b.reason, Some(mark)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A responder lifts the hold.
async fn lift(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let who = responder(&state, &headers, &query).await?;
    let mark = custody::addr_hash(&state.secret, ip);
    retention::lift(&state, &id, &who, Some(mark)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn responder(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<custody::Who> {
    let token = socket::token(headers, query)?;
    if !token.starts_with(crate::domain::accounts::RESPONDER_PREFIX) {
        return Err(crate::error::Error::Forbidden);
    }
    let r = crate::domain::accounts::responder(&state.db, &token).await?;
    Ok(custody::Who::Responder { id: r.id, name: r.name })
}

/// The public key evidence is signed with: what `alertme evidence verify --key` takes.
async fn key(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"algorithm": "Ed25519", "public_key": state.seal_key.public()}))
}

/// The alert's evidence bundle, for the person's own devices and responders.
async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let token = socket::token(&headers, &query)?;
    let (_, who) = authorize_owner_or_responder(&state, &token, &id).await?;
    let mark = custody::addr_hash(&state.secret, ip);
    let b = bundle::export_now(&state, &id, &who, Some(mark)).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", b.file_name))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        b.bytes,
    )
        .into_response())
}
