//! Clients that keep presenting wrong tokens or codes are refused for a while (429), per address;
//! the phone socket is never refused this way.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::Error;
use crate::sms::guard::ip_key;
use crate::web::forwarded::client_ip;

/// Refused credentials an address may present per minute (a person mistyping is far below it).
const PER_MINUTE: u32 = 30;
/// How long an address that went past it is refused.
const BLOCK: Duration = Duration::from_secs(60);

/// Who presented too many wrong credentials, and until when they are refused.
pub struct BadTokens {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: DashMap<IpAddr, Instant>,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted: Vec<ipnet::IpNet>,
}

impl BadTokens {
    /// Empty; `trusted` are the proxies whose `X-Forwarded-For` is believed.
    pub fn new(trusted: Vec<ipnet::IpNet>) -> Self {
        let n = NonZeroU32::new(PER_MINUTE).expect("non-zero");
        Self { limiter: RateLimiter::keyed(Quota::per_minute(n)), blocked: DashMap::new(), trusted }
    }

    /// Forgets addresses that went quiet, so the maps stay bounded by recent traffic.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        self.blocked.retain(|_, until| *until > now);
    }
}

/// Refuses blocked addresses; counts 401 answers against the address that caused them.
pub async fn refuse_guessers(
    State(bad): State<Arc<BadTokens>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    // An SOS always gets through: a page retrying with a revoked token must not lock out the
    // other phones behind the same address (a household, a carrier's NAT).
    if req.uri().path() == "/v1/phone" {
        return next.run(req).await;
    }
    let ip = ip_key(client_ip(peer.ip(), req.headers(), &bad.trusted));
    if bad.blocked.get(&ip).is_some_and(|until| *until > Instant::now()) {
        return Error::RateLimited.into_response();
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED && bad.limiter.check_key(&ip).is_err() {
        tracing::warn!("an address presented too many wrong credentials; refused for a minute");
        bad.blocked.insert(ip, Instant::now() + BLOCK);
    }
    res
}
