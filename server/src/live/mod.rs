//! The hub: every live alert in memory, and the feed of alert summaries for responders.

pub mod demux;
pub mod fanout;
mod frame;
mod session;
mod trail;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::broadcast;

pub use frame::Frame;
pub use session::{Applied, BadSnapshot, Call, LiveEvent, Owned, RestoredPart, Session, SessionSeed, Watch};

/// What a cluster node tells the others (see `cluster`): the hub hands it over without waiting.
#[derive(Debug)]
pub enum Outbound {
    /// An event of an alert this node owns.
    Event(Published),
    /// A console update (a serialized `ResponderMsg`).
    Console(Frame),
    /// A withdrawn credential.
    Revoked(Revoked),
    /// A message for a person's phones (user id, frame).
    User(String, Frame),
    /// Answered once everything handed over before it is with NATS.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// One event as the owner published it: what a mirror on another node applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The alert.
    pub alert_id: String,
    /// The owner's epoch.
    pub epoch: String,
    /// The owner's fencing number.
    pub fence: i64,
    /// Event number.
    pub ev: u64,
    /// The frame watchers get.
    pub frame: Frame,
    /// For an audio unit, its number within the part.
    pub unit: Option<u64>,
}

/// Events queued for other nodes; beyond this they are dropped (mirrors resync).
pub const OUTBOUND_CAPACITY: usize = 16 * 1024;

/// Capacity of the responder feed; a console that falls further behind gets a fresh overview.
const RESPONDER_FEED_CAPACITY: usize = 1024;

/// A credential withdrawn while sockets may be using it: they close with 4401 at once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Revoked {
    /// A phone's device token (by device id).
    Device(String),
    /// A watch link (by token hash).
    Watch(String),
    /// A responder (by responder id).
    Responder(String),
}

/// Cheap-to-clone handle on all live sessions.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Ended alerts kept in memory for the pages opened after the end (most recent first).
const ENDED_KEPT: usize = 32;

struct Inner {
    sessions: DashMap<String, Arc<Session>>,
    /// Cluster: mirrors of other nodes' sessions, while this node has watchers of them.
    mirrors: DashMap<String, Arc<Session>>,
    /// Cluster: the latest console summary of every alert other nodes own.
    remote: DashMap<String, (alertme_protocol::AlertSummary, std::time::Instant)>,
    outbound: Option<tokio::sync::mpsc::Sender<Outbound>>,
    ended: std::sync::Mutex<std::collections::VecDeque<Arc<Session>>>,
    responders: broadcast::Sender<Frame>,
    revoked: broadcast::Sender<Revoked>,
    users: broadcast::Sender<(String, Frame)>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::with_outbound(None)
    }

    /// A cluster node's hub: what other nodes must hear goes to `outbound` as well.
    pub fn clustered(outbound: tokio::sync::mpsc::Sender<Outbound>) -> Self {
        Self::with_outbound(Some(outbound))
    }

    fn with_outbound(outbound: Option<tokio::sync::mpsc::Sender<Outbound>>) -> Self {
        let (responders, _) = broadcast::channel(RESPONDER_FEED_CAPACITY);
        let (revoked, _) = broadcast::channel(256);
        let (users, _) = broadcast::channel(256);
        let ended = std::sync::Mutex::default();
        let inner = Inner {
            sessions: DashMap::new(),
            mirrors: DashMap::new(),
            remote: DashMap::new(),
            outbound,
            ended,
            responders,
            revoked,
            users,
        };
        Self { inner: Arc::new(inner) }
    }

    /// True on a cluster node.
    pub fn is_clustered(&self) -> bool {
        self.inner.outbound.is_some()
    }

    fn tell_others(&self, o: Outbound) {
        if let Some(out) = &self.inner.outbound {
            if out.try_send(o).is_err() {
                metrics::counter!(crate::telemetry::CLUSTER_DROPPED).increment(1);
            }
        }
    }

    /// Waits until everything handed to the cluster so far is with NATS (a node handing an
    /// alert over, or stopping, publishes its last events first).
    pub async fn flush_cluster(&self) {
        if let Some(out) = &self.inner.outbound {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if out.send(Outbound::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// This node's mirror of another node's alert, if it has one.
    pub fn mirror(&self, alert_id: &str) -> Option<Arc<Session>> {
        self.inner.mirrors.get(alert_id).map(|s| s.clone()).filter(|s| !s.is_dead())
    }

    /// Keeps a mirror (returns the one already kept, if another request made it first).
    pub fn add_mirror(&self, mirror: Session) -> Arc<Session> {
        // One start at a time per alert (`cluster`): what is kept here is absent or dead.
        let mirror = Arc::new(mirror);
        self.inner.mirrors.insert(mirror.alert_id.clone(), mirror.clone());
        mirror
    }

    /// Drops this mirror, if it is still the one kept (its feed ended).
    pub fn drop_mirror(&self, mirror: &Arc<Session>) {
        self.inner.mirrors.remove_if(&mirror.alert_id, |_, kept| Arc::ptr_eq(kept, mirror));
    }

    /// All mirrors.
    pub fn mirrors(&self) -> Vec<Arc<Session>> {
        self.inner.mirrors.iter().map(|e| e.value().clone()).collect()
    }

    /// Another node's console update (a serialized `ResponderMsg::Update`): kept for new
    /// consoles' overview and passed to this node's consoles.
    pub fn remote_console(&self, summary: alertme_protocol::AlertSummary, active: bool, frame: Frame) {
        let id = summary.alert.id.clone();
        let changed = match self.inner.remote.get(&id) {
            Some(known) => known.0 != summary,
            None => true,
        };
        if active && !self.inner.sessions.contains_key(&id) {
            self.inner.remote.insert(id, (summary, std::time::Instant::now()));
        } else {
            self.inner.remote.remove(&id);
        }
        // Owners repeat their summaries every second: consoles hear only changes.
        if changed {
            let _ = self.inner.responders.send(frame);
        }
    }

    /// Console summaries of alerts other nodes own, heard within `fresh`.
    pub fn remote_summaries(&self, fresh: Duration) -> Vec<alertme_protocol::AlertSummary> {
        self.inner.remote.retain(|_, (_, at)| at.elapsed() < fresh);
        self.inner.remote.iter().map(|e| e.value().0.clone()).collect()
    }

    /// Another node withdrew a credential: this node's sockets using it close.
    pub fn remote_revoked(&self, what: Revoked) {
        let _ = self.inner.revoked.send(what);
    }

    /// Another node has a message for a person's phones.
    pub fn remote_user_message(&self, user_id: String, frame: Frame) {
        let _ = self.inner.users.send((user_id, frame));
    }

    /// Another node took over an alert this node owned: its phone connection closes (4409)
    /// and the session leaves memory.
    pub fn disown(&self, alert_id: &str) -> bool {
        match self.inner.sessions.remove(alert_id) {
            Some((_, s)) => {
                s.disown();
                true
            }
            None => false,
        }
    }

    /// The live session of an alert, if it is active.
    pub fn get(&self, alert_id: &str) -> Option<Arc<Session>> {
        self.inner.sessions.get(alert_id).map(|s| s.clone())
    }

    /// Brings an alert live (or returns the one already live).
    pub fn open(&self, seed: SessionSeed) -> Arc<Session> {
        let id = seed.info.id.clone();
        let responders = self.inner.responders.clone();
        let out = self.inner.outbound.clone();
        self.inner.remote.remove(&id);
        let s = self
            .inner
            .sessions
            .entry(id)
            .or_insert_with(|| Arc::new(Session::new(seed, responders, out)))
            .clone();
        s.announce();
        s
    }

    /// A recently read ended alert, if still kept.
    pub fn ended(&self, alert_id: &str) -> Option<Arc<Session>> {
        let kept = self.inner.ended.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|s| s.alert_id == alert_id).cloned()
    }

    /// Keeps an ended alert's final state for the next reads (the oldest kept one goes).
    pub fn keep_ended(&self, session: Session) -> Arc<Session> {
        let s = Arc::new(session);
        let mut kept = self.inner.ended.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|k| k.alert_id != s.alert_id);
        kept.push_front(s.clone());
        kept.truncate(ENDED_KEPT);
        s
    }

    /// Takes an ended alert out of memory. Watchers drain what was published, then see the end.
    pub fn close(&self, alert_id: &str) {
        self.inner.sessions.remove(alert_id);
    }

    /// All live sessions, oldest first.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = self.inner.sessions.iter().map(|e| e.value().clone()).collect();
        v.sort_by_key(|s| s.info().started_ms);
        v
    }

    /// Tells live sockets of a device that its token was revoked.
    pub fn revoke_device(&self, device_id: &str) {
        self.revoke(Revoked::Device(device_id.to_owned()));
    }

    /// Tells live sockets using a credential that it was withdrawn.
    pub fn revoke(&self, what: Revoked) {
        self.tell_others(Outbound::Revoked(what.clone()));
        let _ = self.inner.revoked.send(what);
    }

    /// Receives withdrawn credentials. A receiver that lags must re-check its own credential in
    /// the database (it may have missed its revocation).
    pub fn revocations(&self) -> broadcast::Receiver<Revoked> {
        self.inner.revoked.subscribe()
    }

    /// Sends a message to every live phone socket of a person (a check-in prompt).
    pub fn tell_user(&self, user_id: &str, m: &alertme_protocol::PhoneServerMsg) {
        let text = Frame::json(m);
        self.tell_others(Outbound::User(user_id.to_owned(), text.clone()));
        let _ = self.inner.users.send((user_id.to_owned(), text));
    }

    /// Receives messages for people's phones (filter by user id).
    pub fn user_messages(&self) -> broadcast::Receiver<(String, Frame)> {
        self.inner.users.subscribe()
    }

    /// Subscribes to responder updates.
    pub fn responder_feed(&self) -> broadcast::Receiver<Frame> {
        self.inner.responders.subscribe()
    }

    /// Marks phones that went quiet as lost, every `period`, until the process ends.
    pub fn silence_watch(&self, silence: Duration) -> impl std::future::Future<Output = ()> + Send + 'static {
        let hub = self.clone();
        let period = (silence / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                for s in hub.inner.sessions.iter() {
                    s.phone_check(silence);
                }
            }
        }
    }
}
