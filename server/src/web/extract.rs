//! Request extractors shared by the REST routes: the calling device, and alert access checks.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::domain::accounts::WatchLink;
use crate::domain::accounts::{self, Device};
use crate::domain::alerts::{self, Alert};
use crate::domain::evidence::custody::Who;
use crate::domain::links;
use crate::error::{Error, Result};
use crate::web::socket;
use crate::web::state::AppState;

/// The client's address: the socket's peer, or, when that peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not a trusted proxy (earlier entries can be forged by
/// the client itself).
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(Self(crate::web::forwarded::client_ip(peer, &parts.headers, &state.settings.trusted_proxies)))
    }
}

/// The device making the request (`Authorization: Bearer amd_…`).
pub struct DeviceAuth(pub Device);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = socket::token(&parts.headers, &HashMap::new())?;
        Ok(Self(accounts::device(&state.db, &token).await?))
    }
}

/// A watch link that still works (see [`links::open`]).
pub async fn watch_link(state: &AppState, token: &str) -> Result<(WatchLink, Alert)> {
    links::open(state, token).await
}

/// Lets through the alert owner's devices, any responder, and holders of a watch token of this
/// alert; returns the alert and who asked (for the custody log).
pub async fn authorize_alert(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    alert_id: &str,
) -> Result<(Alert, Who)> {
    let token = socket::token(headers, query)?;
    if token.starts_with(accounts::WATCH_PREFIX) {
        let (link, alert) = watch_link(state, &token).await?;
        return if alert.id == alert_id { Ok((alert, Who::Link(link.label))) } else { Err(Error::Forbidden) };
    }
    authorize_owner_or_responder(state, &token, alert_id).await
}

/// Lets through the alert owner's devices and any responder (not watch links): what may take
/// the evidence away.
pub async fn authorize_owner_or_responder(
    state: &AppState,
    token: &str,
    alert_id: &str,
) -> Result<(Alert, Who)> {
    let alert = alerts::find(&state.db, alert_id).await?;
    let who = if token.starts_with(accounts::RESPONDER_PREFIX) {
        accounts::responder(&state.db, token).await.ok().map(|r| Who::Responder { id: r.id, name: r.name })
    } else if token.starts_with(accounts::WATCH_PREFIX) {
        None
    } else {
        let d = accounts::device(&state.db, token).await?;
        alert.as_ref().filter(|a| a.user_id == d.user_id).map(|_| Who::Device(d.id))
    };
    match (who, alert) {
        (Some(w), Some(a)) => Ok((a, w)),
        (Some(_), None) => Err(Error::NotFound),
        (None, _) => Err(Error::Forbidden),
    }
}
