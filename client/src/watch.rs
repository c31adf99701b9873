//! A watcher: follows one alert as a contact's page does (snapshot, then every event in order),
//! reconnecting with backoff and resuming from the last event it saw (docs/protocol.md,
//! "Reconnecting watchers").

use alertme_protocol::audio::{WatchHeader, KIND_INIT};
use alertme_protocol::WatchMsg;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::backoff::Backoff;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a watcher sees, in the order the server sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A text message: a snapshot (fresh, or `resync: true` after missing events), `resumed`,
    /// or a live event.
    Msg(WatchMsg),
    /// An audio part's init segment (WebM, MP4).
    Init {
        /// Part number.
        part: u16,
        /// The segment.
        bytes: Vec<u8>,
    },
    /// Whole audio units of a part.
    Unit {
        /// Part number.
        part: u16,
        /// Playback may start here.
        sync: bool,
        /// The units.
        bytes: Vec<u8>,
    },
    /// The connection dropped (or the server restarts, or found this watcher too slow); the
    /// next call reconnects and resumes.
    Reconnecting {
        /// Close code, when the server gave one.
        code: Option<u16>,
    },
}

/// Following an alert. [`Watcher::next`] returns `None` once the alert ended (close 1000) or the
/// link stopped working (4401, an expired or refused link).
pub struct Watcher {
    url: String,
    epoch: Option<String>,
    ev: u64,
    ws: Option<Ws>,
    backoff: Backoff,
    done: bool,
}

impl Watcher {
    /// A watcher of the alert behind `token` (a contact's watch token) on `server`
    /// (`http(s)://` or `ws(s)://`). Nothing connects until [`Watcher::next`].
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        let url = format!("{}/v1/watch?token={token}", crate::backoff::ws_base(server)?);
        Ok(Self { url, epoch: None, ev: 0, ws: None, backoff: Backoff::default(), done: false })
    }

    /// The epoch and last event seen: where a reconnect resumes.
    pub fn position(&self) -> (Option<&str>, u64) {
        (self.epoch.as_deref(), self.ev)
    }

    /// The next thing seen; `None` when the alert is over or the link is refused.
    pub async fn next(&mut self) -> Option<Seen> {
        while !self.done {
            let Some(ws) = self.ws.as_mut() else {
                self.connect().await;
                continue;
            };
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let Ok(m) = serde_json::from_str::<WatchMsg>(t.as_str()) else { continue };
                    self.note(&m);
                    return Some(Seen::Msg(m));
                }
                Some(Ok(Message::Binary(b))) => {
                    let Some((h, payload)) = WatchHeader::parse(&b) else { continue };
                    if h.kind == KIND_INIT {
                        return Some(Seen::Init { part: h.part, bytes: payload.to_vec() });
                    }
                    // Units inside a snapshot carry the ev they were first published with,
                    // all at most the snapshot's: the position only moves forward.
                    self.ev = self.ev.max(h.ev);
                    let sync = h.flags & alertme_protocol::audio::FLAG_SYNC != 0;
                    return Some(Seen::Unit { part: h.part, sync, bytes: payload.to_vec() });
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.ws = None;
                    match code {
                        // The alert is over, or this link does not work (revoked, expired).
                        Some(1000) | Some(4401) | Some(1008) => self.done = true,
                        _ => return Some(Seen::Reconnecting { code }),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.ws = None;
                    return Some(Seen::Reconnecting { code: None });
                }
            }
        }
        None
    }

    /// Moves the resume position past a text message.
    fn note(&mut self, m: &WatchMsg) {
        match m {
            WatchMsg::Snapshot { epoch, ev, .. } => {
                self.epoch = Some(epoch.clone());
                self.ev = *ev;
                self.backoff.healthy();
            }
            WatchMsg::Resumed { epoch, .. } => {
                self.epoch = Some(epoch.clone());
                self.backoff.healthy();
            }
            WatchMsg::Fix { ev, .. }
            | WatchMsg::Alert { ev, .. }
            | WatchMsg::Phone { ev, .. }
            | WatchMsg::Deliveries { ev, .. }
            | WatchMsg::AudioPart { ev, .. } => self.ev = self.ev.max(*ev),
        }
    }

    /// Connects (after the backoff delay if an earlier attempt failed), resuming when it can.
    async fn connect(&mut self) {
        let url = match &self.epoch {
            Some(e) => format!("{}&epoch={e}&ev={}", self.url, self.ev),
            None => self.url.clone(),
        };
        match tokio_tungstenite::connect_async_with_config(url, Some(crate::socket_config()), false).await {
            Ok((ws, _)) => {
                self.backoff.connected();
                self.ws = Some(ws);
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res))
                if [401u16, 403, 404, 410].contains(&res.status().as_u16()) =>
            {
                // A refused, revoked or expired link does not start working by retrying.
                self.done = true;
            }
            Err(_) => tokio::time::sleep_until(self.backoff.lost()).await,
        }
    }
}
