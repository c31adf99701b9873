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
/// Media is held back while the socket's send buffer holds more than this: a fix sent now
/// waits behind at most this much (a quarter second at 64 kB/s), never seconds of video.
const MEDIA_IN_FLIGHT: u32 = 16 * 1024;
/// Unacknowledged media beyond this (about 8 s of video) means the link cannot carry the
/// camera: the recorder goes on without it.
const VIDEO_BACKLOG_MAX: usize = 300 * 1024;
/// The camera comes back once the backlog stayed below this for [`VIDEO_CALM_MS`].
const VIDEO_BACKLOG_CALM: usize = 32 * 1024;
const VIDEO_CALM_MS: f64 = 15_000.0;
/// Video is cut into pieces this small, so that a fix never waits behind a big one.
const VIDEO_PIECE: usize = 1024;
/// Bounds of the media sent but not acknowledged (see [`Engine::window`]).
const WINDOW_MIN: usize = 2 * 1024;
const WINDOW_MAX: usize = 1024 * 1024;
/// How often held-back media is tried again.
const PUMP_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The camera as the person should see it.
#[derive(Clone, Debug, PartialEq)]
pub enum Camera {
    /// Not asked for.
    Off,
    /// Being sent.
    On,
    /// Asked for, but the link is too slow: only audio goes for now.
    Paused,
    /// Asked for, but it could not be used (denied, none, or no format this browser records).
    Unavailable,
}

/// The server link as the person should see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Connecting,
    Online,
    Offline,
}

/// Trouble worth telling the person; the page says it in their language.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Problem {
    /// This browser keeps no copy of what is not sent yet (private mode, no space).
    Storage,
    /// The server refused a new alert: too many of the person's recent ones are still on.
    TooManyAlerts,
    /// The recording is still stored, but no longer relayed live.
    NotLive,
}

impl Problem {
    /// Its message in `locales/*/sos.ftl`.
    pub fn message_id(self) -> &'static str {
        match self {
            Self::Storage => "sos-problem-storage",
            Self::TooManyAlerts => "sos-problem-too-many-alerts",
            Self::NotLive => "sos-problem-not-live",
        }
    }
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
    pub problem: RwSignal<Option<Problem>>,
    pub signed_out: RwSignal<bool>,
    /// The recorder finished after `Input::Flush` (or there was none).
    pub flushed: RwSignal<bool>,
    pub camera: RwSignal<Camera>,
    /// The latest fixes' times from taken to acknowledged, ms (the newest 200).
    pub fix_ack_ms: RwSignal<Vec<u32>>,
    /// The most media bytes a fix was sent behind (sent, not yet acknowledged).
    pub fix_behind_max: RwSignal<usize>,
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
            camera: RwSignal::new(Camera::Off),
            fix_ack_ms: RwSignal::new(Vec::new()),
            fix_behind_max: RwSignal::new(0),
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
    /// The camera could not be opened: record audio only.
    CameraFailed,
    /// The person switched the camera on or off.
    Camera(bool),
    Tick,
    /// Try held-back media again.
    Pump,
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
    /// The person wants the camera sent.
    camera: bool,
    /// The link could not carry it: audio only for now (since when the backlog is calm).
    camera_paused: bool,
    calm_since: Option<f64>,
    camera_failed: bool,
    /// The recorder is stopping to start again in another format.
    restarting: bool,
    /// Where the recorder's format changed: the first chunk seq of each format.
    formats: Vec<(u64, String)>,
    /// When each unacknowledged media chunk was sent on this connection.
    sent_at: VecDeque<(u64, f64)>,
    /// The smallest send-to-ack time seen lately (the link's delay without queueing).
    min_rtt_ms: f64,
    min_rtt_at: f64,
    /// Media recorded lately (time, bytes): the rate the link must carry.
    recorded: VecDeque<(f64, usize)>,
    /// When each unacknowledged fix was taken.
    fix_taken: VecDeque<(u64, f64)>,
    /// Media acknowledged lately (time, bytes), and the best delivery rate seen in the last
    /// 10 s (bytes per ms, when).
    delivered: VecDeque<(f64, usize)>,
    delivery_max: (f64, f64),
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
        camera: false,
        camera_paused: false,
        calm_since: None,
        camera_failed: false,
        restarting: false,
        formats: Vec::new(),
        sent_at: VecDeque::new(),
        min_rtt_ms: 100.0,
        min_rtt_at: 0.0,
        recorded: VecDeque::new(),
        fix_taken: VecDeque::new(),
        delivered: VecDeque::new(),
        delivery_max: (0.0, 0.0),
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
    let pump = tx.clone();
    set_interval(move || drop(pump.unbounded_send(Input::Pump)), PUMP_EVERY);
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
                    if std::mem::take(&mut e.restarting) {
                        e.restart_recorder(); // the wish changed while it was starting
                    }
                }
            }
            Input::Tick => e.tick(),
            Input::Pump => e.send_audio_backlog(),
            Input::Camera(on) => {
                e.camera = on;
                e.camera_failed = false;
                e.camera_paused = false;
                e.view.camera.set(if on { Camera::On } else { Camera::Off });
                e.restart_recorder();
            }
            Input::CameraFailed => {
                e.mic_starting = false;
                e.camera_failed = true;
                e.view.camera.set(Camera::Unavailable);
                e.start_mic();
            }
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
        self.view.problem.set(Some(Problem::Storage));
    }

    fn resume(&mut self, sos: ActiveSos) {
        self.view.hidden.set(sos.hidden);
        self.view.alert_id.set(sos.alert_id.clone());
        self.view.watch_url.set(sos.watch_url.clone());
        self.view.taken.set(Acks { fix: sos.next_fix - 1, audio: sos.next_audio - 1 });
        self.view.phase.set(Phase::Active);
        self.formats = sos.formats.clone();
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
            audio_mime: self
                .camera
                .then(sensors::pick_video_format)
                .flatten()
                .or_else(sensors::pick_audio_format)
                .map(str::to_owned),
            next_fix: 1,
            next_audio: 1,
            alert_id: None,
            watch_url: None,
            hidden: false,
            formats: Vec::new(),
        };
        // What was said of the last alert is not said of this one.
        if matches!(self.view.problem.get_untracked(), Some(Problem::TooManyAlerts | Problem::NotLive)) {
            self.view.problem.set(None);
        }
        self.fixes.clear();
        self.audio.clear();
        self.formats.clear();
        self.fix_taken.clear();
        self.view.fix_ack_ms.set(Vec::new());
        self.view.fix_behind_max.set(0);
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
        let camera = self.camera && !self.camera_paused && !self.camera_failed;
        let video = camera.then(sensors::pick_video_format).flatten();
        if camera && video.is_none() {
            self.camera_failed = true;
            self.view.camera.set(Camera::Unavailable);
        }
        let Some(mime) = video.map(str::to_owned).or_else(|| sensors::pick_audio_format().map(str::to_owned))
        else {
            self.view.mic.set(SensorState::Unavailable("sos-mic-unsupported"));
            return;
        };
        self.format_from_next_chunk(&mime);
        self.mic_starting = true;
        let sink = self.reading_sink();
        let tx = self.tx.clone();
        let with_camera = video.is_some();
        leptos::task::spawn_local(async move {
            match Mic::start(&mime, with_camera, sink).await {
                Some(mic) => drop(tx.unbounded_send(Input::MicReady(mic))),
                None if with_camera => drop(tx.unbounded_send(Input::CameraFailed)),
                None => {}
            }
        });
    }

    /// The recorder's chunks from the next one on are in `mime`: noted (the server hears of
    /// it by `media` right before that chunk) unless it is the format already in use.
    fn format_from_next_chunk(&mut self, mime: &str) {
        let Some(next) = self.sos.as_ref().map(|s| s.next_audio) else { return };
        // A format that never recorded a chunk (the camera refused right away) is replaced.
        if self.formats.last().is_some_and(|(first, _)| *first == next) {
            self.formats.pop();
        }
        let current = self
            .formats
            .last()
            .map(|(_, m)| m.as_str())
            .or(self.sos.as_ref().and_then(|s| s.audio_mime.as_deref()));
        if current != Some(mime) {
            self.formats.push((next, mime.to_owned()));
        }
        // Only the newest formats matter once earlier chunks are acked.
        if self.formats.len() > 32 {
            self.formats.remove(0);
        }
        if let Some(sos) = &mut self.sos {
            sos.formats = self.formats.clone();
            if let Some(store) = self.store.clone() {
                let sos = sos.clone();
                leptos::task::spawn_local(async move {
                    let _ = store.save(&sos).await;
                });
            }
        }
    }

    /// Stops the recorder to start it again in the format wanted now (camera on or off); the
    /// new one starts once the old one handed out its last data.
    fn restart_recorder(&mut self) {
        if self.sos.is_none() {
            return;
        }
        match &self.mic {
            Some(mic) => {
                self.restarting = true;
                mic.finish();
            }
            None if !self.mic_starting => self.start_mic(),
            None => self.restarting = true,
        }
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
                if self.view.problem.get_untracked() == Some(Problem::TooManyAlerts) {
                    self.view.problem.set(None); // taken after all
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
                    self.view.mic.set(SensorState::Unavailable("sos-mic-unsupported"));
                }
                "too_many_alerts" | "audio_not_live" => {
                    web_sys::console::warn_1(&format!("AlertMe: {code}: {detail}").into());
                    let p = if code == "too_many_alerts" { Problem::TooManyAlerts } else { Problem::NotLive };
                    self.view.problem.set(Some(p));
                }
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
        let now = now_ms();
        while let Some((seq, at)) = self.sent_at.front().copied().filter(|(s, _)| *s <= a.audio) {
            self.sent_at.pop_front();
            // Lately's smallest delay; forgotten after 30 s, as routes change.
            if now - self.min_rtt_at > 30_000.0 || now - at < self.min_rtt_ms {
                self.min_rtt_ms = (now - at).max(1.0);
                self.min_rtt_at = now;
            }
            let _ = seq;
        }
        let mut acked = Vec::new();
        while let Some((_, at)) = self.fix_taken.front().copied().filter(|(s, _)| *s <= a.fix) {
            self.fix_taken.pop_front();
            acked.push((now - at).round() as u32);
        }
        if !acked.is_empty() {
            self.view.fix_ack_ms.update(|v| {
                v.extend(acked);
                let over = v.len().saturating_sub(200);
                v.drain(..over);
            });
        }
        self.fixes.retain(|f| f.seq > a.fix);
        let mut bytes = 0;
        while let Some((_, b)) = self.audio.front().filter(|(s, _)| *s <= a.audio) {
            bytes += b.len();
            self.audio.pop_front();
        }
        if bytes > 0 {
            // The rate the link delivered over the last second.
            self.delivered.push_back((now, bytes));
            while self.delivered.front().is_some_and(|(t, _)| now - t > 1_000.0) {
                self.delivered.pop_front();
            }
            let rate = self.delivered.iter().map(|(_, b)| b).sum::<usize>() as f64 / 1_000.0;
            if rate >= self.delivery_max.0 || now - self.delivery_max.1 > 10_000.0 {
                self.delivery_max = (rate, now);
            }
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
        self.sent_at.clear();
        // The format of what is resent, if it is not `start`'s.
        let next = self.acks.audio + 1;
        if let Some((first, mime)) = self.formats.iter().rev().find(|(first, _)| *first <= next).cloned() {
            if first != next {
                self.send_text(&PhoneMsg::Media { mime });
            }
        }
        self.send_audio_backlog();
    }

    /// Sends the audio (or video) not sent on this connection yet, in order, while the
    /// socket's send buffer is nearly empty: fixes go out at once and must not queue behind
    /// media (the pump tries again every 100 ms).
    fn send_audio_backlog(&mut self) {
        if !self.started {
            return;
        }
        let Some(s) = self.socket.clone() else { return };
        let (window, mut in_flight) = (self.window(), self.in_flight());
        // Chunks are kept in seq order without gaps: the next one's place follows from the first.
        let Some(first) = self.audio.front().map(|(seq, _)| *seq) else { return };
        loop {
            let seq = self.audio_sent + 1;
            let Some(i) = seq.checked_sub(first).map(|i| i as usize).filter(|i| *i < self.audio.len()) else {
                return;
            };
            if self.audio[i].0 != seq || s.buffered_amount() > MEDIA_IN_FLIGHT || in_flight >= window {
                return;
            }
            if let Some((_, mime)) = self.formats.iter().rev().find(|(first, _)| *first == seq) {
                let m = PhoneMsg::Media { mime: mime.clone() };
                if !self.send_text(&m) {
                    return;
                }
            }
            if !s.send_binary(&encode_phone_chunk(seq, &self.audio[i].1)) {
                return;
            }
            in_flight += self.audio[i].1.len();
            self.audio_sent = seq;
            self.last_sent_ms = now_ms();
            self.sent_at.push_back((seq, self.last_sent_ms));
        }
    }

    /// Media bytes sent on this connection and not acknowledged yet: wherever they wait (the
    /// browser, the phone's network stack, a slow link), a fix sent now waits behind them.
    fn in_flight(&self) -> usize {
        self.audio
            .iter()
            .filter(|(seq, _)| *seq > self.acks.audio && *seq <= self.audio_sent)
            .map(|(_, b)| b.len())
            .sum()
    }

    /// How much media may be in flight: twice what the link carries (the best delivery rate
    /// lately, or the recorder's rate if higher) during its unqueued delay. So the link stays
    /// busy, a backlog after an outage drains at the link's speed, and a fix waits behind about
    /// one round trip of media, never seconds of video (a congestion window, as TCP keeps one,
    /// but counted to the server's ack).
    fn window(&self) -> usize {
        let now = now_ms();
        let bytes: usize = self.recorded.iter().filter(|(t, _)| now - t <= 5_000.0).map(|(_, b)| b).sum();
        let per_ms = (bytes as f64 / 5_000.0).max(self.delivery_max.0);
        ((2.0 * per_ms * self.min_rtt_ms) as usize).clamp(WINDOW_MIN, WINDOW_MAX)
    }

    /// Unacknowledged media bytes.
    fn media_backlog(&self) -> usize {
        self.audio.iter().filter(|(seq, _)| *seq > self.acks.audio).map(|(_, b)| b.len()).sum()
    }

    /// Once a second: the camera goes off when the link cannot carry it, and on again when
    /// the backlog stayed small for a while.
    fn balance_camera(&mut self) {
        if !self.camera || self.camera_failed || self.sos.is_none() {
            return;
        }
        let backlog = self.media_backlog();
        if !self.camera_paused && backlog > VIDEO_BACKLOG_MAX {
            self.camera_paused = true;
            self.calm_since = None;
            self.view.camera.set(Camera::Paused);
            self.restart_recorder();
        } else if self.camera_paused {
            if backlog > VIDEO_BACKLOG_CALM {
                self.calm_since = None;
            } else if self.calm_since.is_some_and(|t| now_ms() - t >= VIDEO_CALM_MS) {
                self.camera_paused = false;
                self.calm_since = None;
                self.view.camera.set(Camera::On);
                self.restart_recorder();
            } else if self.calm_since.is_none() {
                self.calm_since = Some(now_ms());
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
            Reading::MicFinished if self.restarting => {
                self.restarting = false;
                self.mic = None;
                self.start_mic();
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
        self.fix_taken.push_back((seq, now_ms()));
        if self.fix_taken.len() > 1_000 {
            self.fix_taken.pop_front();
        }
        if self.started {
            let behind = self.in_flight();
            self.view.fix_behind_max.update(|m| *m = (*m).max(behind));
            self.send_text(&PhoneMsg::Fix { fixes: vec![fix] });
        }
    }

    async fn on_audio(&mut self, blob: web_sys::Blob) {
        if self.sos.is_none() || self.audio_refused {
            return;
        }
        let Ok(buf) = JsFuture::from(blob.array_buffer()).await else { return };
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        self.recorded.push_back((now_ms(), bytes.len()));
        while self.recorded.front().is_some_and(|(t, _)| now_ms() - t > 5_000.0) {
            self.recorded.pop_front();
        }
        let video = self
            .formats
            .last()
            .map(|(_, m)| m.as_str())
            .or(self.sos.as_ref().and_then(|s| s.audio_mime.as_deref()))
            .is_some_and(|m| m.starts_with("video/"));
        let Some(sos) = &mut self.sos else { return };
        let pieces: Vec<(u64, Vec<u8>)> = bytes
            .chunks(if video { VIDEO_PIECE } else { MAX_CHUNK })
            .map(|piece| {
                let seq = sos.next_audio;
                sos.next_audio += 1;
                (seq, piece.to_vec())
            })
            .collect();
        let sos = sos.clone();
        if let Some(store) = &self.store {
            if let Err(e) = store.add_audio(&sos, &pieces).await {
                self.storage_problem(&e.0);
            }
        }
        if self.sos.is_none() {
            return; // it ended while the pieces were stored
        }
        if let Some((last, _)) = pieces.last() {
            self.view.taken.update(|t| t.audio = *last);
        }
        self.audio.extend(pieces);
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
        self.balance_camera();
        if self.record_at.is_some_and(|at| now_ms() >= at) {
            self.record_at = None;
            self.start_mic();
        }
        if self.view.link.get_untracked() == Link::Online && now_ms() - self.last_sent_ms >= PING_EVERY_MS {
            self.send_text(&PhoneMsg::Ping { t: Some(now_ms() as i64) });
        }
    }
}
