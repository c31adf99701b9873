//! `GET /v1/phone`: the phone's socket. Start or resume an SOS, stream fixes and audio, get acks.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use alertme_protocol::audio::decode_phone_chunk;
use alertme_protocol::{
    Acks, ActiveAlertRef, AlertStatus, Fix, Limits, PhoneMsg, PhoneServerMsg, StopReason,
    MAX_FIXES_PER_MESSAGE, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use governor::{Quota, RateLimiter};
use tokio::sync::{mpsc, watch};

use crate::domain::accounts::{self, Device};
use crate::domain::alerts;
use crate::domain::alerts::Alert;
use crate::domain::ingest::Notice;
use crate::error::Result;
use crate::live::{Revoked, Session};
use crate::media::Container;
use crate::web::socket::{self, close};
use crate::web::state::AppState;

/// How far ahead of the acknowledged fixes a fix's seq may be (a day at 1 Hz).
const MAX_FIX_AHEAD: u64 = 100_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/phone", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    pro: socket::Prologue,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let device = accounts::device(&state.db, &pro.token).await?;
    let active = alerts::active_of_user(&state.db, &device.user_id).await?;
    let (conn, notices) = Conn::new(state.clone(), device);
    // Every log line of this socket names it (never its token).
    let span = tracing::info_span!("phone", conn = conn.id, device = %conn.device.id);
    let revocations = pro.revocations;
    Ok(socket::accept(&state, ws, socket::Peer::Phone, span, move |socket| {
        conn.serve(socket, notices, revocations, active)
    }))
}

/// What a message handler asks the loop to do next.
enum Flow {
    Continue,
    Close(u16, &'static str),
}

struct Conn {
    state: AppState,
    device: Device,
    id: u64,
    session: Option<Arc<Session>>,
    client_id: Option<String>,
    mime: Option<String>,
    acks: Option<watch::Receiver<Acks>>,
    status: Option<watch::Receiver<AlertStatus>>,
    owner: Option<watch::Receiver<u64>>,
    deliveries: Option<watch::Receiver<Vec<alertme_protocol::Delivery>>>,
    notice_tx: mpsc::Sender<Notice>,
    bad: u32,
    /// The phone was told its audio is no longer relayed live.
    told_unrelayable: bool,
}

impl Conn {
    fn new(state: AppState, device: Device) -> (Self, mpsc::Receiver<Notice>) {
        let (notice_tx, notice_rx) = mpsc::channel(64);
        let id = state.next_conn_id();
        let c = Self {
            state,
            device,
            id,
            session: None,
            client_id: None,
            mime: None,
            acks: None,
            status: None,
            owner: None,
            deliveries: None,
            notice_tx,
            bad: 0,
            told_unrelayable: false,
        };
        (c, notice_rx)
    }
}

impl Conn {
    async fn serve(
        mut self,
        mut socket: WebSocket,
        mut notices: mpsc::Receiver<Notice>,
        mut revocations: tokio::sync::broadcast::Receiver<Revoked>,
        active: Option<Alert>,
    ) {
        let s = self.state.settings.clone();
        let _open = crate::telemetry::OpenSocket::open("phone");
        let welcome = PhoneServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            server: format!("alertme {}", env!("CARGO_PKG_VERSION")),
            limits: Limits {
                max_message_bytes: MAX_MESSAGE_BYTES,
                max_fixes_per_message: MAX_FIXES_PER_MESSAGE,
                heartbeat_ms: s.heartbeat.as_millis() as u64,
            },
            active_alert: active.map(|a| ActiveAlertRef { alert_id: a.id, client_id: a.client_id }),
        };
        if send(&mut socket, &welcome).await.is_err() || self.send_prompts(&mut socket).await.is_err() {
            return;
        }
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("max(1)");
        // Reads beyond these rates are paced, never dropped: a phone flushing its backlog after a
        // tunnel slows down instead of losing data, and a flood cannot take the server's time.
        let msg_rate = RateLimiter::direct(
            Quota::per_second(nz(s.phone_msgs_per_sec)).allow_burst(nz(s.phone_msgs_per_sec * 4)),
        );
        let kib_rate = RateLimiter::direct(
            Quota::per_second(nz(s.phone_kib_per_sec)).allow_burst(nz(s.phone_kib_per_sec * 4)),
        );
        let mut heartbeat = tokio::time::interval(s.heartbeat);
        heartbeat.tick().await;
        let mut last_recv = Instant::now();
        let mut user_msgs = self.state.hub.user_messages();
        // Who is watching is polled: watchers come and go without telling the phone's task.
        let mut audience_tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut audience = None;
        let stop = self.state.stop.clone();
        let end = loop {
            tokio::select! {
                () = stop.cancelled() => break Some((close::RESTART, "server restarting; reconnect and resend")),
                _ = audience_tick.tick(), if self.session.is_some() && self.status.is_some() => {
                    let sess = self.session.as_ref().expect("checked");
                    let now = (sess.watchers(), sess.claimed_by());
                    if audience.as_ref() != Some(&now) {
                        let m = PhoneServerMsg::Audience { watching: now.0, claimed_by: now.1.clone() };
                        if send(&mut socket, &m).await.is_err() {
                            break None;
                        }
                        audience = Some(now);
                    }
                }
                m = user_msgs.recv() => match m {
                    Ok((user, msg)) => {
                        if user == self.device.user_id && send_raw(&mut socket, msg.into()).await.is_err() {
                            break None;
                        }
                    }
                    // Some prompts may have been missed: send the ones that stand now.
                    Err(_) => {
                        if self.send_prompts(&mut socket).await.is_err() {
                            break None;
                        }
                    }
                },
                r = revocations.recv() => {
                    if socket::revoked(r, &Revoked::Device(self.device.id.clone()), &self.state.db).await {
                        break Some((close::UNAUTHORIZED, "device token revoked"));
                    }
                }
                m = socket.recv() => {
                    let msg = match m {
                        None => break None,
                        Some(Err(e)) => break socket::close_for(e),
                        Some(Ok(m)) => m,
                    };
                    last_recv = Instant::now();
                    let size = match &msg { Message::Text(t) => t.len(), Message::Binary(b) => b.len(), _ => 0 };
                    msg_rate.until_ready().await;
                    if let Some(n) = NonZeroU32::new(size.div_ceil(1024) as u32) {
                        let _ = kib_rate.until_n_ready(n).await;
                    }
                    if let Some(sess) = &self.session {
                        sess.phone_heard(crate::now_ms());
                    }
                    let flow = match msg {
                        Message::Text(t) => self.on_text(&mut socket, t.as_str()).await,
                        Message::Binary(b) => self.on_binary(&mut socket, b).await,
                        Message::Close(_) => break None,
                        Message::Ping(_) | Message::Pong(_) => Flow::Continue,
                    };
                    if let Flow::Close(code, why) = flow {
                        break Some((code, why));
                    }
                }
                Some(()) = changed(&mut self.acks) => {
                    let acks = *self.acks.as_mut().expect("some").borrow_and_update();
                    if send(&mut socket, &PhoneServerMsg::Ack { acks }).await.is_err() {
                        break None;
                    }
                }
                Some(n) = notices.recv() => {
                    let (code, detail, expected) = match n {
                        Notice::AudioGap { expected } => ("audio_gap", "audio chunk ahead of a missing one; resend from `expected`", Some(expected)),
                        Notice::NoAudioFormat => ("no_audio_format", "send a supported audio_mime in start before audio", None),
                        Notice::StorageFailed => break Some((close::STORAGE, "storage failed; reconnect and resend")),
                        Notice::Fenced => {
                            if let Some(sess) = &self.session {
                                alerts::fenced_out(&self.state, sess);
                            }
                            break Some((close::SUPERSEDED, "another server took this alert over; reconnect"));
                        }
                    };
                    let m = PhoneServerMsg::Error { code: code.into(), detail: detail.into(), expected };
                    if send(&mut socket, &m).await.is_err() {
                        break None;
                    }
                }
                Some(()) = changed(&mut self.deliveries) => {
                    let deliveries = self.deliveries.as_mut().expect("some").borrow_and_update().clone();
                    if send(&mut socket, &PhoneServerMsg::Deliveries { deliveries }).await.is_err() {
                        break None;
                    }
                }
                Some(()) = changed(&mut self.owner) => {
                    if *self.owner.as_mut().expect("some").borrow_and_update() != self.id {
                        break Some((close::SUPERSEDED, "a newer connection resumed this alert"));
                    }
                }
                Some(()) = changed(&mut self.status) => {
                    let status = *self.status.as_mut().expect("some").borrow_and_update();
                    if status != AlertStatus::Active {
                        let _ = send(&mut socket, &PhoneServerMsg::Stopped { status }).await;
                        break Some((close::NORMAL, "alert ended"));
                    }
                }
                _ = heartbeat.tick() => {
                    if last_recv.elapsed() > s.heartbeat * 3 {
                        break Some((close::TIMEOUT, "no message for three heartbeats"));
                    }
                    if send_raw(&mut socket, Message::Ping(Bytes::new())).await.is_err() {
                        break None;
                    }
                }
            }
        };
        // A dropped socket is not shown to watchers at once: phones on bad links reconnect within
        // seconds, and a relative must not see the connection flap. The silence watch marks the
        // phone lost once it was not heard from for `ALERTME_PHONE_SILENCE_MS`.
        if let Some((code, why)) = end {
            tracing::debug!(conn = self.id, code, why, "phone socket closing");
            socket::close_with(socket, code, why).await;
        }
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Flow {
        let msg = match serde_json::from_str::<PhoneMsg>(text) {
            Ok(m) => m,
            Err(e) => return self.bad(socket, "bad_message", &format!("not a valid message: {e}")).await,
        };
        match msg {
            PhoneMsg::Ping { t } => {
                let _ = send(socket, &PhoneServerMsg::Pong { t, server_ms: crate::now_ms() }).await;
                Flow::Continue
            }
            PhoneMsg::Track { fix } => {
                match crate::domain::positions::track(&self.state, &self.device.user_id, &fix).await {
                    Ok(()) => {
                        let (user, device) = (&self.device.user_id, &self.device.id);
                        if let Err(e) = crate::domain::geozones::check(&self.state, user, device, &fix).await
                        {
                            tracing::error!(error = %e, "geozone check failed");
                        }
                        Flow::Continue
                    }
                    Err(crate::error::Error::BadRequest(why)) => self.bad(socket, "bad_fix", &why).await,
                    Err(e) => {
                        tracing::error!(error = %e, "storing a tracking fix failed");
                        Flow::Continue
                    }
                }
            }
            PhoneMsg::Start { client_id, audio_mime, .. } => {
                self.on_start(socket, client_id, audio_mime).await
            }
            PhoneMsg::Fix { fixes } => self.on_fixes(socket, fixes).await,
            PhoneMsg::Media { mime } => {
                if self.session.is_none() {
                    return self.bad(socket, "not_started", "send start first").await;
                }
                match Container::canonical_mime(&mime)
                    .filter(|m| Container::from_mime(m).is_some_and(Container::is_live))
                {
                    Some(m) => {
                        self.mime = Some(m);
                        Flow::Continue
                    }
                    None => {
                        self.bad(
                            socket,
                            "unsupported_media",
                            "this media type is not taken; chunks stay in the format before",
                        )
                        .await
                    }
                }
            }
            PhoneMsg::Stop { reason } => {
                let Some(sess) = self.session.clone() else {
                    return self.bad(socket, "not_started", "send start first").await;
                };
                let status = match reason {
                    StopReason::Resolve => AlertStatus::Resolved,
                    StopReason::Cancel => AlertStatus::Cancelled,
                };
                // The status watch fires next and sends `stopped` before closing.
                if let Err(e) = alerts::end(&self.state, &sess.alert_id, status, &self.device.id).await {
                    tracing::error!(error = %e, "ending alert failed");
                    return Flow::Close(close::STORAGE, "storage failed; retry stop");
                }
                Flow::Continue
            }
        }
    }

    async fn on_start(
        &mut self,
        socket: &mut WebSocket,
        client_id: String,
        audio_mime: Option<String>,
    ) -> Flow {
        if let Some(current) = &self.client_id {
            if *current != client_id {
                return self
                    .bad(socket, "already_started", "this socket streams another alert; open a new one")
                    .await;
            }
        }
        // Stored and sent back as a header later: only an allow-listed, canonical form. A
        // recording with video (`video/webm`, `video/mp4`) streams by the same rules.
        let supported = audio_mime
            .as_deref()
            .and_then(Container::canonical_mime)
            .filter(|m| Container::from_mime(m).is_some_and(Container::is_live));
        let (sess, mut row, created) =
            match alerts::start(&self.state, &self.device, &client_id, supported.as_deref()).await {
                Ok(x) => x,
                Err(crate::error::Error::BadRequest(d)) => return self.bad(socket, "bad_start", &d).await,
                Err(crate::error::Error::Conflict(d)) => {
                    return self.bad(socket, "too_many_alerts", &d).await
                }
                Err(e) => {
                    tracing::error!(error = %e, "starting alert failed");
                    return Flow::Close(close::STORAGE, "storage failed; retry start");
                }
            };
        if row.audio_mime.is_none() && supported.is_some() {
            match crate::domain::alerts::set_audio_mime(
                &self.state.db,
                &row,
                supported.as_deref().unwrap_or_default(),
            )
            .await
            {
                Ok(r) => row = r,
                Err(e) => tracing::error!(error = %e, "recording audio format failed"),
            }
        }
        self.mime = row.audio_mime.clone();
        self.client_id = Some(client_id.clone());
        let status = AlertStatus::parse(&row.status).unwrap_or(AlertStatus::Active);
        if status == AlertStatus::Active {
            self.owner = Some(sess.take_ownership(self.id));
            sess.phone_heard(crate::now_ms());
            let mut acks = sess.acks();
            acks.borrow_and_update();
            self.acks = Some(acks);
            let mut st = sess.status();
            st.borrow_and_update();
            self.status = Some(st);
            // Marked changed so the current state goes out right after `started`.
            let mut d = sess.deliveries();
            d.mark_changed();
            self.deliveries = Some(d);
        }
        let acks = *sess.acks().borrow();
        self.session = Some(sess.clone());
        let started = PhoneServerMsg::Started {
            alert_id: row.id.clone(),
            client_id,
            created,
            status,
            watch_url: self.state.watch_url(&alerts::device_watch_token(&self.state, &row.id)),
            acks,
        };
        let _ = send(socket, &started).await;
        if audio_mime.is_some() && supported.is_none() {
            let m = PhoneServerMsg::Error {
                code: "unsupported_audio".into(),
                detail: "audio_mime not accepted (use audio/aac, audio/webm;codecs=opus or audio/mp4); the SOS runs without audio".into(),
                expected: None,
            };
            let _ = send(socket, &m).await;
        }
        if status != AlertStatus::Active {
            let _ = send(socket, &PhoneServerMsg::Stopped { status }).await;
            return Flow::Close(close::NORMAL, "alert ended");
        }
        Flow::Continue
    }

    async fn on_fixes(&mut self, socket: &mut WebSocket, fixes: Vec<Fix>) -> Flow {
        let Some(sess) = self.session.clone() else {
            return self.bad(socket, "not_started", "send start first").await;
        };
        if fixes.len() > MAX_FIXES_PER_MESSAGE {
            return self.bad(socket, "too_many_fixes", "at most 100 fixes per message").await;
        }
        let mut good = Vec::with_capacity(fixes.len());
        let acked = sess.acks().borrow().fix;
        for f in fixes {
            if f.seq > acked + MAX_FIX_AHEAD {
                // What the server keeps per alert to order and ack fixes stays bounded.
                let why = format!(
                    "fix {}: at most {MAX_FIX_AHEAD} ahead of the ack ({acked}); send earlier fixes first",
                    f.seq
                );
                if let Flow::Close(c, w) = self.bad(socket, "seq_too_far", &why).await {
                    return Flow::Close(c, w);
                }
                continue;
            }
            match f.validate() {
                Ok(()) => good.push(f),
                Err(why) => {
                    // The refusal is stored like a fix: its seq is consumed and acked, so a phone
                    // that drops what is acked can finish (docs/protocol.md, `bad_fix`).
                    if f.seq > acked {
                        self.state
                            .store
                            .refused(sess.clone(), f.seq, why.clone(), self.notice_tx.clone())
                            .await;
                    }
                    if let Flow::Close(c, w) =
                        self.bad(socket, "bad_fix", &format!("fix {}: {why}", f.seq)).await
                    {
                        return Flow::Close(c, w);
                    }
                }
            }
        }
        if !good.is_empty() {
            // Watchers see the fixes now; the ack waits for the commit. The geozone check comes
            // last so that it delays neither.
            sess.fixes_received(&good);
            self.state.store.fixes(sess, good.clone(), self.notice_tx.clone()).await;
            for f in &good {
                let (user, device) = (&self.device.user_id, &self.device.id);
                if let Err(e) = crate::domain::geozones::check(&self.state, user, device, f).await {
                    tracing::error!(error = %e, "geozone check failed");
                }
            }
        }
        Flow::Continue
    }

    async fn on_binary(&mut self, socket: &mut WebSocket, frame: Bytes) -> Flow {
        let Some(sess) = self.session.clone() else {
            return self.bad(socket, "not_started", "send start first").await;
        };
        let (seq, audio) = match decode_phone_chunk(&frame) {
            Ok(x) => x,
            Err(e) => return self.bad(socket, "bad_frame", &e.to_string()).await,
        };
        if let Some(mime) = &self.mime {
            if !sess.audio_received(seq, mime, audio) && !self.told_unrelayable {
                self.told_unrelayable = true;
                let m = PhoneServerMsg::Error {
                    code: "audio_not_live".into(),
                    detail: "the recording has a header over 1 MiB or a unit over 4 MiB: it is stored, but no longer played live".into(),
                    expected: None,
                };
                let _ = send(socket, &m).await;
            }
        }
        let offset = frame.len() - audio.len();
        self.state
            .store
            .audio(sess, self.mime.clone(), seq, frame.slice(offset..), self.notice_tx.clone())
            .await;
        Flow::Continue
    }

    /// Check-in prompts that stand now (a timer in its grace period): sent on connect, so a
    /// phone that was offline when its timer came due still asks for the PIN, and after missing
    /// news of prompts.
    async fn send_prompts(&self, socket: &mut WebSocket) -> Result<(), axum::Error> {
        let prompts = match crate::domain::timers::prompts_for(&self.state, &self.device.user_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading check-in prompts failed");
                return Ok(());
            }
        };
        for p in prompts {
            send(socket, &p).await?;
        }
        Ok(())
    }

    async fn bad(&mut self, socket: &mut WebSocket, code: &str, detail: &str) -> Flow {
        self.bad += 1;
        tracing::debug!(conn = self.id, code, "refused phone message");
        let _ =
            send(socket, &PhoneServerMsg::Error { code: code.into(), detail: detail.into(), expected: None })
                .await;
        if self.bad > socket::MAX_BAD_MESSAGES {
            Flow::Close(close::BAD_MESSAGES, "too many malformed messages")
        } else {
            Flow::Continue
        }
    }
}

async fn send(socket: &mut WebSocket, m: &PhoneServerMsg) -> Result<(), axum::Error> {
    send_raw(socket, Message::Text(serde_json::to_string(m).expect("serializes").into())).await
}

/// A phone on a bad link may read slowly, but a send that does not complete within this long
/// means it stopped reading: the socket ends (the phone reconnects and resumes) instead of this
/// task waiting forever, unable to read its fixes or notice anything else.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn send_raw(socket: &mut WebSocket, m: Message) -> Result<(), axum::Error> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(m)).await {
        Ok(r) => r,
        Err(e) => Err(axum::Error::new(e)),
    }
}

/// Waits for a change on an optional watch; never resolves when there is none.
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> Option<()> {
    match rx {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}
