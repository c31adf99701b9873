//! `GET /v1/responder`: the console's socket. Every active alert and its changes; claim, resolve.

use std::collections::HashMap;
use std::time::Instant;

use alertme_protocol::{AlertStatus, ResponderCmd, ResponderMsg};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use crate::domain::accounts::{self, Responder};
use crate::domain::alerts;
use crate::error::Result;
use crate::live::Revoked;
use crate::web::socket::{self, close};

use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/responder", get(upgrade)).route("/v1/alerts", get(list_alerts))
}

async fn upgrade(
    State(state): State<AppState>,
    pro: socket::Prologue,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let responder = accounts::responder(&state.db, &pro.token).await?;
    let span = tracing::info_span!("responder", responder = %responder.id);
    let (st, revocations) = (state.clone(), pro.revocations);
    Ok(socket::accept(&state, ws, socket::Peer::Viewer, span, move |socket| {
        run(st, responder, revocations, socket)
    }))
}

/// `GET /v1/alerts?status=active|ended&q=NAME&limit=N`: the console's alert history.
async fn list_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Vec<alertme_protocol::AlertInfo>>> {
    accounts::responder(&state.db, &socket::token(&headers, &query)?).await?;
    let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50u64).min(500);
    let ended = query.get("status").map(String::as_str) == Some("ended");
    let q = query.get("q").map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    Ok(axum::Json(alerts::history(&state, ended, q.as_deref(), limit).await?))
}

fn text(m: &ResponderMsg) -> Message {
    Message::Text(serde_json::to_string(m).expect("serializes").into())
}

/// Every active alert: this node's, and in a cluster those other nodes own, oldest first.
fn overview(state: &AppState, responder: &Responder) -> Message {
    let mut alerts: Vec<_> = state.hub.sessions().iter().map(|s| s.summary()).collect();
    if state.cluster.is_some() {
        alerts.extend(state.hub.remote_summaries(crate::domain::cluster_summary_fresh()));
        alerts.sort_by_key(|s| s.alert.started_ms);
    }
    text(&ResponderMsg::Overview { responder: responder.name.clone(), alerts })
}

async fn run(
    state: AppState,
    responder: Responder,
    mut revocations: tokio::sync::broadcast::Receiver<Revoked>,
    mut socket: WebSocket,
) {
    let _open = crate::telemetry::OpenSocket::open("responder");
    let me = Revoked::Responder(responder.id.clone());
    let stop = state.stop.clone();
    let s = state.settings.clone();
    let mut feed = state.hub.responder_feed();
    if !send(&mut socket, overview(&state, &responder), &s).await {
        return;
    }
    let mut heartbeat = tokio::time::interval(s.heartbeat);
    heartbeat.tick().await;
    let mut last_recv = Instant::now();
    let mut bad = 0u32;
    let nz = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("max(1)");
    let rate = governor::RateLimiter::direct(
        governor::Quota::per_second(nz(s.phone_msgs_per_sec)).allow_burst(nz(s.phone_msgs_per_sec * 4)),
    );
    let end = loop {
        tokio::select! {
            m = feed.recv() => {
                let msg = match m {
                    Ok(m) => m.into(),
                    Err(RecvError::Lagged(_)) => overview(&state, &responder),
                    Err(RecvError::Closed) => break Some((close::NORMAL, "server shutting down")),
                };
                if !send(&mut socket, msg, &s).await {
                    break None;
                }
            }
            () = stop.cancelled() => break Some((close::RESTART, "server restarting; reconnect")),
            r = revocations.recv() => {
                if socket::revoked(r, &me, &state.db).await {
                    break Some((close::UNAUTHORIZED, "responder access revoked"));
                }
            }
            m = socket.recv() => match m {
                None | Some(Ok(Message::Close(_))) => break None,
                Some(Err(e)) => break socket::close_for(e),
                Some(Ok(Message::Text(t))) => {
                    last_recv = Instant::now();
                    // The same pacing as a phone's: beyond it, commands wait, never get lost.
                    rate.until_ready().await;
                    let (reply, refused) = command(&state, &responder, t.as_str()).await;
                    if !send(&mut socket, text(&reply), &s).await {
                        break None;
                    }
                    bad += u32::from(refused);
                    if bad > socket::MAX_BAD_MESSAGES {
                        break Some((close::BAD_MESSAGES, "too many refused messages"));
                    }
                }
                Some(Ok(_)) => last_recv = Instant::now(),
            },
            _ = heartbeat.tick() => {
                if last_recv.elapsed() > s.heartbeat * 3 {
                    break None;
                }
                if !send(&mut socket, Message::Ping(Bytes::new()), &s).await {
                    break None;
                }
            }
        }
    };
    if let Some((code, why)) = end {
        socket::close_with(socket, code, why).await;
    }
}

/// Runs one console command; returns what to answer (`done` or `error`).
async fn command(state: &AppState, responder: &Responder, text: &str) -> (ResponderMsg, bool) {
    let err = |code: &str, detail: String| (ResponderMsg::Error { code: code.into(), detail }, true);
    let cmd = match serde_json::from_str::<ResponderCmd>(text) {
        Ok(c) => c,
        Err(e) => return err("bad_message", format!("not a valid command: {e}")),
    };
    let (name, alert) = match &cmd {
        ResponderCmd::Ping => ("ping", None),
        ResponderCmd::Claim { alert_id } => ("claim", Some(alert_id.clone())),
        ResponderCmd::Note { alert_id, .. } => ("note", Some(alert_id.clone())),
        ResponderCmd::Resolve { alert_id } => ("resolve", Some(alert_id.clone())),
    };
    let result = match cmd {
        ResponderCmd::Ping => Ok(()),
        ResponderCmd::Claim { alert_id } => alerts::claim(state, &alert_id, responder).await,
        ResponderCmd::Note { alert_id, text } => alerts::note(state, &alert_id, responder, &text).await,
        ResponderCmd::Resolve { alert_id } => {
            match alerts::end(state, &alert_id, AlertStatus::Resolved, &responder.id).await {
                // Resolved already (by anyone): done. Ended otherwise: say how.
                Ok(AlertStatus::Resolved) => Ok(()),
                Ok(other) => {
                    return err("already_ended", format!("the alert already ended ({})", other.as_str()))
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => (ResponderMsg::Done { command: name.into(), alert_id: alert }, false),
        Err(crate::error::Error::NotFound) => err("not_found", "no such active alert".into()),
        Err(crate::error::Error::BadRequest(d)) => err("bad_request", d),
        Err(e) => {
            tracing::error!(error = %e, "responder command failed");
            (ResponderMsg::Error { code: "internal".into(), detail: "command failed; retry".into() }, false)
        }
    }
}

async fn send(socket: &mut WebSocket, m: Message, s: &crate::domain::Settings) -> bool {
    matches!(tokio::time::timeout(s.send_timeout, socket.send(m)).await, Ok(Ok(())))
}
