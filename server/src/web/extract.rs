//! Request extractors shared by the REST routes: the calling device, and alert access checks.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::domain::accounts::WatchLink;
use crate::domain::accounts::{self, Device};
use crate::domain::alerts::{self, Alert};
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
        Ok(Self(client_ip(peer, &parts.headers, &state.settings.trusted_proxies)))
    }
}

/// See [`ClientIp`].
pub fn client_ip(peer: std::net::IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> std::net::IpAddr {
    // A listener on [::] sees IPv4 peers as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical()))
        .collect::<Vec<_>>();
    for hop in forwarded.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return ip,
            // An unreadable hop: stop trusting the chain there.
            None => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.7".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
        let stranger: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger, "untrusted peers cannot claim an address");
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
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
/// alert; returns the alert.
pub async fn authorize_alert(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    alert_id: &str,
) -> Result<Alert> {
    let token = socket::token(headers, query)?;
    if token.starts_with(accounts::WATCH_PREFIX) {
        let (_, alert) = watch_link(state, &token).await?;
        return if alert.id == alert_id { Ok(alert) } else { Err(Error::Forbidden) };
    }
    let alert = alerts::find(&state.db, alert_id).await?;
    let allowed = if token.starts_with(accounts::RESPONDER_PREFIX) {
        accounts::responder(&state.db, &token).await.is_ok()
    } else {
        let d = accounts::device(&state.db, &token).await?;
        alert.as_ref().is_some_and(|a| a.user_id == d.user_id)
    };
    match (allowed, alert) {
        (true, Some(a)) => Ok(a),
        (true, None) => Err(Error::NotFound),
        (false, _) => Err(Error::Forbidden),
    }
}
