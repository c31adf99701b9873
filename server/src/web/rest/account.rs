//! Registration by SMS code and device management: `/v1/auth/*`, `/v1/devices`.

use alertme_protocol::{CodeRequest, DeviceInfo, StatusBody, VerifyRequest, VerifyResponse};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use crate::domain::registration;
use crate::error::Result;
use crate::web::error::AppJson;
use crate::web::extract::{ClientIp, DeviceAuth};
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/code", post(request_code))
        .route("/v1/auth/verify", post(verify))
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{id}", delete(revoke_device))
        .route("/v1/me", delete(erase_me))
}

/// Always the same answer for registered and unknown numbers: nothing leaks who uses AlertMe.
async fn request_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<CodeRequest>,
) -> Result<(StatusCode, Json<StatusBody>)> {
    registration::request_code(&state, ip, &req.phone, req.language.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(StatusBody { status: "code_sent".into() })))
}

async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<VerifyRequest>,
) -> Result<(StatusCode, Json<VerifyResponse>)> {
    Ok((StatusCode::CREATED, Json(registration::verify(&state, ip, req).await?)))
}

async fn list_devices(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
) -> Result<Json<Vec<DeviceInfo>>> {
    let rows = crate::domain::accounts::devices_of(&state.db, &me.user_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| DeviceInfo {
                current: d.id == me.id,
                id: d.id,
                label: d.label,
                created_ms: d.created_at,
                revoked_ms: d.revoked_at,
            })
            .collect(),
    ))
}

/// Body of `DELETE /v1/me`.
#[derive(serde::Deserialize)]
struct EraseBody {
    pin: String,
}

/// Erases the caller's account and all their data, confirmed with their PIN (alerts on legal
/// hold wait for the hold). 204 whatever was kept, so the answer betrays nothing.
async fn erase_me(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    AppJson(b): AppJson<EraseBody>,
) -> Result<StatusCode> {
    crate::domain::erasure::erase_account(&state, &me, &b.pin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the caller's devices; its live sockets close with 4401.
async fn revoke_device(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    crate::domain::accounts::revoke_device(&state.db, &me.user_id, &id).await?;
    state.hub.revoke_device(&id);
    Ok(StatusCode::NO_CONTENT)
}
