//! One alert followed live over the watch socket: signals the views read, fed by snapshot,
//! events and audio frames; reconnects resume from the last event.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use alertme_protocol::audio::{WatchHeader, KIND_INIT, KIND_UNIT};
use alertme_protocol::{AlertInfo, AlertStatus, Delivery, Fix, PhoneLink, WatchMsg};
use leptos::prelude::*;

use crate::api;
use crate::watch::audio::{Player, Support};
use crate::ws::{Event, Socket};

/// State of the watch socket as the page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// First connection under way.
    Connecting,
    /// Receiving live.
    Live,
    /// Lost the server; retrying.
    Reconnecting,
    /// The alert is over; nothing more will come.
    Ended,
    /// This link was withdrawn (the server closed with 4401); no retry.
    Revoked,
}

/// Everything the watch view draws. All fields are signals, so this is `Copy`.
#[derive(Clone, Copy)]
pub struct Live {
    /// The alert.
    pub alert: RwSignal<Option<AlertInfo>>,
    /// Fixes ordered by device time.
    pub trail: RwSignal<Vec<Fix>>,
    /// Phone link health.
    pub phone: RwSignal<PhoneLink>,
    /// Contacts' texts.
    pub deliveries: RwSignal<Vec<Delivery>>,
    /// Our socket.
    pub link: RwSignal<Link>,
    /// Browser time the newest fix arrived.
    pub fix_seen_ms: RwSignal<Option<f64>>,
    /// Live audio support.
    pub audio: RwSignal<Support>,
    /// Milliseconds after navigation when the first fix and the first audio were shown.
    pub first_fix_ms: RwSignal<Option<f64>>,
    /// See `first_fix_ms`.
    pub first_audio_ms: RwSignal<Option<f64>>,
    /// Frames decoded by the WebCodecs fallback.
    pub decoded_frames: RwSignal<u32>,
    /// The live recording has video (its current part is `video/…`): the page shows it.
    pub video: RwSignal<bool>,
}

impl Live {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            alert: RwSignal::new(None),
            trail: RwSignal::new(Vec::new()),
            phone: RwSignal::new(PhoneLink { connected: false, last_seen_ms: None }),
            deliveries: RwSignal::new(Vec::new()),
            link: RwSignal::new(Link::Connecting),
            fix_seen_ms: RwSignal::new(None),
            audio: RwSignal::new(Support::Unknown),
            first_fix_ms: RwSignal::new(None),
            first_audio_ms: RwSignal::new(None),
            decoded_frames: RwSignal::new(0),
            video: RwSignal::new(false),
        }
    }

    /// The newest fix by device time.
    pub fn current(&self) -> Option<Fix> {
        self.trail.with(|t| t.last().cloned())
    }

    fn apply(&self, m: WatchMsg, player: &Player, resume: &Resume) {
        match m {
            WatchMsg::Snapshot { epoch, ev, alert, phone, trail, audio, deliveries, .. } => {
                resume.epoch.replace(Some(epoch));
                resume.ev.set(ev);
                if !trail.is_empty() {
                    self.fix_seen_ms.set(Some(api::now_ms()));
                    if self.first_fix_ms.get_untracked().is_none() {
                        self.first_fix_ms.set(Some(api::since_navigation_ms()));
                    }
                }
                self.set_status(&alert);
                self.alert.set(Some(alert));
                self.phone.set(phone);
                self.trail.set(trail);
                self.deliveries.set(deliveries);
                if let Some(a) = audio {
                    self.video.set(a.mime.starts_with("video/"));
                    player.begin(a.part, &a.mime);
                }
            }
            WatchMsg::Resumed { .. } => {}
            WatchMsg::Fix { ev, fix } => {
                resume.ev.set(ev);
                self.trail.update(|t| {
                    if t.iter().any(|f| f.seq == fix.seq) {
                        return;
                    }
                    let at = t.partition_point(|x| (x.time_ms, x.seq) <= (fix.time_ms, fix.seq));
                    t.insert(at, fix);
                });
                self.fix_seen_ms.set(Some(api::now_ms()));
                if self.first_fix_ms.get_untracked().is_none() {
                    self.first_fix_ms.set(Some(api::since_navigation_ms()));
                }
            }
            WatchMsg::Alert { ev, alert } => {
                resume.ev.set(ev);
                self.set_status(&alert);
                self.alert.set(Some(alert));
            }
            WatchMsg::Phone { ev, phone } => {
                resume.ev.set(ev);
                self.phone.set(phone);
            }
            WatchMsg::Deliveries { ev, deliveries } => {
                resume.ev.set(ev);
                self.deliveries.set(deliveries);
            }
            WatchMsg::AudioPart { ev, part, mime } => {
                resume.ev.set(ev);
                self.video.set(mime.starts_with("video/"));
                player.begin(part, &mime);
            }
        }
    }

    fn set_status(&self, alert: &AlertInfo) {
        if alert.status != AlertStatus::Active {
            self.link.set(Link::Ended);
        }
    }
}

#[derive(Default)]
struct Resume {
    epoch: RefCell<Option<String>>,
    ev: Cell<u64>,
}

/// Opens the watch socket at `path_and_query` (`/v1/watch?token=…`) and keeps `live` and the
/// player fed until the alert ends.
pub fn follow(live: Live, path_and_query: String, audio: web_sys::HtmlMediaElement) -> (Socket, Player) {
    let player = Player::new(
        audio,
        move |s| live.audio.set(s),
        move || {
            if live.first_audio_ms.get_untracked().is_none() {
                live.first_audio_ms.set(Some(api::since_navigation_ms()));
            }
        },
        move |n| live.decoded_frames.set(n),
    );
    let handle = player.clone();
    let resume = Rc::new(Resume::default());
    let r = resume.clone();
    let url = move || {
        let base = api::ws_url(&path_and_query);
        match r.epoch.borrow().as_ref() {
            Some(epoch) => format!("{base}&epoch={epoch}&ev={}", r.ev.get()),
            None => base,
        }
    };
    let socket = Socket::open(url, move |e| match e {
        Event::Open => {
            live.link.set(Link::Live);
            true
        }
        Event::Text(t) => {
            match serde_json::from_str::<WatchMsg>(&t) {
                Ok(m) => live.apply(m, &player, &resume),
                Err(e) => web_sys::console::warn_1(&format!("unexpected message: {e}").into()),
            }
            true
        }
        Event::Binary(b) => {
            if let Some((h, payload)) = WatchHeader::parse(&b) {
                if h.ev > 0 {
                    resume.ev.set(resume.ev.get().max(h.ev));
                }
                match h.kind {
                    KIND_INIT => player.init(h.part, payload.to_vec()),
                    KIND_UNIT => player.push(h.part, payload.to_vec()),
                    _ => {}
                }
            }
            true
        }
        Event::Closed(code) => {
            if code == 4401 {
                live.link.set(Link::Revoked);
                false
            } else if code == 1000 || live.link.get_untracked() == Link::Ended {
                live.link.set(Link::Ended);
                false
            } else {
                live.link.set(Link::Reconnecting);
                true
            }
        }
    });
    (socket, handle)
}
