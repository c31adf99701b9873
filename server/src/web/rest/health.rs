//! `GET /healthz`: the process is up and the database answers; `GET /metrics`: Prometheus.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{Error, Result};
use crate::telemetry;
use crate::web::extract::ClientIp;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health)).route("/metrics", get(metrics))
}

/// Load balancers ask this: a node whose database or (in a cluster) NATS connection is down
/// answers 503 and gets no new sockets.
async fn health(State(state): State<AppState>) -> Result<Json<alertme_protocol::Health>> {
    if state.db.ping().await.is_err() {
        return Err(Error::Unavailable("the database does not answer".into()));
    }
    if state.cluster.as_ref().is_some_and(|c| !c.is_connected()) {
        return Err(Error::Unavailable("not connected to NATS".into()));
    }
    Ok(Json(alertme_protocol::Health {
        status: "ok".into(),
        live_alerts: state.hub.sessions().len(),
        node: state.settings.node_id.clone(),
        cluster: state.cluster.is_some(),
    }))
}

/// Prometheus text format, for a scraper with `ALERTME_METRICS_TOKEN` or on this machine.
async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = match (&state.settings.metrics_token, bearer) {
        // Compared as hashes: equal time whatever the common prefix.
        (Some(want), Some(got)) => {
            crate::domain::accounts::hash_token(want) == crate::domain::accounts::hash_token(got.trim())
        }
        (Some(_), None) => false,
        (None, _) => ip.is_loopback(),
    };
    if !allowed {
        return Err(Error::Forbidden);
    }
    let Some(handle) = &state.metrics else { return Err(Error::NotFound) };
    metrics::gauge!(telemetry::LIVE_ALERTS).set(state.hub.sessions().len() as f64);
    let by_status = crate::domain::notify::outbox_states(&state.db).await?;
    for (status, n) in by_status {
        // Statuses are a fixed set (sms::outbox::status); anything else is not a label.
        if crate::sms::outbox::rank(&status) > 0 || status == crate::sms::outbox::status::PENDING {
            metrics::gauge!(telemetry::OUTBOX, "status" => status).set(n as f64);
        }
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
        .into_response())
}
