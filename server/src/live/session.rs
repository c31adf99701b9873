//! One live alert in memory: its trail, acks, audio demuxer, event ring and subscribers.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use alertme_protocol::audio::{WatchHeader, FLAG_SYNC, KIND_INIT, KIND_UNIT};
use alertme_protocol::{
    Acks, AlertInfo, AlertStatus, AlertSummary, AudioSnapshot, Delivery, Fix, Note, PhoneLink, ResponderMsg,
    WatchMsg,
};
use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use super::fanout::{encode_parts, Outlet, Outlets, Wire};
use super::trail::Trail;
use super::{Frame, Outbound, Published};
use crate::live::demux::{Container, Demuxer};

/// The replay ring keeps at most this many events for resuming watchers ...
const RING_MAX_EVENTS: usize = 1024;
/// ... and at most this many bytes of them.
const RING_MAX_BYTES: usize = 512 * 1024;
/// A late joiner gets audio from a sync point at least this far back.
const LATE_JOIN_AUDIO: Duration = Duration::from_secs(2);

/// One event as kept for resuming watchers: serialized once, its bytes shared by every replay.
#[derive(Debug)]
pub struct LiveEvent {
    /// Event number within the session's epoch.
    pub ev: u64,
    /// The ready-to-send frame.
    pub msg: Frame,
    at: Instant,
    audio: Option<AudioRef>,
}

#[derive(Debug, Clone, Copy)]
struct AudioRef {
    part: u16,
    sync: bool,
    unit: u64,
}

/// What a mirror asks of its watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Its feed had a gap and it started over: take a fresh snapshot.
    Resync,
    /// It lost its feed for good: close (1012) so that the watcher reconnects and resumes.
    Reconnect,
}

/// A watcher on this node: its outlet gets every event after the snapshot (or the replay) it
/// started with, until it is dropped.
pub struct Watch {
    session: Arc<Session>,
    /// Where its frames go.
    pub outlet: Arc<Outlet>,
}

impl Watch {
    /// Stops publishing to this watcher (it no longer counts as one); its outlet stays usable
    /// for what the task still writes (a close frame).
    pub fn into_outlet(self) -> Arc<Outlet> {
        self.outlet.clone()
    }

    /// Starts the watcher over from a fresh snapshot (it fell behind, or its mirror started over).
    pub fn resync(&self) {
        let mut st = self.session.lock();
        let frames = self.session.snapshot(&mut st, true);
        self.outlet.restart(frames.iter().map(encode_parts));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.session.outlets.remove(&self.outlet);
    }
}

struct AudioLive {
    part: u16,
    mime: String,
    demux: Demuxer,
    /// The part's init segment, once known (from the demuxer, or a mirror's feed).
    init: Option<Bytes>,
    next_unit: u64,
}

struct State {
    /// Id of this run of events; watchers resume only within the same epoch. A cluster's new
    /// owner continues its predecessor's epoch and numbering.
    epoch: String,
    /// A mirror honours resumes only from here on (it holds no events before its snapshot).
    resume_floor: u64,
    /// A mirror's highest owner fence seen: events of older owners are dropped.
    fence_seen: i64,
    info: AlertInfo,
    trail: Trail,
    fix_contig: u64,
    fix_above: BTreeSet<u64>,
    audio_acked: u64,
    /// Fixes already shown to watchers (relayed on arrival, before they are durable).
    relayed: BTreeSet<u64>,
    /// Highest audio chunk relayed, and the bytes relayed into the current part.
    relayed_audio: u64,
    relayed_part_bytes: u64,
    audio: Option<AudioLive>,
    phone: PhoneLink,
    last_heard: Option<Instant>,
    /// Since when the phone has been shown as lost.
    lost_since: Option<Instant>,
    ev: u64,
    ring: VecDeque<Arc<LiveEvent>>,
    ring_bytes: usize,
    last_responder_update: Option<Instant>,
    deliveries: Vec<Delivery>,
    notes: Vec<Note>,
}

impl State {
    /// Nothing stored, relayed or heard yet: event `ev` of `epoch` was the last one.
    fn new(epoch: String, info: AlertInfo, ev: u64) -> Self {
        State {
            epoch,
            resume_floor: 0,
            fence_seen: 0,
            info,
            trail: Trail::default(),
            fix_contig: 0,
            fix_above: BTreeSet::new(),
            audio_acked: 0,
            relayed: BTreeSet::new(),
            relayed_audio: 0,
            relayed_part_bytes: 0,
            audio: None,
            phone: PhoneLink { connected: false, last_seen_ms: None },
            last_heard: None,
            lost_since: None,
            ev,
            ring: VecDeque::new(),
            ring_bytes: 0,
            last_responder_update: None,
            deliveries: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// A live alert. Cheap to share (`Arc<Session>`); the lock is only held for short, non-async work.
pub struct Session {
    /// Alert id.
    pub alert_id: String,
    /// The alert's owner.
    pub user_id: String,
    /// In a cluster: the fencing number this node owns the alert with (its writes are refused
    /// once another node took the alert over).
    pub fence: Option<i64>,
    /// A mirror follows another node's session (see [`Session::mirror`]); it never ingests.
    pub is_mirror: bool,
    /// Where published events and console updates also go, in a cluster.
    outbound: Option<tokio::sync::mpsc::Sender<Outbound>>,
    /// Watchers on other nodes, by node, as they last reported (cluster only).
    remote_watchers: Mutex<std::collections::HashMap<String, (usize, Instant)>>,
    /// A mirror whose feed ended: nobody may start watching it, and who does reconnects.
    dead: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    /// This node's watchers (locked after `state` when both are).
    outlets: Outlets,
    acks: watch::Sender<Acks>,
    status: watch::Sender<AlertStatus>,
    /// Contacts' delivery state, for the phone's own socket.
    deliveries: watch::Sender<Vec<Delivery>>,
    /// Serializes reloads of the delivery state, so a slow, older reload can never overwrite a
    /// newer one.
    pub deliveries_reload: tokio::sync::Mutex<()>,
    /// Id of the phone connection currently streaming into this alert; older ones close.
    owner: watch::Sender<u64>,
    responders: broadcast::Sender<Frame>,
}

/// The stored part an alert's audio continues in, as much of it as a snapshot needs.
#[derive(Debug, Clone)]
pub struct RestoredPart {
    /// Part number.
    pub part: u16,
    /// Its MIME type.
    pub mime: String,
    /// Its stored length.
    pub len: u64,
    /// Its first bytes (the recorder's init segment is in there) ...
    pub head: Vec<u8>,
    /// ... and its last bytes (the late-join window); empty when `head` is the whole part.
    pub tail: Vec<u8>,
}

/// What is loaded from the database to bring a session up.
pub struct SessionSeed {
    /// Alert summary.
    pub info: AlertInfo,
    /// Owner.
    pub user_id: String,
    /// Stored fixes.
    pub trail: Vec<Fix>,
    /// Seqs of fixes that were refused (consumed, acknowledged).
    pub refused: Vec<u64>,
    /// Highest stored audio seq (all below are stored too).
    pub audio_acked: u64,
    /// What the late-join window needs of the current audio part.
    pub audio_part: Option<RestoredPart>,
    /// Responders' notes so far.
    pub notes: Vec<Note>,
    /// In a cluster: this node's ownership.
    pub owned: Option<Owned>,
}

/// What a cluster node knows when it takes an alert over.
#[derive(Debug, Clone, Default)]
pub struct Owned {
    /// Its fencing number.
    pub fence: i64,
    /// The epoch and last event number its predecessor published, to continue from.
    pub after: Option<(String, u64)>,
    /// Fixes the stream shows its predecessor published lately (seqs). Stored fixes above the
    /// lowest of them that are not among them were committed but never published (the
    /// predecessor died in between): the new owner publishes them.
    pub shown: Option<BTreeSet<u64>>,
    /// The last audio units the stream shows its predecessor published (their part, payloads in
    /// order). Stored units after them were committed but never published: the new owner
    /// publishes them, so that watchers hear no hole.
    pub heard: Option<(u16, Vec<Bytes>)>,
}

/// Where the bytes a predecessor published end in `bytes` (restored, of the same part): after the
/// last place its last published units appear, back to back (a unit is a run of the part's own
/// bytes). None found: everything counts as heard (a unit twice would be worse than one missed).
fn heard_end(bytes: &[u8], heard: Option<&(u16, Vec<Bytes>)>) -> Option<usize> {
    let pattern: Vec<u8> = heard?.1.concat();
    if pattern.is_empty() || pattern.len() > bytes.len() {
        return None;
    }
    (0..=bytes.len() - pattern.len())
        .rev()
        .find(|&i| bytes[i] == pattern[0] && bytes[i..i + pattern.len()] == pattern[..])
        .map(|i| i + pattern.len())
}

impl Session {
    pub(crate) fn new(
        seed: SessionSeed,
        responders: broadcast::Sender<Frame>,
        outbound: Option<tokio::sync::mpsc::Sender<Outbound>>,
    ) -> Self {
        let (epoch, ev) = match seed.owned.as_ref().and_then(|o| o.after.clone()) {
            Some((epoch, ev)) => (epoch, ev),
            None => (uuid::Uuid::new_v4().simple().to_string(), 0),
        };
        let mut st = State::new(epoch, seed.info, ev);
        st.audio_acked = seed.audio_acked;
        st.relayed_audio = seed.audio_acked;
        st.notes = seed.notes;
        let mut above = Vec::new();
        for f in seed.trail {
            if f.seq == 0 || mark_stored(&mut st, f.seq) {
                above.push(f.seq);
                st.trail.insert(f);
            }
        }
        // After the fixes: a seq both stored and refused stays in the trail.
        for seq in seed.refused {
            mark_stored(&mut st, seq);
        }
        // Stored fixes above a gap will be sent again by the phone (its ack stops at the gap):
        // they were shown already and must not reach watchers twice.
        st.relayed = above.into_iter().filter(|&seq| seq > st.fix_contig).collect();
        let mut unheard = Vec::new();
        if let Some(RestoredPart { part, mime, len, head, tail }) = seed.audio_part {
            st.relayed_part_bytes = len;
            if let Some(c) = Container::from_mime(&mime) {
                let heard = seed.owned.as_ref().and_then(|o| o.heard.as_ref()).filter(|(p, _)| *p == part);
                // The restored bytes go in up to where the predecessor's last published units
                // end (history); what follows was stored but never published (unheard).
                let mut push =
                    |demux: &mut Demuxer, bytes: &[u8], units: &mut Vec<_>| match heard_end(bytes, heard) {
                        Some(end) => {
                            units.extend(demux.push(&bytes[..end]));
                            unheard = demux.push(&bytes[end..]);
                        }
                        None => units.extend(demux.push(bytes)),
                    };
                let mut demux = Demuxer::new(c);
                let mut units = Vec::new();
                if tail.is_empty() {
                    push(&mut demux, &head, &mut units);
                } else {
                    // Only the end of a long part was read: a fresh demuxer gets the init
                    // segment, then the tail from its first unit boundary.
                    demux.push(&head);
                    let init = demux.init().cloned();
                    demux = Demuxer::new(c);
                    units = init.map(|i| demux.push(&i)).unwrap_or_default();
                    if let Some(at) = c.first_boundary(&tail) {
                        push(&mut demux, &tail[at..], &mut units);
                    }
                }
                let init = demux.init().cloned();
                let mut a = AudioLive { part, mime, demux, init, next_unit: 0 };
                let now = Instant::now();
                for u in units {
                    // Restored units predate this process: they seed the late-join ring only,
                    // numbered as already seen (a watcher's position never points into them).
                    push_unit(&mut st, &mut a, u, now, None);
                }
                st.audio = Some(a);
            }
        }
        let acks = Acks { fix: st.fix_contig, audio: st.audio_acked };
        let status = st.info.status;
        // Restored units re-numbered events: a successor resumes after its predecessor's last.
        st.resume_floor = st.ev;
        if seed.owned.is_some() {
            // Taken over without its phone (yet): counted as lost from now, so that a phone that
            // never comes back gets its contacts texted after the usual silence.
            st.lost_since = Some(Instant::now());
        }
        let unshown: Vec<Fix> = match seed.owned.as_ref().and_then(|o| o.shown.as_ref()) {
            Some(shown) => match shown.first() {
                Some(&low) => st
                    .trail
                    .snapshot()
                    .into_iter()
                    .filter(|f| f.seq > low && !shown.contains(&f.seq))
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let session = Self {
            alert_id: st.info.id.clone(),
            user_id: seed.user_id,
            fence: seed.owned.as_ref().map(|o| o.fence),
            is_mirror: false,
            outbound: if seed.owned.is_some() { outbound } else { None },
            remote_watchers: Mutex::default(),
            dead: Default::default(),
            state: Mutex::new(st),
            outlets: Outlets::default(),
            acks: watch::channel(acks).0,
            status: watch::channel(status).0,
            owner: watch::channel(0).0,
            deliveries: watch::channel(Vec::new()).0,
            deliveries_reload: tokio::sync::Mutex::new(()),
            responders,
        };
        if !unshown.is_empty() {
            let mut st = session.lock();
            for f in unshown {
                let m = WatchMsg::Fix { ev: st.ev + 1, fix: f };
                session.publish(&mut st, json(&m), None);
            }
        }
        if !unheard.is_empty() {
            let mut st = session.lock();
            if let Some(mut a) = st.audio.take() {
                let now = Instant::now();
                for u in unheard {
                    push_unit(&mut st, &mut a, u, now, Some(&session));
                }
                st.audio = Some(a);
            }
        }
        session
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug; keep serving rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current acks, and a receiver that wakes when they move.
    pub fn acks(&self) -> watch::Receiver<Acks> {
        self.acks.subscribe()
    }

    /// Contacts' delivery state, and a receiver that wakes when it changes.
    pub fn deliveries(&self) -> watch::Receiver<Vec<Delivery>> {
        self.deliveries.subscribe()
    }

    /// Current status, and a receiver that wakes when it changes.
    pub fn status(&self) -> watch::Receiver<AlertStatus> {
        self.status.subscribe()
    }

    /// Makes `conn` the phone connection of this alert; returns a receiver that tells older
    /// connections they were superseded.
    pub fn take_ownership(&self, conn: u64) -> watch::Receiver<u64> {
        self.owner.send_replace(conn);
        self.owner.subscribe()
    }

    /// The phone connection currently streaming into this alert.
    pub fn owner(&self) -> u64 {
        *self.owner.borrow()
    }

    /// How long the phone has been lost (`None` while connected or never heard from).
    pub fn silent_for(&self) -> Option<Duration> {
        self.lock().lost_since.map(|t| t.elapsed())
    }

    /// Alert summary now.
    pub fn info(&self) -> AlertInfo {
        self.lock().info.clone()
    }

    /// Who claimed the alert (the phone's audience poll asks every second; no whole clone).
    pub fn claimed_by(&self) -> Option<String> {
        self.lock().info.claimed_by.clone()
    }

    /// Summary for the responder console.
    pub fn summary(&self) -> AlertSummary {
        let st = self.lock();
        summary_of(&st)
    }

    /// Shows newly arrived fixes to watchers at once (they are stored in parallel; the phone's
    /// ack waits for the commit, watchers need not).
    pub fn fixes_received(&self, fixes: &[Fix]) {
        if self.relays_when_stored() {
            return;
        }
        let mut st = self.lock();
        self.relay_fixes(&mut st, fixes);
    }

    fn relay_fixes(&self, st: &mut State, fixes: &[Fix]) {
        let mut any = false;
        for f in fixes {
            // Stored ones (at or below the ack) were relayed when they arrived.
            if f.seq <= st.fix_contig || !st.relayed.insert(f.seq) {
                continue;
            }
            st.trail.insert(f.clone());
            let m = WatchMsg::Fix { ev: st.ev + 1, fix: f.clone() };
            self.publish(st, json(&m), None);
            any = true;
        }
        if any {
            let now = Instant::now();
            if st.last_responder_update.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                st.last_responder_update = Some(now);
                self.tell_responders(st);
            }
        }
    }

    /// Records fixes that are now durable: moves the acks (and relays any not shown yet).
    pub fn fixes_stored(&self, fixes: &[Fix]) {
        let mut st = self.lock();
        self.relay_fixes(&mut st, fixes);
        for f in fixes {
            mark_stored(&mut st, f.seq);
        }
        // Relayed seqs at or below the ack need not be remembered (see `relay_fixes`).
        let above = st.fix_contig + 1;
        st.relayed = st.relayed.split_off(&above);
        let acks = Acks { fix: st.fix_contig, audio: st.audio_acked };
        drop(st);
        self.acks.send_if_modified(|a| std::mem::replace(a, acks) != acks);
    }

    /// Records that fix `seq` was refused and its refusal stored: the seq is consumed and the
    /// cumulative ack may move past it.
    pub fn fix_refused(&self, seq: u64) {
        let mut st = self.lock();
        mark_stored(&mut st, seq);
        let acks = Acks { fix: st.fix_contig, audio: st.audio_acked };
        drop(st);
        self.acks.send_if_modified(|a| std::mem::replace(a, acks) != acks);
    }

    /// Relays a newly arrived audio chunk if it is the next one, cutting whole units from it.
    /// Parts follow the writer's rule (a new recorder header after stored bytes starts a new
    /// part), so the relayed and the stored numbering agree.
    /// Returns false once the stream cannot be relayed live (it is still stored).
    pub fn audio_received(&self, seq: u64, mime: &str, bytes: &[u8]) -> bool {
        if self.relays_when_stored() {
            return self.lock().audio.as_ref().is_none_or(|a| a.demux.is_healthy());
        }
        let mut st = self.lock();
        self.relay_audio(&mut st, seq, mime, bytes);
        st.audio.as_ref().is_none_or(|a| a.demux.is_healthy())
    }

    fn relay_audio(&self, st: &mut State, seq: u64, mime: &str, bytes: &[u8]) {
        if seq != st.relayed_audio + 1 {
            return; // a duplicate, or ahead of a gap the writer will report
        }
        let Some(container) = Container::from_mime(mime) else { return };
        st.relayed_audio = seq;
        let part = match &st.audio {
            None => Some(0),
            Some(a) if st.relayed_part_bytes > 0 && container.starts_recording(bytes) => Some(a.part + 1),
            Some(_) => None,
        };
        if let Some(part) = part {
            st.relayed_part_bytes = 0;
            let demux = Demuxer::new(container);
            st.audio = Some(AudioLive { part, mime: mime.to_owned(), demux, init: None, next_unit: 0 });
            let m = WatchMsg::AudioPart { ev: st.ev + 1, part, mime: mime.to_owned() };
            self.publish(st, json(&m), None);
        }
        st.relayed_part_bytes += bytes.len() as u64;
        if let Some(mut a) = st.audio.take() {
            let had_init = a.demux.init().is_some();
            let units = a.demux.push(bytes);
            if !had_init {
                if let Some(init) = a.demux.init().cloned() {
                    let h = WatchHeader { kind: KIND_INIT, flags: 0, part: a.part, ev: st.ev + 1 };
                    let msg = Frame::Binary(Bytes::from(h.frame(&init)));
                    a.init = Some(init);
                    self.publish(st, msg, None);
                }
            }
            let now = Instant::now();
            for u in units {
                push_unit(st, &mut a, u, now, Some(self));
            }
            st.audio = Some(a);
        }
    }

    /// Records an audio chunk that is now durable: moves the ack (and relays it if not yet).
    pub fn audio_stored(&self, seq: u64, mime: &str, bytes: &[u8]) {
        let mut st = self.lock();
        if seq <= st.audio_acked {
            return;
        }
        self.relay_audio(&mut st, seq, mime, bytes);
        st.audio_acked = seq;
        let acks = Acks { fix: st.fix_contig, audio: st.audio_acked };
        drop(st);
        self.acks.send_if_modified(|a| std::mem::replace(a, acks) != acks);
    }

    /// Notes that the phone was heard from; publishes "connected" when it had been lost.
    pub fn phone_heard(&self, now_ms: i64) {
        let mut st = self.lock();
        st.last_heard = Some(Instant::now());
        st.lost_since = None;
        st.phone.last_seen_ms = Some(now_ms);
        if !st.phone.connected {
            st.phone.connected = true;
            self.publish_phone(&mut st);
        }
    }

    /// Marks the phone lost if it was not heard from within `silence`. Returns true when the
    /// state changed.
    pub fn phone_check(&self, silence: Duration) -> bool {
        let mut st = self.lock();
        let silent = st.last_heard.is_none_or(|t| t.elapsed() >= silence);
        if st.phone.connected && silent {
            st.phone.connected = false;
            st.lost_since = Some(Instant::now());
            self.publish_phone(&mut st);
            return true;
        }
        false
    }

    fn publish_phone(&self, st: &mut State) {
        let m = WatchMsg::Phone { ev: st.ev + 1, phone: st.phone.clone() };
        self.publish(st, json(&m), None);
        self.tell_responders(st);
    }

    /// Replaces the contacts' delivery state and tells everyone when it changed.
    pub fn set_deliveries(&self, deliveries: Vec<Delivery>) {
        let mut st = self.lock();
        if st.deliveries == deliveries {
            return;
        }
        st.deliveries = deliveries.clone();
        self.deliveries.send_replace(deliveries.clone());
        let m = WatchMsg::Deliveries { ev: st.ev + 1, deliveries };
        self.publish(&mut st, json(&m), None);
        self.tell_responders(&st);
    }

    /// Adds a responder's note and tells the consoles (not the contacts' watch pages).
    pub fn add_note(&self, note: Note) {
        let mut st = self.lock();
        st.notes.push(note);
        self.tell_responders(&st);
    }

    /// Replaces the notes (as stored) and tells the consoles when they changed.
    pub fn set_notes(&self, notes: Vec<Note>) {
        let mut st = self.lock();
        if st.notes != notes {
            st.notes = notes;
            self.tell_responders(&st);
        }
    }

    /// Applies a new status or claim and tells everyone.
    pub fn update_info(&self, f: impl FnOnce(&mut AlertInfo)) {
        let mut st = self.lock();
        let before = st.info.clone();
        f(&mut st.info);
        if st.info == before {
            return;
        }
        let m = WatchMsg::Alert { ev: st.ev + 1, alert: st.info.clone() };
        self.publish(&mut st, json(&m), None);
        self.tell_responders(&st);
        let status = st.info.status;
        drop(st);
        self.status.send_if_modified(|s| std::mem::replace(s, status) != status);
    }

    fn tell_responders(&self, st: &State) {
        if self.is_mirror {
            return; // the owner tells every node's consoles
        }
        let m = json(&ResponderMsg::Update { alert: summary_of(st) });
        if let Some(out) = &self.outbound {
            send_out(out, Outbound::Console(m.clone()));
        }
        let _ = self.responders.send(m);
    }

    /// Tells every console how this alert stands.
    pub fn announce(&self) {
        let st = self.lock();
        self.tell_responders(&st);
    }

    /// Tells the other nodes' consoles how this alert stands (an owner repeats it, so that a
    /// node started later lists every alert).
    pub fn announce_to_cluster(&self) {
        if let Some(out) = &self.outbound {
            let st = self.lock();
            send_out(out, Outbound::Console(json(&ResponderMsg::Update { alert: summary_of(&st) })));
        }
    }

    fn publish(&self, st: &mut State, msg: Frame, audio: Option<AudioRef>) {
        // Built before the ring may drop it again (an event bigger than the ring's bytes).
        let out = self.outbound.as_ref().map(|out| (out, msg.clone()));
        let ev = publish(st, &self.outlets, msg, audio, Instant::now());
        if let Some((out, frame)) = out {
            let p = Published {
                alert_id: self.alert_id.clone(),
                epoch: st.epoch.clone(),
                fence: self.fence.unwrap_or(0),
                ev,
                frame,
                unit: audio.map(|a| a.unit),
            };
            send_out(out, Outbound::Event(p));
        }
    }

    /// A cluster owner relays only what is durable: whoever takes the alert over next knows
    /// from the database exactly what watchers were shown, and continues without repeating or
    /// skipping anything (docs/cluster.md). One server relays on arrival, a commit sooner.
    fn relays_when_stored(&self) -> bool {
        self.outbound.is_some()
    }

    /// The epoch of this run of events.
    pub fn epoch(&self) -> String {
        self.lock().epoch.clone()
    }

    /// The epoch and number of the last event published.
    pub fn position(&self) -> (String, u64) {
        let st = self.lock();
        (st.epoch.clone(), st.ev)
    }

    /// Adds a watcher writing to `wire`. With `resume = (epoch, ev)` from an earlier connection,
    /// it first gets what it missed when this session still holds it; otherwise a snapshot
    /// (flagged `resync` when a resume was asked for but cannot be honoured). Every event after
    /// those frames follows, as it is published.
    pub fn watch(self: &Arc<Self>, resume: Option<(&str, u64)>, wire: Arc<dyn Wire>) -> Watch {
        let mut st = self.lock();
        let frames = self.start(&mut st, resume);
        let outlet = Outlet::new(wire, frames.iter().map(encode_parts));
        self.outlets.add(outlet.clone());
        Watch { session: self.clone(), outlet }
    }

    /// The frames a watcher starts with (see [`Session::watch`]).
    #[cfg(test)]
    pub fn subscribe(&self, resume: Option<(&str, u64)>) -> Vec<Frame> {
        let mut st = self.lock();
        self.start(&mut st, resume)
    }

    fn start(&self, st: &mut State, resume: Option<(&str, u64)>) -> Vec<Frame> {
        if let Some((epoch, ev)) = resume {
            let held = st.ring.front().map_or(st.ev, |e| e.ev.saturating_sub(1)).max(st.resume_floor);
            if epoch == st.epoch && ev <= st.ev && ev >= held {
                let mut frames = vec![json(&WatchMsg::Resumed { epoch: st.epoch.clone(), from_ev: ev + 1 })];
                frames.extend(st.ring.iter().filter(|e| e.ev > ev).map(|e| e.msg.clone()));
                return frames;
            }
        }
        self.snapshot(st, resume.is_some())
    }

    /// A fresh snapshot (what a mirror starts from).
    pub fn snapshot_now(&self) -> Vec<Frame> {
        let mut st = self.lock();
        self.snapshot(&mut st, true)
    }

    fn snapshot(&self, st: &mut State, resync: bool) -> Vec<Frame> {
        let mut audio_frames = Vec::new();
        let audio = st.audio.as_ref().map(|a| {
            if let Some(init) = &a.init {
                let h = WatchHeader { kind: KIND_INIT, flags: 0, part: a.part, ev: 0 };
                audio_frames.push(Frame::Binary(Bytes::from(h.frame(init))));
            }
            let units: Vec<(&Arc<LiveEvent>, AudioRef)> =
                st.ring.iter().filter_map(|e| e.audio.filter(|r| r.part == a.part).map(|r| (e, r))).collect();
            let cutoff = Instant::now().checked_sub(LATE_JOIN_AUDIO);
            // Start at the earliest sync point inside the window, else the newest sync point.
            let start = units
                .iter()
                .position(|(e, r)| r.sync && cutoff.is_none_or(|c| e.at >= c))
                .or_else(|| units.iter().rposition(|(_, r)| r.sync));
            let from = start.map_or(units.len(), |i| i);
            let first_unit = units.get(from).map_or(a.next_unit, |(_, r)| r.unit);
            for (e, _) in &units[from..] {
                audio_frames.push(e.msg.clone());
            }
            AudioSnapshot {
                part: a.part,
                mime: a.mime.clone(),
                first_unit,
                units: (units.len() - from) as u64,
            }
        });
        let snap = WatchMsg::Snapshot {
            epoch: st.epoch.clone(),
            ev: st.ev,
            resync,
            alert: st.info.clone(),
            phone: st.phone.clone(),
            trail: st.trail.snapshot(),
            audio,
            deliveries: st.deliveries.clone(),
        };
        let mut frames = vec![json(&snap)];
        frames.extend(audio_frames);
        frames
    }

    /// Number of watchers: this node's subscriptions, and in a cluster those other nodes
    /// reported within the last few seconds.
    pub fn watchers(&self) -> usize {
        let remote = self.remote_watchers.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = remote.values().filter(|(_, at)| at.elapsed() < REMOTE_WATCHERS_FRESH).map(|(n, _)| n);
        self.outlets.count() + fresh.sum::<usize>()
    }

    /// Watchers on this node only.
    pub fn local_watchers(&self) -> usize {
        self.outlets.count()
    }

    /// Another node's count of watchers of this alert.
    pub fn remote_watchers(&self, node: &str, count: usize) {
        let mut remote = self.remote_watchers.lock().unwrap_or_else(|e| e.into_inner());
        remote.retain(|_, (_, at)| at.elapsed() < REMOTE_WATCHERS_FRESH);
        if count == 0 {
            remote.remove(node);
        } else if remote.len() < MAX_NODES || remote.contains_key(node) {
            remote.insert(node.to_owned(), (count, Instant::now()));
        }
    }

    /// Makes this session stop taking the phone's data: its phone connection closes as
    /// superseded (another node took the alert over).
    pub fn disown(&self) {
        self.owner.send_replace(u64::MAX);
    }

    /// A mirror of another node's session, from the frames of the owner's snapshot. Its
    /// watchers get the same events with the same numbers as the owner's, fed by [`Session::apply`].
    pub fn mirror(alert_id: &str, frames: &[Frame], fence: i64) -> Result<Self, BadSnapshot> {
        let st = mirror_state(frames, fence)?;
        let status = st.info.status;
        let deliveries = st.deliveries.clone();
        Ok(Self {
            alert_id: alert_id.to_owned(),
            user_id: String::new(),
            fence: None,
            is_mirror: true,
            outbound: None,
            remote_watchers: Mutex::default(),
            dead: Default::default(),
            state: Mutex::new(st),
            outlets: Outlets::default(),
            acks: watch::channel(Acks::default()).0,
            status: watch::channel(status).0,
            owner: watch::channel(0).0,
            deliveries: watch::channel(deliveries).0,
            deliveries_reload: tokio::sync::Mutex::new(()),
            responders: broadcast::channel(1).0,
        })
    }

    /// Starts a mirror over from a new snapshot (its feed had a gap): its watchers are told to
    /// take a fresh snapshot.
    pub fn reset(&self, frames: &[Frame], fence: i64) -> Result<(), BadSnapshot> {
        let fresh = mirror_state(frames, fence)?;
        let status = fresh.info.status;
        let deliveries = fresh.deliveries.clone();
        let mut st = self.lock();
        *st = fresh;
        // Under the lock: no event of the new run is published before the watchers are held.
        self.call(Call::Resync);
        drop(st);
        self.deliveries.send_replace(deliveries);
        self.status.send_if_modified(|s| std::mem::replace(s, status) != status);
        Ok(())
    }

    /// Gives a new mirror the owner's events that led up to its snapshot (read back from the
    /// stream, oldest first, each with its age), so that watchers coming from another node can
    /// resume from before it. Only an unbroken run ending at the snapshot is taken, and only if
    /// it covers the late-join audio the snapshot brought.
    pub fn backfill(&self, events: Vec<(Published, Duration)>) {
        let mut st = self.lock();
        let upto = st.resume_floor;
        let mut run: Vec<&(Published, Duration)> = Vec::new();
        for e in events.iter().rev().filter(|(p, _)| p.epoch == st.epoch && p.ev <= upto) {
            let want = run.last().map_or(upto, |(p, _): &&(Published, Duration)| p.ev - 1);
            if e.0.ev != want {
                break;
            }
            run.push(e);
        }
        let Some(first) = run.last().map(|(p, _)| p.ev) else { return };
        if st.ring.front().is_some_and(|e| e.ev < first) {
            return; // the snapshot's audio reaches further back than the stream
        }
        let now = Instant::now();
        let mut older: VecDeque<Arc<LiveEvent>> = VecDeque::new();
        for (p, age) in run.into_iter().rev() {
            let audio = match &p.frame {
                Frame::Binary(b) => {
                    WatchHeader::parse(b).filter(|(h, _)| h.kind == KIND_UNIT).map(|(h, _)| AudioRef {
                        part: h.part,
                        sync: h.flags & FLAG_SYNC != 0,
                        unit: p.unit.unwrap_or(0),
                    })
                }
                Frame::Text(_) => None,
            };
            let at = now.checked_sub(*age).unwrap_or(now);
            older.push_back(Arc::new(LiveEvent { ev: p.ev, msg: p.frame.clone(), at, audio }));
        }
        let newer: Vec<Arc<LiveEvent>> = st.ring.drain(..).filter(|e| e.ev > upto).collect();
        older.extend(newer);
        st.ring_bytes = older.iter().map(|e| e.msg.len()).sum();
        st.ring = older;
        while st.ring.len() > RING_MAX_EVENTS || st.ring_bytes > RING_MAX_BYTES {
            let Some(old) = st.ring.pop_front() else { break };
            st.ring_bytes -= old.msg.len();
        }
        st.resume_floor = st.ring.front().map_or(upto, |e| e.ev.saturating_sub(1)).min(upto);
    }

    /// A mirror's feed ended: its watchers reconnect, and nobody starts watching it.
    pub fn mark_dead(&self) {
        self.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        self.call(Call::Reconnect);
    }

    /// True once [`Session::mark_dead`] was called.
    pub fn is_dead(&self) -> bool {
        self.dead.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells this node's watchers of a mirror what to do (see [`Call`]).
    pub fn call(&self, call: Call) {
        self.outlets.call(call);
    }

    /// Applies one event of the owner's to a mirror. Events arrive in the owner's order; one
    /// from an older owner (lower fence) is dropped; anything else out of sequence is a gap,
    /// and the caller resets the mirror from a new snapshot.
    pub fn apply(&self, p: &Published) -> Applied {
        let mut st = self.lock();
        if p.fence < st.fence_seen || (p.epoch == st.epoch && p.ev <= st.ev && p.fence == st.fence_seen) {
            return Applied::Stale;
        }
        // A newer owner reusing numbers this mirror already has (it started from a stale
        // position) is out of sequence too: a gap.
        if p.epoch != st.epoch || p.ev != st.ev + 1 {
            return Applied::Gap;
        }
        st.fence_seen = p.fence;
        let mut audio = None;
        match &p.frame {
            Frame::Text(t) => match serde_json::from_slice::<WatchMsg>(t) {
                Ok(WatchMsg::Fix { fix, .. }) => st.trail.insert(fix),
                Ok(WatchMsg::Alert { alert, .. }) => st.info = alert,
                Ok(WatchMsg::Phone { phone, .. }) => st.phone = phone,
                Ok(WatchMsg::Deliveries { deliveries, .. }) => {
                    st.deliveries = deliveries.clone();
                    self.deliveries.send_replace(deliveries);
                }
                Ok(WatchMsg::AudioPart { part, mime, .. }) => {
                    let demux = Demuxer::new(Container::from_mime(&mime).unwrap_or(Container::Adts));
                    st.audio = Some(AudioLive { part, mime, demux, init: None, next_unit: 0 });
                }
                Ok(_) => {}
                Err(_) => return Applied::Gap,
            },
            Frame::Binary(b) => {
                let Some((h, payload)) = WatchHeader::parse(b) else { return Applied::Gap };
                if let Some(a) = st.audio.as_mut().filter(|a| a.part == h.part) {
                    if h.kind == KIND_INIT {
                        a.init = Some(Bytes::copy_from_slice(payload));
                    } else if h.kind == KIND_UNIT {
                        let unit = p.unit.unwrap_or(a.next_unit);
                        a.next_unit = unit + 1;
                        audio = Some(AudioRef { part: h.part, sync: h.flags & FLAG_SYNC != 0, unit });
                    }
                }
            }
        }
        publish(&mut st, &self.outlets, p.frame.clone(), audio, Instant::now());
        // After the event that carries it: a watcher that closes when the alert ends has been
        // given the final status first.
        let status = st.info.status;
        self.status.send_if_modified(|s| std::mem::replace(s, status) != status);
        Applied::Done
    }
}

/// How long another node's watcher count stands without a new report.
const REMOTE_WATCHERS_FRESH: Duration = Duration::from_secs(5);
/// Most nodes whose counts one session keeps.
const MAX_NODES: usize = 64;

/// What [`Session::apply`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied and relayed to this node's watchers.
    Done,
    /// Already seen, or from an owner since replaced: dropped.
    Stale,
    /// Out of sequence: the mirror needs a new snapshot.
    Gap,
}

/// A snapshot a mirror cannot start from.
#[derive(Debug, thiserror::Error)]
#[error("not a usable snapshot: {0}")]
pub struct BadSnapshot(&'static str);

/// A mirror's state from an owner's snapshot frames (the snapshot, then its audio frames) and
/// the owner's fence.
fn mirror_state(frames: &[Frame], fence: i64) -> Result<State, BadSnapshot> {
    let Some(Frame::Text(first)) = frames.first() else { return Err(BadSnapshot("no snapshot message")) };
    let Ok(WatchMsg::Snapshot { epoch, ev, alert, phone, trail, audio, deliveries, .. }) =
        serde_json::from_slice::<WatchMsg>(first)
    else {
        return Err(BadSnapshot("the first frame is not a snapshot"));
    };
    let mut st = State::new(epoch, alert, ev);
    st.resume_floor = ev;
    st.fence_seen = fence;
    st.phone = phone;
    st.deliveries = deliveries;
    for f in trail {
        st.trail.insert(f);
    }
    if let Some(a) = audio {
        let c = Container::from_mime(&a.mime).unwrap_or(Container::Adts);
        let mut live = AudioLive {
            part: a.part,
            mime: a.mime,
            demux: Demuxer::new(c),
            init: None,
            next_unit: a.first_unit,
        };
        let now = Instant::now();
        for f in &frames[1..] {
            let Frame::Binary(b) = f else { return Err(BadSnapshot("a text frame among the audio")) };
            let Some((h, payload)) = WatchHeader::parse(b) else {
                return Err(BadSnapshot("a bad audio frame"));
            };
            if h.kind == KIND_INIT {
                live.init = Some(Bytes::copy_from_slice(payload));
            } else if h.kind == KIND_UNIT {
                let r = AudioRef { part: h.part, sync: h.flags & FLAG_SYNC != 0, unit: live.next_unit };
                live.next_unit += 1;
                // Seeds the late-join window; numbered at or below the snapshot (never replayed).
                let e = LiveEvent { ev: h.ev.min(ev), msg: f.clone(), at: now, audio: Some(r) };
                st.ring_bytes += e.msg.len();
                st.ring.push_back(Arc::new(e));
            }
        }
        st.audio = Some(live);
    }
    Ok(st)
}

/// Hands an event to the cluster without ever waiting: when its queue is full the event is
/// dropped for other nodes, whose mirrors see the gap and start over from a snapshot.
fn send_out(out: &tokio::sync::mpsc::Sender<Outbound>, o: Outbound) {
    if out.try_send(o).is_err() {
        metrics::counter!(crate::telemetry::CLUSTER_DROPPED).increment(1);
    }
}

fn summary_of(st: &State) -> AlertSummary {
    AlertSummary {
        alert: st.info.clone(),
        last_fix: st.trail.newest().cloned(),
        phone: st.phone.clone(),
        deliveries: st.deliveries.clone(),
        notes: st.notes.clone(),
    }
}

/// Numbers an event, keeps it in the replay ring and sends it to this node's watchers; returns
/// its number.
fn publish(st: &mut State, outlets: &Outlets, msg: Frame, audio: Option<AudioRef>, at: Instant) -> u64 {
    st.ev += 1;
    let size = msg.len();
    let e = Arc::new(LiveEvent { ev: st.ev, msg, at, audio });
    st.ring.push_back(e.clone());
    st.ring_bytes += size;
    while st.ring.len() > RING_MAX_EVENTS || st.ring_bytes > RING_MAX_BYTES {
        let Some(old) = st.ring.pop_front() else { break };
        st.ring_bytes -= old.msg.len();
    }
    outlets.send(&e.msg);
    st.ev
}

fn push_unit(
    st: &mut State,
    a: &mut AudioLive,
    u: crate::live::demux::Unit,
    at: Instant,
    to: Option<&Session>,
) {
    let r = AudioRef { part: a.part, sync: u.sync, unit: a.next_unit };
    a.next_unit += 1;
    let flags = if u.sync { FLAG_SYNC } else { 0 };
    match to {
        Some(session) => {
            let h = WatchHeader { kind: KIND_UNIT, flags, part: a.part, ev: st.ev + 1 };
            session.publish(st, Frame::Binary(Bytes::from(h.frame(&u.bytes))), Some(r));
        }
        None => {
            // Restored: late-join window only, numbered as already seen.
            let h = WatchHeader { kind: KIND_UNIT, flags, part: a.part, ev: st.ev };
            let msg = Frame::Binary(Bytes::from(h.frame(&u.bytes)));
            st.ring_bytes += msg.len();
            st.ring.push_back(Arc::new(LiveEvent { ev: st.ev, msg, at, audio: Some(r) }));
            while st.ring.len() > RING_MAX_EVENTS || st.ring_bytes > RING_MAX_BYTES {
                let Some(old) = st.ring.pop_front() else { break };
                st.ring_bytes -= old.msg.len();
            }
        }
    }
}

/// Marks fix `seq` stored; false when it already was.
fn mark_stored(st: &mut State, seq: u64) -> bool {
    if seq <= st.fix_contig || !st.fix_above.insert(seq) {
        return false;
    }
    while st.fix_above.remove(&(st.fix_contig + 1)) {
        st.fix_contig += 1;
    }
    true
}

fn json<T: serde::Serialize>(m: &T) -> Frame {
    Frame::json(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fanout::tests::FakeWire;
    use crate::live::{Outbound, Published};

    fn fix(seq: u64, t: i64) -> Fix {
        Fix {
            seq,
            lat: 52.0,
            lon: 13.0,
            accuracy_m: 5.0,
            time_ms: t,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        }
    }

    fn session() -> Session {
        Session::new(session_seed(), broadcast::channel(4).0, None)
    }

    fn session_seed() -> SessionSeed {
        let info = AlertInfo {
            id: "a".into(),
            user_name: "U".into(),
            status: AlertStatus::Active,
            started_ms: 0,
            ended_ms: None,
            claimed_by: None,
            audio_mime: None,
            source: "sos".into(),
            note: None,
            reason: None,
            duress: false,
        };
        let seed = SessionSeed {
            info,
            user_id: "u".into(),
            trail: vec![],
            refused: vec![],
            audio_acked: 0,
            audio_part: None,
            notes: vec![],
            owned: None,
        };
        seed
    }

    #[test]
    fn acks_are_cumulative_and_trail_orders_by_device_time() {
        let s = session();
        s.fixes_stored(&[fix(3, 300)]);
        assert_eq!(s.acks().borrow().fix, 0);
        s.fixes_stored(&[fix(1, 100), fix(2, 200), fix(2, 200)]);
        assert_eq!(s.acks().borrow().fix, 3);
        let st = s.lock();
        let mut st = st;
        assert_eq!(st.trail.snapshot().iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    /// A long part restored from its head and tail alone (as after a restart) still gives a
    /// late joiner the init segment and units from a sync point: ADTS and WebM.
    #[test]
    fn restored_from_head_and_tail() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/audio");
        for (file, mime) in [
            ("speech_aac32k.aac", "audio/aac"),
            ("mr_webm_concat.webm", "audio/webm;codecs=opus"),
            ("mr_mp4_concat.mp4", "audio/mp4"),
        ] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let (head, tail) = (bytes[..16 * 1024].to_vec(), bytes[bytes.len() - 32 * 1024..].to_vec());
            let mut seed = session_seed();
            seed.info.audio_mime = Some(mime.into());
            seed.audio_acked = 10;
            let part = RestoredPart { part: 0, mime: mime.into(), len: bytes.len() as u64, head, tail };
            seed.audio_part = Some(part);
            let s = Session::new(seed, broadcast::channel(4).0, None);
            let frames = s.subscribe(None);
            let Frame::Text(t) = &frames[0] else { panic!() };
            let snap: WatchMsg = serde_json::from_slice(t).unwrap();
            let WatchMsg::Snapshot { audio: Some(a), .. } = snap else {
                panic!("{file}: no audio in the snapshot")
            };
            assert!(a.units > 0, "{file}: no units");
            let binary: Vec<&Bytes> = frames[1..]
                .iter()
                .filter_map(|f| match f {
                    Frame::Binary(b) => Some(b),
                    _ => None,
                })
                .collect();
            let first_unit = binary
                .iter()
                .map(|b| WatchHeader::parse(b).unwrap().0)
                .find(|h| h.kind == KIND_UNIT)
                .unwrap();
            assert_ne!(first_unit.flags & FLAG_SYNC, 0, "{file}: starts at a sync point");
            if mime != "audio/aac" {
                assert!(
                    binary.iter().any(|b| WatchHeader::parse(b).unwrap().0.kind == KIND_INIT),
                    "{file}: init first"
                );
            }
        }
    }

    /// A mirror built from an owner's snapshot applies its events with the same numbers and
    /// bytes, drops an older owner's, calls anything out of sequence a gap, and resumes watchers
    /// only from its snapshot on.
    #[tokio::test]
    async fn a_mirror_follows_its_owner() {
        let (out, mut published) = tokio::sync::mpsc::channel(64);
        let mut seed = session_seed();
        seed.owned = Some(Owned { fence: 2, after: Some(("ep".into(), 40)), shown: None, heard: None });
        let owner = Session::new(seed, broadcast::channel(4).0, Some(out));
        assert_eq!(owner.position(), ("ep".into(), 40), "a new owner continues its predecessor's numbering");
        owner.fixes_stored(&[fix(1, 1)]);
        let mirror = Arc::new(Session::mirror("a", &owner.snapshot_now(), 2).unwrap());
        let mut events = Vec::new();
        while let Ok(Outbound::Event(p)) = published.try_recv() {
            events.push(p);
        }
        assert_eq!(events.len(), 1, "fix 1 published once it was stored");
        assert_eq!(mirror.apply(&events[0]), Applied::Stale, "already in the snapshot");
        owner.fixes_received(&[fix(2, 2)]);
        assert!(published.try_recv().is_err(), "a cluster owner relays only what is stored");
        owner.fixes_stored(&[fix(2, 2)]);
        owner.update_info(|i| i.claimed_by = Some("Rita".into()));
        let Ok(Outbound::Event(p2)) = published.try_recv() else { panic!("fix 2") };
        let Ok(Outbound::Event(p3)) = published.try_recv() else { panic!("claim") };
        let Ok(Outbound::Console(_)) = published.try_recv() else { panic!("console update") };
        assert_eq!((p2.ev, p3.ev), (42, 43));
        let wire = FakeWire::with_room(1 << 20);
        let watch = mirror.watch(None, wire.clone());
        watch.outlet.drain().await.unwrap();
        let snapshot_bytes = wire.taken().len();
        assert_eq!(mirror.apply(&p3), Applied::Gap, "43 before 42");
        assert_eq!(mirror.apply(&p2), Applied::Done);
        assert_eq!(mirror.apply(&p3), Applied::Done);
        let sent = [crate::live::fanout::encode(&p2.frame), crate::live::fanout::encode(&p3.frame)].concat();
        assert_eq!(wire.taken()[snapshot_bytes..], sent[..], "watchers get the owner's bytes");
        assert_eq!(mirror.local_watchers(), 1);
        assert_eq!(mirror.info().claimed_by.as_deref(), Some("Rita"));
        let old = Published { fence: 1, ev: 44, ..p3.clone() };
        assert_eq!(mirror.apply(&old), Applied::Stale, "a replaced owner is not heard");
        let r = mirror.subscribe(Some(("ep", 41)));
        assert_eq!(r.len(), 3, "resumed + events 42 and 43");
        let r = mirror.subscribe(Some(("ep", 39)));
        let Frame::Text(t) = &r[0] else { panic!() };
        assert!(std::str::from_utf8(t).unwrap().contains("\"resync\":true"), "before the mirror's snapshot");
        mirror.reset(&owner.snapshot_now(), 2).unwrap();
        assert_eq!(watch.outlet.due().call, Some(Call::Resync), "watchers are told to take a new snapshot");
        drop(watch);
        assert_eq!(mirror.local_watchers(), 0);
    }

    /// A new owner publishes the stored fixes its predecessor committed but never published
    /// (the stream shows 1, 2 and 4: 3 was lost with the predecessor), and only those.
    #[test]
    fn a_new_owner_publishes_what_was_never_shown() {
        let (out, mut published) = tokio::sync::mpsc::channel(64);
        let mut seed = session_seed();
        seed.trail = (1..=4).map(|s| fix(s, s as i64)).collect();
        let shown = Some([1, 2, 4].into_iter().collect());
        seed.owned = Some(Owned { fence: 3, after: Some(("ep".into(), 10)), shown, heard: None });
        let owner = Session::new(seed, broadcast::channel(4).0, Some(out));
        let Ok(Outbound::Event(p)) = published.try_recv() else { panic!("fix 3 published") };
        assert_eq!(p.ev, 11);
        let m: WatchMsg = serde_json::from_slice(p.frame.bytes()).unwrap();
        assert!(matches!(m, WatchMsg::Fix { fix, .. } if fix.seq == 3));
        assert!(published.try_recv().is_err(), "nothing else");
        assert_eq!(owner.position(), ("ep".into(), 11));
    }

    /// A new owner publishes the stored audio units its predecessor committed but never
    /// published (the stream's last units are found among the restored ones; what follows them
    /// goes out as new events), and nothing when they cannot be found.
    #[test]
    fn a_new_owner_publishes_audio_never_heard() {
        let aac =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/audio/speech_aac32k.aac"))
                .unwrap();
        let frames: Vec<Vec<u8>> = {
            let mut v = Vec::new();
            let mut at = 0;
            while at < aac.len() && v.len() < 40 {
                let len = alertme_protocol::adts::header(&aac[at..]).unwrap().len;
                v.push(aac[at..at + len].to_vec());
                at += len;
            }
            v
        };
        let stored: Vec<u8> = frames.concat();
        // The units as the predecessor relayed them: one run per phone chunk (3 frames here).
        let mut demux = Demuxer::new(Container::from_mime("audio/aac").unwrap());
        let frames: Vec<Vec<u8>> =
            frames.chunks(3).flat_map(|c| demux.push(&c.concat())).map(|u| u.bytes.to_vec()).collect();
        assert!(frames.len() > 10, "{} units", frames.len());
        let run = |heard: Option<(u16, Vec<Bytes>)>| {
            let (out, mut published) = tokio::sync::mpsc::channel(64);
            let mut seed = session_seed();
            seed.audio_acked = 10;
            seed.audio_part = Some(RestoredPart {
                part: 0,
                mime: "audio/aac".into(),
                len: stored.len() as u64,
                head: stored.clone(),
                tail: vec![],
            });
            seed.owned = Some(Owned { fence: 2, after: Some(("ep".into(), 50)), shown: None, heard });
            let _owner = Session::new(seed, broadcast::channel(4).0, Some(out));
            let mut units = Vec::new();
            while let Ok(Outbound::Event(p)) = published.try_recv() {
                let Frame::Binary(b) = &p.frame else { panic!("audio") };
                units.push((p.ev, WatchHeader::parse(b).unwrap().1.to_vec()));
            }
            units
        };
        // The stream heard units up to 8; 8.. were stored but never published (the restored
        // demuxer may cut them into other runs: the same bytes, in order).
        let heard = (5..8).map(|i| Bytes::from(frames[i].clone())).collect();
        let units = run(Some((0, heard)));
        assert!(!units.is_empty(), "the unheard units go out");
        assert_eq!(units[0].0, 51, "numbered on from the predecessor's last");
        let sent: Vec<u8> = units.iter().flat_map(|(_, u)| u.clone()).collect();
        let expect: Vec<u8> = frames[8..].concat();
        assert!(!sent.is_empty() && expect.starts_with(&sent), "the bytes after the last heard, in order");
        assert!(run(None).is_empty(), "without the stream's word: nothing");
        let unknown = vec![Bytes::from_static(b"not a unit of this part")];
        assert!(run(Some((0, unknown))).is_empty(), "not found: nothing (never twice)");
    }

    #[test]
    fn resume_replays_or_resyncs() {
        let s = session();
        assert_eq!(s.subscribe(None).len(), 1);
        s.fixes_stored(&[fix(1, 1), fix(2, 2)]);
        let r = s.subscribe(Some((&s.epoch(), 1)));
        assert_eq!(r.len(), 2, "resumed + event 2");
        let r = s.subscribe(Some(("other-epoch", 1)));
        let Frame::Text(t) = &r[0] else { panic!() };
        assert!(std::str::from_utf8(t).unwrap().contains("\"resync\":true"));
    }
}
