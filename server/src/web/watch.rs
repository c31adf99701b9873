//! `GET /v1/watch`: a contact's live view of one alert (snapshot, then every event).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use alertme_protocol::AlertStatus;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};

use crate::domain::accounts;
use crate::domain::alerts;
use crate::domain::evidence::custody;
use crate::error::{Error, Result};
use crate::live::fanout::{encode_as, Outlet};
use crate::live::{Call, Revoked, Session, Watch};
use crate::web::extract::{watch_link, ClientIp};
use crate::web::socket::{self, close};
use crate::web::state::AppState;
use crate::web::upgrade::{self, Conn, In, Upgrade};

/// Resyncs allowed before a watcher that keeps falling behind is closed with 4410.
const MAX_RESYNCS: u32 = 3;
/// Client messages per heartbeat interval beyond which a watcher is closed (they only need pongs).
const MAX_CLIENT_MSGS_PER_BEAT: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/watch", get(upgrade)).route("/v1/watch/alert", get(alert_of_link))
}

async fn upgrade(
    State(state): State<AppState>,
    pro: socket::Prologue,
    ClientIp(ip): ClientIp,
    up: Upgrade,
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
    Ok(up.accept(&state, span, move |conn| {
        let watching = custody::Watching::opened(&st.store, &session.alert_id, who, mark);
        // Only what the socket uses, not the whole state: it is kept for the socket's life.
        let held = Held { db: st.db.clone(), stop: st.stop.clone(), settings: st.settings.clone() };
        // The socket's task is this future alone: wrapped in another async block, the arguments
        // would be kept twice (measured: 3,104 bytes instead of 1,616).
        run(held, session, resume, viewer, revocations, conn, watching)
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
    mut conn: Conn,
    _watching: custody::Watching,
) {
    let s = state.settings.clone();
    let _open = crate::telemetry::OpenSocket::open("watch");
    let mut status = session.status();
    // From here on the publisher writes every event to this socket itself; this task writes only
    // what the socket could not take at once, and reads what the watcher sends.
    let watch = session.watch(resume.as_ref().map(|(e, v)| (e.as_str(), *v)), conn.wire());
    let out = &watch.outlet;
    // The rare awaits (closing, the revocation check's query) are boxed when they happen:
    // inline, their futures would size the state every idle watcher keeps (benchmarks.md).
    if session.is_dead() {
        // A cluster mirror whose feed ended just now: elsewhere, or anew, it is live.
        out.restart([]);
        return Box::pin(leave(watch, conn, close::RESTART, "reconnect and resume")).await;
    }
    if !drain(out, &s).await {
        return;
    }
    if *status.borrow_and_update() != AlertStatus::Active {
        return Box::pin(leave(watch, conn, close::NORMAL, "alert ended")).await;
    }
    // Pings often enough that a watcher that stops reading (its kernel buffer filling with our
    // frames) is found within `watcher_stall`: a ping at most a third of it after the stall
    // began, then two thirds of it without an answer.
    let ping_every = s.heartbeat.min(s.watcher_stall / 3).max(std::time::Duration::from_millis(20));
    // A sleep kept in the task's own state (an interval would allocate its timer apart).
    let heartbeat = tokio::time::sleep(ping_every);
    tokio::pin!(heartbeat);
    let mut last_recv = Instant::now();
    let mut unanswered: Option<Instant> = None;
    // Created once: a new wait per wake-up would register and drop a waiter every time.
    let stop = state.stop.clone();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut resyncs = 0;
    let mut msgs_this_beat = 0;
    let end = loop {
        tokio::select! {
            biased;
            // The publisher wakes this task only when the socket could not take a frame, the
            // watcher fell behind, or its mirror calls.
            () = out.woken() => {
                let due = out.due();
                if due.broken {
                    break None;
                }
                if due.call == Some(Call::Reconnect) || session.is_dead() {
                    break Some((close::RESTART, "this server lost the alert's live feed; reconnect and resume"));
                }
                if due.lagged {
                    resyncs += 1;
                    tracing::debug!(resyncs, "watcher lagged; resyncing");
                    if resyncs > MAX_RESYNCS {
                        break Some((close::TOO_SLOW, "cannot keep up; reconnect"));
                    }
                }
                if due.lagged || due.call == Some(Call::Resync) {
                    watch.resync();
                }
                if !drain(out, &s).await {
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
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
                    // Everything published up to the end (the final status included) is written
                    // or queued, unless the watcher was behind: then a snapshot says how it ended.
                    let due = out.due();
                    if due.lagged || due.call.is_some() {
                        watch.resync();
                    }
                    if !drain(out, &s).await {
                        return;
                    }
                    break Some((close::NORMAL, "alert ended"));
                }
            }
            r = conn.readable() => {
                if r.is_err() {
                    break None;
                }
                // Allocated only when frames came, and not kept (an idle watcher keeps no buffer).
                let mut heard = Vec::new();
                let open = match conn.read(&mut heard) {
                    Ok(open) => open,
                    Err(upgrade::Refused(code, why)) => break Some((code, why)),
                };
                let mut closing = None;
                for m in heard {
                    match m {
                        In::Close(code) => closing = Some(code),
                        In::Ping(p) => out.push(encode_as(OpCode::Control(Control::Pong), &p)),
                        In::Pong | In::Message => {}
                    }
                    last_recv = Instant::now();
                    unanswered = None;
                    msgs_this_beat += 1;
                }
                if let Some(code) = closing {
                    // The peer closed: answer with its code and end (no wait for another close).
                    return Box::pin(conn.answer_close(&watch.into_outlet(), upgrade::echo(code))).await;
                }
                if msgs_this_beat > MAX_CLIENT_MSGS_PER_BEAT {
                    break Some((close::POLICY, "too many messages"));
                }
                if !open {
                    break None;
                }
                if !drain(out, &s).await {
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
                }
            }
            () = &mut heartbeat => {
                heartbeat.as_mut().reset(tokio::time::Instant::now() + ping_every);
                msgs_this_beat = 0;
                if unanswered.is_some_and(|t| t.elapsed() >= s.watcher_stall * 2 / 3)
                    || last_recv.elapsed() > s.heartbeat * 3
                {
                    // Not reading: cut it (it can resume) before the kernel queues more for it.
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
                }
                out.push(encode_as(OpCode::Control(Control::Ping), &[]));
                if !drain(out, &s).await {
                    break Some((close::TOO_SLOW, "not reading; reconnect"));
                }
                unanswered.get_or_insert_with(Instant::now);
            }
        }
    };
    if let Some((code, why)) = end {
        Box::pin(leave(watch, conn, code, why)).await;
    }
}

/// Stops publishing to the watcher (it no longer counts as one), then closes its socket.
async fn leave(watch: Watch, conn: Conn, code: u16, why: &str) {
    conn.close(&watch.into_outlet(), code, why).await;
}

/// Writes what waits for the watcher within the send timeout; false when it is gone or too slow.
async fn drain(out: &Outlet, s: &crate::domain::Settings) -> bool {
    match tokio::time::timeout(s.send_timeout, out.drain()).await {
        Ok(Ok(n)) => {
            crate::telemetry::frames_relayed().increment(n);
            true
        }
        _ => false,
    }
}
