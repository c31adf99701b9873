//! The hub: every live alert in memory, and the feed of alert summaries for responders.

pub mod demux;
mod frame;
mod session;
mod trail;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::broadcast;

pub use frame::Frame;
pub use session::{LiveEvent, RestoredPart, Session, SessionSeed, Subscription};

/// Capacity of the responder feed; a console that falls further behind gets a fresh overview.
const RESPONDER_FEED_CAPACITY: usize = 1024;

/// A credential withdrawn while sockets may be using it: they close with 4401 at once.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let (responders, _) = broadcast::channel(RESPONDER_FEED_CAPACITY);
        let (revoked, _) = broadcast::channel(256);
        let (users, _) = broadcast::channel(256);
        let ended = std::sync::Mutex::default();
        Self { inner: Arc::new(Inner { sessions: DashMap::new(), ended, responders, revoked, users }) }
    }

    /// The live session of an alert, if it is active.
    pub fn get(&self, alert_id: &str) -> Option<Arc<Session>> {
        self.inner.sessions.get(alert_id).map(|s| s.clone())
    }

    /// Brings an alert live (or returns the one already live).
    pub fn open(&self, seed: SessionSeed) -> Arc<Session> {
        let id = seed.info.id.clone();
        let responders = self.inner.responders.clone();
        let s =
            self.inner.sessions.entry(id).or_insert_with(|| Arc::new(Session::new(seed, responders))).clone();
        let _ = self
            .inner
            .responders
            .send(Frame::json(&alertme_protocol::ResponderMsg::Update { alert: s.summary() }));
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
