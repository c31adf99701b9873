//! The phone side of the protocol (docs/protocol.md, "Phone socket"): one task that owns the
//! socket, the sensors and the outbox, and keeps every fix and audio chunk until it is acked.
//!
//! Everything arrives as an `Input` on one channel and is handled in order, so the seq counters,
//! the outbox and what was sent never race.

use std::collections::VecDeque;

use alertme_protocol::audio::encode_phone_chunk;
use alertme_protocol::{Acks, AlertStatus, Delivery, Fix, PhoneMsg, PhoneServerMsg};
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use leptos::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::outbox::{ActiveSos, Outbox};
use super::sensors::{self, Geo, Mic, Position, Reading, SensorState};
use crate::ws::{self, Socket};

/// Largest audio payload per chunk (the protocol allows 65,526 bytes).
const MAX_CHUNK: usize = 60_000;
/// Send a ping when nothing else went out for this long (the server's heartbeat is 10 s).
const PING_EVERY_MS: f64 = 5_000.0;
/// While a check-in timer runs, the last known position is refreshed this often.
const TRACK_EVERY_MS: f64 = 30_000.0;

/// The server link as the person should see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Connecting,
    Online,
    Offline,
}

/// Where the SOS stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Idle,
    Active,
    Ended(AlertStatus),
    /// Another window of this browser took over the SOS (4409).
    Elsewhere,
    /// Another tab of this browser is the phone; this one waits for it to close.
    OtherTab,
}

/// What the page shows; written only by the engine.
#[derive(Clone, Copy)]
pub struct View {
    pub link: RwSignal<Link>,
    pub phase: RwSignal<Phase>,
    /// The SOS was "cancelled" on this page: look idle whatever happens underneath.
    pub hidden: RwSignal<bool>,
    pub alert_id: RwSignal<Option<String>>,
    pub watch_url: RwSignal<Option<String>>,
    pub deliveries: RwSignal<Vec<Delivery>>,
    pub watching: RwSignal<usize>,
    pub claimed_by: RwSignal<Option<String>>,
    pub location: RwSignal<SensorState>,
    pub mic: RwSignal<SensorState>,
    /// Last seqs handed out.
    pub taken: RwSignal<Acks>,
    /// Last seqs the server holds durably.
    pub acked: RwSignal<Acks>,
    pub check_in_due: RwSignal<Option<(String, i64)>>,
    /// Trouble worth telling (storage unavailable, …).
    pub problem: RwSignal<Option<String>>,
    pub signed_out: RwSignal<bool>,
    /// The recorder finished after `Input::Flush` (or there was none).
    pub flushed: RwSignal<bool>,
}

impl View {
    fn new() -> Self {
        Self {
            link: RwSignal::new(Link::Connecting),
            phase: RwSignal::new(Phase::Idle),
            hidden: RwSignal::new(false),
            alert_id: RwSignal::new(None),
            watch_url: RwSignal::new(None),
            deliveries: RwSignal::new(Vec::new()),
            watching: RwSignal::new(0),
            claimed_by: RwSignal::new(None),
            location: RwSignal::new(SensorState::Off),
            mic: RwSignal::new(SensorState::Off),
            taken: RwSignal::new(Acks { fix: 0, audio: 0 }),
            acked: RwSignal::new(Acks { fix: 0, audio: 0 }),
            check_in_due: RwSignal::new(None),
            problem: RwSignal::new(None),
            signed_out: RwSignal::new(false),
            flushed: RwSignal::new(false),
        }
    }
}

/// What the engine reacts to.
pub enum Input {
    Net(ws::Event),
    Sensor(Reading),
    /// The SOS button (after its countdown).
    Press,
    /// The person cancelled on this page (the server decides what that means).
    Hide,
    /// Check-in timers running or not: keep the last known position fresh.
    Track(bool),
    /// Stop the recorder cleanly (its last data completes the recording) before ending.
    Flush,
    /// Make sure the recorder runs (after a flush that did not end the SOS).
    Record,
    /// The microphone finished starting (after the permission prompt).
    MicReady(Mic),
    Tick,
}

/// Handle for the page: send inputs, read the view.
#[derive(Clone)]
pub struct Handle {
    tx: UnboundedSender<Input>,
    pub view: View,
}

impl Handle {
    pub fn send(&self, i: Input) {
        let _ = self.tx.unbounded_send(i);
    }
}

/// Starts the engine for a signed-in device: restores an SOS the page was running, opens the
/// phone socket and keeps it open.
pub fn start(token: String) -> Handle {
    let (tx, rx) = unbounded();
    let view = View::new();
    let handle = Handle { tx: tx.clone(), view };
    leptos::task::spawn_local(run(token, tx, rx, view));
    handle
}

struct Engine {
    view: View,
    tx: UnboundedSender<Input>,
    socket: Option<Socket>,
    store: Option<Outbox>,
    sos: Option<ActiveSos>,
    /// Unacknowledged fixes, by seq.
    fixes: Vec<Fix>,
    /// Unacknowledged audio chunks, by seq.
    audio: VecDeque<(u64, Vec<u8>)>,
    acks: Acks,
    /// `started` received on the current connection.
    started: bool,
    /// Highest audio seq sent on the current connection.
    audio_sent: u64,
    audio_refused: bool,
    last_sent_ms: f64,
    geo: Option<Geo>,
    geo_precise: bool,
    mic: Option<Mic>,
    /// A microphone is being asked for (the permission prompt may be up).
    mic_starting: bool,
    /// When to make sure the recorder runs again (after a cancel that did not end the SOS).
    record_at: Option<f64>,
    battery: Option<web_sys::BatteryManager>,
    tracking: bool,
    last_track_ms: f64,
}

async fn run(token: String, tx: UnboundedSender<Input>, mut rx: UnboundedReceiver<Input>, view: View) {
    if super::tab_lock::acquire(true).await == Some(false) {
        view.phase.set(Phase::OtherTab);
        view.link.set(Link::Offline);
        super::tab_lock::acquire(false).await;
        // No button was shown meanwhile, so nothing pressed counts; a timer's tracking does.
        let mut track = None;
        while let Ok(i) = rx.try_recv() {
            if let Input::Track(on) = i {
                track = Some(on);
            }
        }
        if let Some(on) = track {
            let _ = tx.unbounded_send(Input::Track(on));
        }
        view.phase.set(Phase::Idle);
        view.link.set(Link::Connecting);
    }
    let mut e = Engine {
        view,
        tx: tx.clone(),
        socket: None,
        store: None,
        sos: None,
        fixes: Vec::new(),
        audio: VecDeque::new(),
        acks: Acks { fix: 0, audio: 0 },
        started: false,
        audio_sent: 0,
        audio_refused: false,
        last_sent_ms: 0.0,
        geo: None,
        geo_precise: false,
        mic: None,
        mic_starting: false,
        record_at: None,
        battery: sensors::battery().await,
        tracking: false,
        last_track_ms: 0.0,
    };
    match Outbox::open().await {
        Ok(store) => {
            match store.load().await {
                Ok(Some(saved)) => {
                    let mut fixes = saved.fixes;
                    fixes.sort_by_key(|f| f.seq);
                    e.fixes = fixes;
                    e.audio = saved.audio.into_iter().collect();
                    e.audio.make_contiguous().sort_by_key(|(s, _)| *s);
                    e.resume(saved.sos);
                }
                Ok(None) => {}
                Err(err) => e.storage_problem(&err.0),
            }
            e.store = Some(store);
        }
        Err(err) => e.storage_problem(&err.0),
    }
    let url = crate::api::ws_url(&format!("/v1/phone?token={}", js_sys::encode_uri_component(&token)));
    let net = tx.clone();
    e.socket = Some(Socket::open_with_backoff(
        move || url.clone(),
        move |ev| {
            let _ = net.unbounded_send(Input::Net(ev));
            true
        },
        50,
        2_000,
    ));
    let tick = tx.clone();
    set_interval(move || drop(tick.unbounded_send(Input::Tick)), std::time::Duration::from_secs(1));
    if e.sos.is_some() {
        e.start_sensors();
    }
    while let Some(input) = rx.next().await {
        match input {
            Input::Net(ev) => e.on_net(ev),
            Input::Sensor(r) => e.on_sensor(r).await,
            Input::Press => e.press().await,
            Input::Hide => e.hide().await,
            Input::Track(on) => {
                e.tracking = on;
                e.sync_geo();
            }
            Input::Flush => e.flush_recorder(),
            Input::Record => e.start_mic(),
            Input::MicReady(mic) => {
                e.mic_starting = false;
                // Kept only while the SOS still wants audio; dropping it releases the microphone.
                if e.sos.is_some() && !e.audio_refused && e.mic.is_none() {
                    e.mic = Some(mic);
                }
            }
            Input::Tick => e.tick(),
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn new_client_id() -> String {
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_else(|| format!("{:x}-{:x}", now_ms() as u64, (js_sys::Math::random() * 1e15) as u64))
}

impl Engine {
    fn storage_problem(&self, why: &str) {
        web_sys::console::warn_1(&format!("AlertMe: local storage unavailable: {why}").into());
        self.view.problem.set(Some(
            "This browser is not keeping a copy of unsent data (private mode or no space): keep this page open."
                .into(),
        ));
    }

    fn resume(&mut self, sos: ActiveSos) {
        self.view.hidden.set(sos.hidden);
        self.view.alert_id.set(sos.alert_id.clone());
        self.view.watch_url.set(sos.watch_url.clone());
        self.view.taken.set(Acks { fix: sos.next_fix - 1, audio: sos.next_audio - 1 });
        self.view.phase.set(Phase::Active);
        self.sos = Some(sos);
    }

    async fn press(&mut self) {
        if self.sos.is_some() {
            // Pressed again after a cancel on this page: show the SOS that never stopped.
            self.set_hidden(false).await;
            return;
        }
        let sos = ActiveSos {
            client_id: new_client_id(),
            pressed_at_ms: now_ms() as i64,
            audio_mime: sensors::pick_audio_format().map(str::to_owned),
            next_fix: 1,
            next_audio: 1,
            alert_id: None,
            watch_url: None,
            hidden: false,
        };
        self.fixes.clear();
        self.audio.clear();
        self.acks = Acks { fix: 0, audio: 0 };
        self.audio_refused = false;
        self.view.deliveries.set(Vec::new());
        self.view.watching.set(0);
        self.view.claimed_by.set(None);
        self.view.acked.set(self.acks);
        self.resume(sos);
        self.persist().await;
        self.send_start();
        self.start_sensors();
    }

    async fn hide(&mut self) {
        if self.set_hidden(true).await {
            // A real cancel ends the SOS within moments (`stopped`); if it goes on (the duress
            // PIN), the recorder stopped for the cancel must run again.
            self.record_at = Some(now_ms() + 2_000.0);
        }
    }

    /// Hides or shows the running SOS (kept across reloads); false when none runs or no change.
    async fn set_hidden(&mut self, hidden: bool) -> bool {
        let Some(sos) = self.sos.as_mut().filter(|s| s.hidden != hidden) else { return false };
        sos.hidden = hidden;
        self.view.hidden.set(hidden);
        self.persist().await;
        true
    }

    async fn persist(&self) {
        if let (Some(store), Some(sos)) = (&self.store, &self.sos) {
            if let Err(e) = store.save(sos).await {
                self.storage_problem(&e.0);
            }
        }
    }

    fn reading_sink(&self) -> impl Fn(Reading) + Clone + 'static {
        let tx = self.tx.clone();
        move |r| drop(tx.unbounded_send(Input::Sensor(r)))
    }

    fn start_sensors(&mut self) {
        self.sync_geo();
        self.start_mic();
    }

    fn start_mic(&mut self) {
        if self.sos.is_none() || self.audio_refused || self.mic.is_some() || self.mic_starting {
            return;
        }
        let Some(mime) = self.sos.as_ref().and_then(|s| s.audio_mime.clone()) else {
            self.view
                .mic
                .set(SensorState::Unavailable("this browser cannot record a format the server takes".into()));
            return;
        };
        self.mic_starting = true;
        let sink = self.reading_sink();
        let tx = self.tx.clone();
        leptos::task::spawn_local(async move {
            if let Some(mic) = Mic::start(&mime, sink).await {
                let _ = tx.unbounded_send(Input::MicReady(mic));
            }
        });
    }

    fn flush_recorder(&mut self) {
        match &self.mic {
            Some(mic) => mic.finish(),
            None => self.view.flushed.set(true),
        }
    }

    /// Position watching as needed now: precise during an SOS, coarse for a timer, else off.
    fn sync_geo(&mut self) {
        let want = if self.sos.is_some() {
            Some(true)
        } else if self.tracking {
            Some(false)
        } else {
            None
        };
        match want {
            None => {
                self.geo = None;
                self.view.location.set(SensorState::Off);
            }
            Some(precise) if self.geo.is_none() || self.geo_precise != precise => {
                self.geo = None;
                self.view.location.set(SensorState::Waiting);
                self.geo = Geo::watch(precise, self.reading_sink());
                self.geo_precise = precise;
            }
            Some(_) => {}
        }
    }

    fn stop_sensors(&mut self) {
        self.mic = None;
        self.view.mic.set(SensorState::Off);
        self.sync_geo();
    }

    fn send_text(&mut self, m: &PhoneMsg) -> bool {
        let Some(s) = &self.socket else { return false };
        let ok = s.send(&serde_json::to_string(m).expect("serializes"));
        if ok {
            self.last_sent_ms = now_ms();
        }
        ok
    }

    fn send_start(&mut self) {
        let Some(sos) = &self.sos else { return };
        let m = PhoneMsg::Start {
            client_id: sos.client_id.clone(),
            audio_mime: sos.audio_mime.clone(),
            pressed_at_ms: Some(sos.pressed_at_ms),
        };
        self.send_text(&m);
    }

    fn on_net(&mut self, ev: ws::Event) {
        match ev {
            ws::Event::Open => {
                self.view.link.set(Link::Online);
                self.started = false;
                self.send_start();
            }
            ws::Event::Text(t) => match serde_json::from_str::<PhoneServerMsg>(&t) {
                Ok(m) => self.on_message(m),
                Err(_) => {} // newer servers may add message types: ignore them
            },
            ws::Event::Binary(_) => {}
            ws::Event::Closed(code) => {
                self.started = false;
                self.view.link.set(Link::Offline);
                match code {
                    4401 => {
                        self.view.signed_out.set(true);
                        self.close_socket();
                    }
                    4409 if self.sos.is_some() => {
                        self.view.phase.set(Phase::Elsewhere);
                        self.sos = None;
                        self.stop_sensors();
                        self.close_socket();
                    }
                    _ => {}
                }
            }
        }
    }

    fn close_socket(&mut self) {
        if let Some(s) = self.socket.take() {
            s.close();
        }
    }

    fn on_message(&mut self, m: PhoneServerMsg) {
        match m {
            PhoneServerMsg::Started { alert_id, watch_url, acks, status, .. } => {
                if let Some(sos) = &mut self.sos {
                    if sos.alert_id.as_deref() != Some(alert_id.as_str()) {
                        sos.alert_id = Some(alert_id.clone());
                        sos.watch_url = Some(watch_url.clone());
                        self.view.alert_id.set(Some(alert_id));
                        self.view.watch_url.set(Some(watch_url));
                        let (store, sos) = (self.store.clone(), sos.clone());
                        if let Some(store) = store {
                            leptos::task::spawn_local(async move {
                                let _ = store.save(&sos).await;
                            });
                        }
                    }
                }
                if status != AlertStatus::Active {
                    return; // `stopped` follows
                }
                self.started = true;
                self.apply_acks(acks);
                self.flush();
            }
            PhoneServerMsg::Ack { acks } => self.apply_acks(acks),
            PhoneServerMsg::Deliveries { deliveries } => self.view.deliveries.set(deliveries),
            PhoneServerMsg::Audience { watching, claimed_by } => {
                self.view.watching.set(watching);
                self.view.claimed_by.set(claimed_by);
            }
            PhoneServerMsg::CheckInDue { timer_id, fires_at_ms } => {
                self.view.check_in_due.set(Some((timer_id, fires_at_ms)));
            }
            PhoneServerMsg::Stopped { status } => self.ended(status),
            PhoneServerMsg::Error { code, detail, expected } => match code.as_str() {
                "audio_gap" => {
                    self.audio_sent = expected.unwrap_or(self.acks.audio + 1).saturating_sub(1);
                    self.send_audio_backlog();
                }
                "unsupported_audio" | "no_audio_format" => {
                    self.audio_refused = true;
                    self.audio.clear();
                    self.mic = None;
                    self.view.mic.set(SensorState::Unavailable(
                        "the server does not take this browser's audio format".into(),
                    ));
                }
                "too_many_alerts" | "audio_not_live" => self.view.problem.set(Some(detail)),
                _ => web_sys::console::warn_1(&format!("AlertMe: server refused a message: {code}").into()),
            },
            PhoneServerMsg::Welcome { .. } | PhoneServerMsg::Pong { .. } => {}
        }
    }

    fn apply_acks(&mut self, acks: Acks) {
        if acks.fix <= self.acks.fix && acks.audio <= self.acks.audio {
            return;
        }
        self.acks = Acks { fix: acks.fix.max(self.acks.fix), audio: acks.audio.max(self.acks.audio) };
        let a = self.acks;
        self.fixes.retain(|f| f.seq > a.fix);
        while self.audio.front().is_some_and(|(s, _)| *s <= a.audio) {
            self.audio.pop_front();
        }
        self.view.acked.set(a);
        if let Some(store) = self.store.clone() {
            leptos::task::spawn_local(async move {
                let _ = store.drop_acked(a).await;
            });
        }
    }

    /// After `started`: the newest fix first (watchers see where the person is now), then the
    /// fix backlog oldest first in batches, then the audio in order.
    fn flush(&mut self) {
        let fixes = self.fixes.clone();
        if let Some((newest, backlog)) = fixes.split_last() {
            self.send_text(&PhoneMsg::Fix { fixes: vec![newest.clone()] });
            for batch in backlog.chunks(alertme_protocol::MAX_FIXES_PER_MESSAGE) {
                self.send_text(&PhoneMsg::Fix { fixes: batch.to_vec() });
            }
        }
        self.audio_sent = self.acks.audio;
        self.send_audio_backlog();
    }

    fn send_audio_backlog(&mut self) {
        if !self.started {
            return;
        }
        let Some(s) = self.socket.clone() else { return };
        for (seq, bytes) in &self.audio {
            if *seq == self.audio_sent + 1 {
                if !s.send_binary(&encode_phone_chunk(*seq, bytes)) {
                    return;
                }
                self.audio_sent = *seq;
                self.last_sent_ms = now_ms();
            }
        }
    }

    async fn on_sensor(&mut self, r: Reading) {
        match r {
            Reading::PositionState(s) => self.view.location.set(s),
            Reading::MicState(s) => {
                if matches!(s, SensorState::Denied | SensorState::Unavailable(_)) {
                    self.mic_starting = false;
                }
                self.view.mic.set(s);
            }
            Reading::MicFinished => {
                self.mic = None;
                self.view.mic.set(SensorState::Off);
                self.view.flushed.set(true);
            }
            Reading::Position(p) => self.on_position(p).await,
            Reading::Audio(blob) => self.on_audio(blob).await,
        }
    }

    fn fix_of(&self, seq: u64, p: &Position) -> Fix {
        let battery = self.battery.as_ref().map(|b| (b.level() * 100.0).round().clamp(0.0, 100.0) as u8);
        Fix {
            seq,
            lat: p.lat,
            lon: p.lon,
            accuracy_m: p.accuracy_m.max(0.0),
            time_ms: p.time_ms,
            battery_pct: battery,
            speed_mps: p.speed_mps,
            heading_deg: p.heading_deg,
            altitude_m: p.altitude_m,
        }
    }

    async fn on_position(&mut self, p: Position) {
        if !matches!(self.view.location.get_untracked(), SensorState::Working(_)) {
            self.view.location.set(SensorState::Working(format!("±{:.0} m", p.accuracy_m)));
        }
        let Some(sos) = &mut self.sos else {
            if self.tracking && now_ms() - self.last_track_ms >= TRACK_EVERY_MS {
                let fix = self.fix_of(1, &p);
                if self.send_text(&PhoneMsg::Track { fix }) {
                    self.last_track_ms = now_ms();
                }
            }
            return;
        };
        let seq = sos.next_fix;
        sos.next_fix += 1;
        let sos = sos.clone();
        let fix = self.fix_of(seq, &p);
        if let Some(store) = &self.store {
            if let Err(e) = store.add_fix(&sos, &fix).await {
                self.storage_problem(&e.0);
            }
        }
        self.view.taken.update(|t| t.fix = seq);
        self.fixes.push(fix.clone());
        if self.started {
            self.send_text(&PhoneMsg::Fix { fixes: vec![fix] });
        }
    }

    async fn on_audio(&mut self, blob: web_sys::Blob) {
        if self.sos.is_none() || self.audio_refused {
            return;
        }
        let Ok(buf) = JsFuture::from(blob.array_buffer()).await else { return };
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        for piece in bytes.chunks(MAX_CHUNK) {
            let Some(sos) = &mut self.sos else { return };
            let seq = sos.next_audio;
            sos.next_audio += 1;
            let sos = sos.clone();
            if let Some(store) = &self.store {
                if let Err(e) = store.add_audio(&sos, seq, piece).await {
                    self.storage_problem(&e.0);
                }
            }
            self.view.taken.update(|t| t.audio = seq);
            self.audio.push_back((seq, piece.to_vec()));
        }
        self.send_audio_backlog();
    }

    fn ended(&mut self, status: AlertStatus) {
        self.sos = None;
        self.record_at = None;
        self.view.hidden.set(false);
        self.fixes.clear();
        self.audio.clear();
        self.started = false;
        self.stop_sensors();
        self.view.phase.set(Phase::Ended(status));
        if let Some(store) = self.store.clone() {
            leptos::task::spawn_local(async move {
                let _ = store.clear().await;
            });
        }
    }

    fn tick(&mut self) {
        if self.record_at.is_some_and(|at| now_ms() >= at) {
            self.record_at = None;
            self.start_mic();
        }
        if self.view.link.get_untracked() == Link::Online && now_ms() - self.last_sent_ms >= PING_EVERY_MS {
            self.send_text(&PhoneMsg::Ping { t: Some(now_ms() as i64) });
        }
    }
}
