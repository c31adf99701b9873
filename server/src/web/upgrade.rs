//! A WebSocket handshake that keeps the TCP stream: the publisher writes a watcher's frames to it
//! directly (`live::fanout`), and the watcher's task reads the few frames a watcher sends.
//!
//! tungstenite's stream owns its socket and frames every message for every socket; a watcher's
//! socket here is shared instead, and reading is all its task does (RFC 6455 §5, with
//! tungstenite's frame header parser).

use std::io::{self, Cursor};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use crate::live::fanout::{encode_as, Outlet, Wire};
use crate::web::listen::Counted;
use crate::web::socket::close;
use crate::web::state::AppState;

/// Most bytes of one message a watcher may send: it has nothing to say but pongs.
pub const MAX_MESSAGE: usize = 4 * 1024;
/// Reads taken in one go before other work gets a turn (a flood of pings cannot hog the task).
const READS_PER_TURN: usize = 16;

/// A checked request to open a WebSocket (RFC 6455 §4.2.1).
pub struct Upgrade {
    on: OnUpgrade,
    accept: HeaderValue,
}

/// Why a request is not a WebSocket handshake we take.
#[derive(Debug, thiserror::Error)]
pub enum NotWebSocket {
    /// Another method than GET.
    #[error("a WebSocket handshake is a GET request")]
    Method,
    /// No `Connection: upgrade` and `Upgrade: websocket`.
    #[error("not a WebSocket handshake (Connection: upgrade, Upgrade: websocket)")]
    Headers,
    /// Another protocol version than 13.
    #[error("only WebSocket version 13 is spoken")]
    Version,
    /// No usable `Sec-WebSocket-Key`.
    #[error("Sec-WebSocket-Key is missing")]
    Key,
    /// The connection cannot be taken over (it is not HTTP/1.1 served by us).
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for NotWebSocket {
    fn into_response(self) -> Response {
        let status = match self {
            NotWebSocket::Method => StatusCode::METHOD_NOT_ALLOWED,
            NotWebSocket::Version | NotWebSocket::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            NotWebSocket::Headers | NotWebSocket::Key => StatusCode::BAD_REQUEST,
        };
        let mut r = (status, self.to_string()).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        r
    }
}

/// True when the comma-separated header `name` has `token` (case-insensitive).
fn has_token(parts: &Parts, name: header::HeaderName, token: &str) -> bool {
    parts
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotWebSocket;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, NotWebSocket> {
        if parts.method != Method::GET {
            return Err(NotWebSocket::Method);
        }
        if !has_token(parts, header::CONNECTION, "upgrade") || !has_token(parts, header::UPGRADE, "websocket")
        {
            return Err(NotWebSocket::Headers);
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            return Err(NotWebSocket::Version);
        }
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY).ok_or(NotWebSocket::Key)?;
        let accept =
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| NotWebSocket::Key)?;
        let on = parts.extensions.remove::<OnUpgrade>().ok_or(NotWebSocket::NotUpgradable)?;
        Ok(Self { on, accept })
    }
}

impl Upgrade {
    /// Answers 101 and runs `run` on the socket once the connection is handed over, under `span`
    /// and tracked (a stopping server waits for it).
    pub fn accept<F>(
        self,
        state: &AppState,
        span: tracing::Span,
        run: impl FnOnce(Conn) -> F + Send + 'static,
    ) -> Response
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (on, tracker) = (self.on, state.sockets.clone());
        let upgrade = async move {
            let upgraded = match on.await {
                Ok(u) => u,
                Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
            };
            let Ok(parts) = upgraded.downcast::<TokioIo<Counted>>() else {
                return tracing::error!("an upgraded connection that is not one of ours");
            };
            let conn = Conn::new(Arc::new(parts.io.into_inner()), &parts.read_buf);
            // The socket gets a task of its own: this one's state (the handshake's, and what
            // hyper read past it, a slice of its 8 KB buffer) ends here instead of being kept
            // for the socket's life.
            let socket = tracing::Instrument::instrument(run(conn), span);
            tokio::spawn(tracker.track_future(socket));
        };
        tokio::spawn(state.sockets.track_future(upgrade));
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        r
    }
}

/// What a peer sent, frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In {
    /// A ping: answer with a pong of the same bytes.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A text or binary frame, whole or a fragment (its content is not needed).
    Message,
    /// A close, with its code if it gave one.
    Close(Option<u16>),
}

/// A frame that breaks the protocol: the close code and reason to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u16, pub &'static str);

/// A fragmented message under way.
struct Partial {
    text: bool,
    len: usize,
    /// A text's bytes so far (its UTF-8 is checked whole); a binary's are not kept.
    bytes: Vec<u8>,
}

/// A watcher's socket after the handshake.
pub struct Conn {
    tcp: Arc<Counted>,
    parser: Parser,
    /// Bytes came with the handshake: there is something to read before the socket says so.
    ahead: bool,
}

/// The frames in a peer's bytes, as they arrive.
#[derive(Default)]
struct Parser {
    /// Bytes read that do not make a whole frame yet; empty (unallocated) on an idle socket.
    pending: Vec<u8>,
    partial: Option<Partial>,
}

impl Conn {
    fn new(tcp: Arc<Counted>, read_ahead: &[u8]) -> Self {
        let ahead = !read_ahead.is_empty();
        Self { tcp, parser: Parser { pending: read_ahead.to_vec(), partial: None }, ahead }
    }

    /// The socket as the publisher writes to it.
    pub fn wire(&self) -> Arc<dyn Wire> {
        self.tcp.clone()
    }

    /// Resolves when there is something to read (or the connection ended).
    pub async fn readable(&self) -> io::Result<()> {
        if self.ahead {
            return Ok(());
        }
        // The stream's one reader slot, not `readable()`'s list of waiters: the slot still holds
        // the waker of hyper's connection task, which keeps that finished task's memory (1.5
        // KB) allocated until the slot is taken over.
        std::future::poll_fn(|cx| self.tcp.tcp().poll_read_ready(cx)).await
    }

    /// Reads what has arrived and adds its whole frames to `out`; false once the peer is gone.
    pub fn read(&mut self, out: &mut Vec<In>) -> Result<bool, Refused> {
        // Frames that came with the handshake.
        self.ahead = false;
        self.parser.parse(out)?;
        for _ in 0..READS_PER_TURN {
            let mut chunk = [0u8; 1024];
            match self.tcp.tcp().try_read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.parser.pending.extend_from_slice(&chunk[..n]);
                    self.parser.parse(out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Sends a close frame after what is queued, then waits briefly for the peer's close frame
    /// (closing the connection with the peer's frames unread would reset it, and the peer could
    /// lose ours); then the connection is closed, as the server does first (RFC 6455 §7.1.1).
    pub async fn close(mut self, outlet: &Outlet, code: u16, reason: &str) {
        metrics::counter!(crate::telemetry::SOCKET_CLOSES, "code" => code.to_string()).increment(1);
        if !send_close(outlet, code, reason).await {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_PATIENCE, async {
            // After a frame we refused, the rest of the peer's bytes are not frames to us.
            let mut discard = false;
            loop {
                if self.readable().await.is_err() {
                    return;
                }
                if discard {
                    let mut chunk = [0u8; 4096];
                    match self.tcp.tcp().try_read(&mut chunk) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                    continue;
                }
                // What the peer sends before its close frame does not matter.
                let mut heard = Vec::new();
                self.parser.partial = None;
                match self.read(&mut heard) {
                    Ok(true) if !heard.iter().any(|m| matches!(m, In::Close(_))) => {}
                    Ok(_) => return,
                    Err(_) => {
                        self.parser = Parser::default();
                        discard = true;
                    }
                }
            }
        })
        .await;
    }

    /// Answers the peer's close frame with `code`, then closes the connection.
    pub async fn answer_close(self, outlet: &Outlet, code: u16) {
        send_close(outlet, code, "").await;
    }
}

impl Parser {
    fn parse(&mut self, out: &mut Vec<In>) -> Result<(), Refused> {
        loop {
            let mut cursor = Cursor::new(&self.pending[..]);
            let (h, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(_) => return Err(Refused(close::PROTOCOL, "protocol error")),
            };
            let Some(mask) = h.mask else { return Err(Refused(close::PROTOCOL, "client frames are masked")) };
            if h.rsv1 || h.rsv2 || h.rsv3 {
                return Err(Refused(close::PROTOCOL, "no extension was agreed"));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE {
                return Err(Refused(close::TOO_BIG, "message too big"));
            }
            let start = cursor.position() as usize;
            if self.pending.len() < start + len {
                break;
            }
            let mut payload = self.pending[start..start + len].to_vec();
            self.pending.drain(..start + len);
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            self.frame(h, payload, out)?;
        }
        if self.pending.is_empty() {
            // An idle socket keeps no buffer.
            self.pending = Vec::new();
        }
        Ok(())
    }

    fn frame(&mut self, h: FrameHeader, payload: Vec<u8>, out: &mut Vec<In>) -> Result<(), Refused> {
        let bad_text = |b: &[u8]| std::str::from_utf8(b).is_err();
        match h.opcode {
            OpCode::Control(c) => {
                if !h.is_final || payload.len() > 125 {
                    return Err(Refused(close::PROTOCOL, "bad control frame"));
                }
                match c {
                    Control::Ping => out.push(In::Ping(Bytes::from(payload))),
                    Control::Pong => out.push(In::Pong),
                    Control::Close => out.push(In::Close(match payload.len() {
                        0 => None,
                        1 => return Err(Refused(close::PROTOCOL, "bad close frame")),
                        _ if bad_text(&payload[2..]) => {
                            return Err(Refused(close::INVALID_DATA, "text is not valid UTF-8"))
                        }
                        _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                    })),
                    Control::Reserved(_) => return Err(Refused(close::PROTOCOL, "unknown opcode")),
                }
            }
            OpCode::Data(Data::Continue) => {
                let Some(p) = self.partial.as_mut() else {
                    return Err(Refused(close::PROTOCOL, "a continuation without a message"));
                };
                p.len += payload.len();
                if p.len > MAX_MESSAGE {
                    return Err(Refused(close::TOO_BIG, "message too big"));
                }
                if p.text {
                    p.bytes.extend_from_slice(&payload);
                }
                if h.is_final {
                    let p = self.partial.take().expect("checked above");
                    if p.text && bad_text(&p.bytes) {
                        return Err(Refused(close::INVALID_DATA, "text is not valid UTF-8"));
                    }
                }
                out.push(In::Message);
            }
            OpCode::Data(d @ (Data::Text | Data::Binary)) => {
                if self.partial.is_some() {
                    return Err(Refused(close::PROTOCOL, "a new message inside a fragmented one"));
                }
                let text = d == Data::Text;
                if h.is_final {
                    if text && bad_text(&payload) {
                        return Err(Refused(close::INVALID_DATA, "text is not valid UTF-8"));
                    }
                    out.push(In::Message);
                } else {
                    let len = payload.len();
                    self.partial =
                        Some(Partial { text, len, bytes: if text { payload } else { Vec::new() } });
                    // Each fragment counts toward the watcher's message limit.
                    out.push(In::Message);
                }
            }
            OpCode::Data(Data::Reserved(_)) => return Err(Refused(close::PROTOCOL, "unknown opcode")),
        }
        Ok(())
    }
}

/// How long a closing socket waits for its close frame to go out, and for the peer's answer.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

/// Queues a close frame after what waits and writes it all; false if that did not finish.
async fn send_close(outlet: &Outlet, code: u16, reason: &str) -> bool {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    outlet.push(encode_as(OpCode::Control(Control::Close), &payload));
    matches!(tokio::time::timeout(CLOSE_PATIENCE, outlet.drain()).await, Ok(Ok(_)))
}

/// The close code to answer a peer's close with: its own, when it may be sent (RFC 6455 §7.4).
pub fn echo(code: Option<u16>) -> u16 {
    match code {
        Some(c @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => c,
        Some(_) => close::PROTOCOL,
        None => close::NORMAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked, as RFC 6455 requires.
    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![first, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        f
    }

    fn parse(bytes: &[u8]) -> (Result<(), Refused>, Vec<In>) {
        let mut p = Parser { pending: bytes.to_vec(), partial: None };
        let mut out = Vec::new();
        (p.parse(&mut out), out)
    }

    #[test]
    fn whole_and_split_frames_are_read() {
        let mut bytes = masked(0x89, b"hi");
        bytes.extend(masked(0x8A, b""));
        bytes.extend(masked(0x01, b"he"));
        bytes.extend(masked(0x80, b"llo"));
        bytes.extend(masked(0x88, &[0x03, 0xE8]));
        let (r, out) = parse(&bytes);
        assert_eq!(r, Ok(()));
        assert_eq!(
            out,
            vec![
                In::Ping(Bytes::from_static(b"hi")),
                In::Pong,
                In::Message,
                In::Message,
                In::Close(Some(1000))
            ]
        );
        // Half a frame waits for the rest.
        let mut p = Parser { pending: bytes[..5].to_vec(), partial: None };
        let mut out = Vec::new();
        assert_eq!(p.parse(&mut out), Ok(()));
        assert!(out.is_empty());
        p.pending.extend_from_slice(&bytes[5..8]);
        assert_eq!(p.parse(&mut out), Ok(()));
        assert_eq!(out, vec![In::Ping(Bytes::from_static(b"hi"))]);
    }

    #[test]
    fn broken_frames_get_their_rfc_codes() {
        let unmasked = [0x81u8, 1, b'a'];
        assert_eq!(parse(&unmasked).0, Err(Refused(close::PROTOCOL, "client frames are masked")));
        assert_eq!(parse(&masked(0x81, &[0xC3, 0x28])).0.unwrap_err().0, close::INVALID_DATA);
        assert_eq!(parse(&masked(0x80, b"x")).0.unwrap_err().0, close::PROTOCOL, "orphan continuation");
        let mut two = masked(0x01, b"a");
        two.extend(masked(0x81, b"b"));
        assert_eq!(parse(&two).0.unwrap_err().0, close::PROTOCOL, "a message inside a fragmented one");
        let mut big = vec![0x82u8, 0x80 | 127];
        big.extend_from_slice(&70_000u64.to_be_bytes());
        big.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&big).0.unwrap_err().0, close::TOO_BIG, "refused from its header");
        assert_eq!(parse(&masked(0x09, b"")).0.unwrap_err().0, close::PROTOCOL, "a fragmented ping");
    }

    #[test]
    fn a_peers_close_code_is_echoed_when_it_may_be_sent() {
        assert_eq!(echo(Some(4001)), 4001);
        assert_eq!(echo(Some(1012)), 1012);
        assert_eq!(echo(Some(1005)), close::PROTOCOL);
        assert_eq!(echo(None), close::NORMAL);
    }
}
