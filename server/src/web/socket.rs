//! What every socket route shares: credentials, the Origin check, buffer limits, close frames.

use std::collections::HashMap;

use alertme_protocol::MAX_MESSAGE_BYTES;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use tokio::sync::broadcast;

use crate::live::Revoked;

use crate::error::{Error, Result};
use crate::web::state::AppState;

/// Close codes (documented in docs/protocol.md).
pub mod close {
    /// Normal: the alert ended.
    pub const NORMAL: u16 = 1000;
    /// Policy violation (rate of bad messages).
    pub const POLICY: u16 = 1008;
    /// WebSocket protocol error (RFC 6455).
    pub const PROTOCOL: u16 = 1002;
    /// A text frame that is not UTF-8 (RFC 6455).
    pub const INVALID_DATA: u16 = 1007;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// The server is stopping (restart, deploy): reconnect at once, to it or another node.
    pub const RESTART: u16 = 1012;
    /// Too many refused messages.
    pub const BAD_MESSAGES: u16 = 4400;
    /// The device token was revoked while connected.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Peer silent for three heartbeats.
    pub const TIMEOUT: u16 = 4408;
    /// A newer phone connection took over this alert.
    pub const SUPERSEDED: u16 = 4409;
    /// Watcher could not keep up even after resyncs.
    pub const TOO_SLOW: u16 = 4410;
    /// Storage failed: reconnect and resend unacknowledged data.
    pub const STORAGE: u16 = 4503;
}

/// Read buffer of phone sockets: they send audio chunks of a few KiB.
const PHONE_READ_BUFFER: usize = 4 * 1024;
/// Read buffer of console sockets: they only send pongs and short commands, and
/// there can be thousands of them idle.
const VIEWER_READ_BUFFER: usize = 512;

/// Frames queued for one viewer are written with one system call up to this many bytes: a
/// console behind by a few updates gets them in one `send`, not one each (a flush still follows
/// every batch, so nothing waits for the buffer to fill).
const VIEWER_WRITE_BATCH: usize = 16 * 1024;

/// The start every socket shares: the Origin checked, the revocation feed subscribed to
/// *before* any credential is checked (so no revocation slips in between), the token taken
/// from the header or the query.
pub struct Prologue {
    /// The bearer token.
    pub token: String,
    /// The query parameters (`alert`, `epoch`, `ev`, …).
    pub query: HashMap<String, String>,
    /// Revocations from now on.
    pub revocations: broadcast::Receiver<Revoked>,
}

impl FromRequestParts<AppState> for Prologue {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        check_origin(state, &parts.headers)?;
        let revocations = state.hub.revocations();
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        let token = token(&parts.headers, &query)?;
        Ok(Self { token, query, revocations })
    }
}

/// Which peer a socket serves: its buffers differ.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A phone streaming audio.
    Phone,
    /// A responder's console (watchers have sockets of their own: `upgrade.rs`).
    Viewer,
}

/// Upgrades to a socket whose task runs under `span` (its log lines name it) and is tracked,
/// so that a stopping server waits for it to close.
pub fn accept<F>(
    state: &AppState,
    ws: WebSocketUpgrade,
    peer: Peer,
    span: tracing::Span,
    run: impl FnOnce(WebSocket) -> F + Send + 'static,
) -> Response
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tracker = state.sockets.clone();
    let (read, batch) = match peer {
        Peer::Phone => (PHONE_READ_BUFFER, 0),
        Peer::Viewer => (VIEWER_READ_BUFFER, VIEWER_WRITE_BATCH),
    };
    configure(ws, read, batch)
        .on_upgrade(move |socket| tracker.track_future(tracing::Instrument::instrument(run(socket), span)))
}

/// tungstenite's default read buffer is 128 KiB per socket, which costs ~144 KB per idle
/// connection (measured); ours is sized per kind of peer. Writes are bounded so a stuck peer
/// cannot make us buffer without limit: sends beyond it fail and the socket is closed.
/// `write_batch` is how many bytes of frames may gather before they are written (0: every
/// frame at once).
fn configure(ws: WebSocketUpgrade, read_buffer: usize, write_batch: usize) -> WebSocketUpgrade {
    ws.read_buffer_size(read_buffer)
        .write_buffer_size(write_batch)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
}

/// The bearer token from `Authorization: Bearer …` or, for browsers that cannot set headers on
/// a WebSocket, the `token` query parameter.
pub fn token(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Ok(t.trim().to_owned());
        }
    }
    query.get("token").filter(|t| !t.is_empty()).cloned().ok_or(Error::Unauthorized)
}

/// Browsers always send `Origin`; a page from another site must not drive our sockets with a
/// user's credentials. Native clients send no Origin and pass.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let origin = origin.trim_end_matches('/');
    let ok = origin == state.settings.public_url
        || state.settings.allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin);
    if ok {
        Ok(())
    } else {
        tracing::warn!("socket refused: origin not allowed");
        Err(Error::ForbiddenOrigin)
    }
}

/// Whether news from the revocation feed ends a socket that uses `mine`. After lagging behind
/// the feed, the credential is re-checked in the database (a missed revocation must not keep a
/// socket open).
pub async fn revoked(
    news: std::result::Result<crate::live::Revoked, tokio::sync::broadcast::error::RecvError>,
    mine: &crate::live::Revoked,
    db: &crate::domain::Db,
) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    match news {
        Ok(r) => &r == mine,
        Err(RecvError::Lagged(_)) => !crate::domain::links::still_valid(db, mine).await,
        // The hub keeps the sender for the life of the process.
        Err(RecvError::Closed) => false,
    }
}

/// Sends a close frame and ends the socket.
pub async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    metrics::counter!(crate::telemetry::SOCKET_CLOSES, "code" => code.to_string()).increment(1);
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), socket.send(Message::Close(Some(frame))))
        .await;
}

/// Refused messages tolerated on one socket before it is closed with 4400: one bad message
/// must never end an SOS stream, but a client stuck in a loop of garbage gets a clear close.
pub const MAX_BAD_MESSAGES: u32 = 20;

/// The close frame (RFC 6455 code and reason) for a frame the socket could not read, or `None`
/// when the connection itself failed (nothing can be sent on it).
pub fn close_for(e: axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match *e.into_inner().downcast::<WsError>().ok()? {
        WsError::Capacity(_) => Some((close::TOO_BIG, "message too big")),
        WsError::Utf8(_) => Some((close::INVALID_DATA, "text is not valid UTF-8")),
        WsError::Protocol(p) => {
            use tokio_tungstenite::tungstenite::error::ProtocolError;
            match p {
                ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing => None,
                _ => Some((close::PROTOCOL, "protocol error")),
            }
        }
        _ => None,
    }
}

/// A live frame as an axum message (the bytes are shared, not copied).
impl From<crate::live::Frame> for Message {
    fn from(f: crate::live::Frame) -> Self {
        match f {
            crate::live::Frame::Text(b) => {
                Message::Text(b.try_into().expect("text frames are built from serialized JSON"))
            }
            crate::live::Frame::Binary(b) => Message::Binary(b),
        }
    }
}
