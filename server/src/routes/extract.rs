//! Request extractors shared by the REST routes: the calling device, and alert access checks.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sea_orm::EntityTrait;

use super::sockets;
use crate::auth::{self, Device};
use crate::db::entity::alerts;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The device making the request (`Authorization: Bearer amd_…`).
pub struct DeviceAuth(pub Device);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = sockets::token(&parts.headers, &HashMap::new())?;
        Ok(Self(auth::device(&state.db, &token).await?))
    }
}

/// Lets through the alert owner's devices, any responder, and holders of a watch token of this
/// alert; returns the alert.
pub async fn authorize_alert(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    alert_id: &str,
) -> Result<alerts::Model> {
    let token = sockets::token(headers, query)?;
    let alert = alerts::Entity::find_by_id(alert_id.to_owned()).one(&state.db).await?;
    let allowed = if token.starts_with(auth::WATCH_PREFIX) {
        auth::watch(&state.db, &token).await? == alert_id
    } else if token.starts_with(auth::RESPONDER_PREFIX) {
        auth::responder(&state.db, &token).await.is_ok()
    } else {
        let d = auth::device(&state.db, &token).await?;
        alert.as_ref().is_some_and(|a| a.user_id == d.user_id)
    };
    match (allowed, alert) {
        (true, Some(a)) => Ok(a),
        (true, None) => Err(Error::NotFound),
        (false, _) => Err(Error::Forbidden),
    }
}
