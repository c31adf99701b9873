//! What every socket route shares: credentials, the Origin check, buffer limits, close frames.

use std::collections::HashMap;

use alertme_protocol::MAX_MESSAGE_BYTES;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap};

use crate::error::{Error, Result};
use crate::state::AppState;

/// Close codes (documented in docs/protocol.md).
pub mod close {
    /// Normal: the alert ended.
    pub const NORMAL: u16 = 1000;
    /// Policy violation (rate of bad messages).
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// Too many malformed messages.
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
pub const PHONE_READ_BUFFER: usize = 4 * 1024;
/// Read buffer of watcher and console sockets: they only send pongs and short commands, and
/// there can be thousands of them idle.
pub const VIEWER_READ_BUFFER: usize = 512;

/// Frames queued for one viewer are written with one system call up to this many bytes: a
/// watcher behind by a few events gets them in one `send`, not one each (a flush still follows
/// every batch, so nothing waits for the buffer to fill).
pub const VIEWER_WRITE_BATCH: usize = 16 * 1024;

/// tungstenite's default read buffer is 128 KiB per socket, which costs ~144 KB per idle
/// connection (measured); ours is sized per kind of peer. Writes are bounded so a stuck peer
/// cannot make us buffer without limit: sends beyond it fail and the socket is closed.
/// `write_batch` is how many bytes of frames may gather before they are written (0: every
/// frame at once).
pub fn configure(ws: WebSocketUpgrade, read_buffer: usize, write_batch: usize) -> WebSocketUpgrade {
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

/// Sends a close frame and ends the socket.
pub async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), socket.send(Message::Close(Some(frame))))
        .await;
}

/// Close code to use for a receive error.
pub fn code_for(e: &axum::Error) -> u16 {
    let s = e.to_string();
    if s.contains("Space limit exceeded") || s.contains("too long") || s.contains("too big") {
        close::TOO_BIG
    } else {
        close::BAD_MESSAGES
    }
}
