//! `GET /v1/watch`: a contact's live view of one alert (snapshot, then every event).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use alertme_protocol::AlertStatus;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::domain::accounts;
use crate::domain::alerts;
use crate::domain::evidence::custody;
use crate::error::{Error, Result};
use crate::live::{Call, Revoked, Session};
use crate::web::extract::{watch_link, ClientIp};
use crate::web::socket::{self, close};
use crate::web::state::AppState;

/// Resyncs allowed before a watcher that keeps falling behind is closed with 4410.
const MAX_RESYNCS: u32 = 3;
/// Most queued events written together in one batch.
const MAX_BATCH: usize = 64;
/// Client messages per heartbeat interval beyond which a watcher is closed (they only need pongs).
const MAX_CLIENT_MSGS_PER_BEAT: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/watch", get(upgrade)).route("/v1/watch/alert", get(alert_of_link))
}

async fn upgrade(
    State(state): State<AppState>,
    pro: socket::Prologue,
    ClientIp(ip): ClientIp,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let query = &pro.query;
    let (row, viewer, who) = watched_alert(&state, &pro.token, query).await?;
    let session = alerts::watch_view(&state, &row).await?;
    let resume = match (query.get("epoch"), query.get("ev").map(|e| e.parse::<u64>())) {
        (Some(epoch), Some(Ok(ev))) => Some((epoch.clone(), ev)),
        (None, None) => None,
        _ => return Err(Error::BadRequest("resume needs both epoch and a numeric ev".into())),
    };
    let span = tracing::info_span!("watch", alert = %session.alert_id);
    let (st, revocations) = (state.clone(), pro.revocations);
    let mark = custody::addr_hash(&state.secret, ip);
    Ok(socket::accept(&state, ws, socket::Peer::Viewer, span, move |socket| {
        let watching = custody::Watching::opened(&st.db, &session.alert_id, who, mark);
        // Only what the socket uses, not the whole state: it is kept for the socket's life.
        let held = Held { db: st.db.clone(), stop: st.stop.clone(), settings: st.settings.clone() };
        async move {
            let _watching = watching;
            run(held, session, resume, viewer, revocations, socket).await
        }
    }))
}

/// The alert a watch request may see: a watch token's own alert (while the link is neither
/// revoked nor expired), or with a responder token the alert named by `alert=ID`. Opening a
/// contact's link is recorded as "opened". Also returns the credential, which the socket
/// watches for revocation, and who it is (for the custody log).
async fn watched_alert(
    state: &AppState,
    raw: &str,
    query: &HashMap<String, String>,
) -> Result<(alerts::Alert, Revoked, custody::Who)> {
    if raw.starts_with(accounts::RESPONDER_PREFIX) {
        let responder = accounts::responder(&state.db, raw).await?;
        let alert_id = query
            .get("alert")
            .cloned()
            .ok_or_else(|| Error::BadRequest("responders name the alert: alert=ID".into()))?;
        let row = alerts::find(&state.db, &alert_id).await?.ok_or(Error::NotFound)?;
        let who = custody::Who::Responder { id: responder.id.clone(), name: responder.name };
        return Ok((row, Revoked::Responder(responder.id), who));
    }
    let (token, row) = watch_link(state, raw).await?;
    if token.first_opened_at.is_none() {
        crate::domain::links::mark_opened(state, &token).await?;
    }
    Ok((row, Revoked::Watch(token.token_hash), custody::Who::Link(token.label)))
}

/// `GET /v1/watch/alert?token=…`: what a watch link shows before its socket opens, and a clear
/// answer (401) for a bad or revoked link, so the page can say so instead of going blank.
async fn alert_of_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<alertme_protocol::AlertInfo>> {
    let (row, _, _) = watched_alert(&state, &socket::token(&headers, &query)?, &query).await?;
    Ok(axum::Json(alerts::info_now(&state, &row).await?))
}

/// What a watcher's task keeps of the server's state (thousands of idle watchers each hold one).
struct Held {
    db: crate::domain::Db,
    stop: tokio_util::sync::CancellationToken,
    settings: Arc<crate::domain::Settings>,
}

async fn run(
    state: Held,
    session: Arc<Session>,
    resume: Option<(String, u64)>,
    viewer: Revoked,
    mut revocations: broadcast::Receiver<Revoked>,
    mut socket: WebSocket,
) {
    let s = state.settings.clone();
    let _open = crate::telemetry::OpenSocket::open("watch");
    let mut status = session.status();
    let mut sub = session.subscribe(resume.as_ref().map(|(e, v)| (e.as_str(), *v)));
    // The rare awaits (closing, the revocation check's query) are boxed when they happen:
    // inline, their futures would size the state every idle watcher keeps (benchmarks.md).
    if session.is_dead() {
        // A cluster mirror whose feed ended just now: elsewhere, or anew, it is live.
        return Box::pin(socket::close_with(socket, close::RESTART, "reconnect and resume")).await;
    }
    if !send_all(&mut socket, sub.frames.drain(..).map(Message::from), &s).await {
        return;
    }
    if *status.borrow_and_update() != AlertStatus::Active {
        return Box::pin(socket::close_with(socket, close::NORMAL, "alert ended")).await;
    }
    // Pings often enough that a watcher that stops reading (its kernel buffer filling with our
    // frames) is found within `watcher_stall`: a ping at most a third of it after the stall
    // began, then two thirds of it without an answer.
    let ping_every = s.heartbeat.min(s.watcher_stall / 3).max(std::time::Duration::from_millis(20));
    let mut heartbeat = tokio::time::interval(ping_every);
    heartbeat.tick().await;
    let mut last_recv = Instant::now();
    let mut unanswered: Option<Instant> = None;
    // Created once: a new wait per wake-up would register and drop a waiter every frame.
    let stop = state.stop.clone();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut resyncs = 0;
    let mut msgs_this_beat = 0;
    let end = loop {
        tokio::select! {
            // Events first: when one is ready (the common wake-up) the other branches are not
            // polled at all, which saves re-arming three wakers per frame. The others are
            // polled whenever the queue is empty, which a phone's bounded rate guarantees often.
            biased;
            e = sub.rx.recv() => {
                // What the session asks after the events: its own call (a cluster mirror that
                // started over or lost its feed), or a resync because this watcher lagged.
                let mut call = None;
                let mut lagged = None;
                match e {
                    Ok(e) if e.call.is_some() => call = e.call,
                    Ok(e) => {
                        // Whatever else is already queued goes out in the same write.
                        let mut batch = vec![Message::from(e.msg.clone())];
                        while batch.len() < MAX_BATCH {
                            match sub.rx.try_recv() {
                                Ok(e) if e.call.is_some() => {
                                    call = e.call;
                                    break;
                                }
                                Ok(e) => batch.push(e.msg.clone().into()),
                                Err(TryRecvError::Lagged(n)) => {
                                    lagged = Some(n);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if !send_all(&mut socket, batch, &s).await {
                            break Some((close::TOO_SLOW, "not reading; reconnect"));
                        }
                    }
                    Err(RecvError::Lagged(n)) => lagged = Some(n),
                    Err(RecvError::Closed) => break Some((close::NORMAL, "alert ended")),
                }
                if call == Some(Call::Reconnect) {
                    break Some((close::RESTART, "this server lost the alert's live feed; reconnect and resume"));
                }
                if let Some(n) = lagged {
                    resyncs += 1;
                    tracing::debug!(missed = n, resyncs, "watcher lagged; resyncing");
                    if resyncs > MAX_RESYNCS {
                        break Some((close::TOO_SLOW, "cannot keep up; reconnect"));
                    }
                }
                if session.is_dead() {
                    break Some((close::RESTART, "this server lost the alert's live feed; reconnect and resume"));
                }
                if lagged.is_some() || call == Some(Call::Resync) {
                    sub = session.resync();
                    if !send_all(&mut socket, sub.frames.drain(..).map(Message::from), &s).await {
                        break None;
                    }
                }
            }
            () = &mut stopped => break Some((close::RESTART, "server restarting; reconnect and resume")),
            r = revocations.recv() => {
                if Box::pin(socket::revoked(r, &viewer, &state.db)).await {
                    break Some((close::UNAUTHORIZED, "access to this alert was withdrawn"));
                }
            }
            Ok(()) = status.changed() => {
                if *status.borrow_and_update() != AlertStatus::Active {
                    // Deliver what was published up to the end (the final status included), then close.
                    while let Ok(e) = sub.rx.try_recv() {
                        if !send_all(&mut socket, [Message::from(e.msg.clone())], &s).await {
                            return;
                        }
                    }
                    break Some((close::NORMAL, "alert ended"));
                }
            }
            m = socket.recv() => match m {
                None | Some(Ok(Message::Close(_))) => break None,
                Some(Err(e)) => break socket::close_for(e),
                Some(Ok(_)) => {
                    last_recv = Instant::now();
                    unanswered = None;
                    msgs_this_beat += 1;
                    if msgs_this_beat > MAX_CLIENT_MSGS_PER_BEAT {
                        break Some((close::POLICY, "too many messages"));
                    }
                }
            },
            _ = heartbeat.tick() => {
                msgs_this_beat = 0;
                if unanswered.is_some_and(|t| t.elapsed() >= s.watcher_stall * 2 / 3)
                    || last_recv.elapsed() > s.heartbeat * 3
                {
                    // Not reading: cut it (it can resume) before the kernel queues more for it.
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
                }
                if !send_all(&mut socket, [Message::Ping(Bytes::new())], &s).await {
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
                }
                unanswered.get_or_insert_with(Instant::now);
            }
        }
    };
    if let Some((code, why)) = end {
        Box::pin(socket::close_with(socket, code, why)).await;
    }
}

/// Sends frames as one batch (written together, then flushed) within the send timeout; false
/// when the watcher is gone or too slow.
async fn send_all(
    socket: &mut WebSocket,
    frames: impl IntoIterator<Item = Message>,
    s: &crate::domain::Settings,
) -> bool {
    let write = async {
        let mut n = 0u64;
        for f in frames {
            socket.feed(f).await?;
            n += 1;
        }
        crate::telemetry::frames_relayed().increment(n);
        socket.flush().await
    };
    matches!(tokio::time::timeout(s.send_timeout, write).await, Ok(Ok(())))
}
