//! Cluster mode: nodes share live alerts through NATS and own them through PostgreSQL rows.
//!
//! The rules are in docs/cluster.md. In short: the node holding an alert's phone owns its
//! session ([`Cluster::take`], a fencing number in `alert_owners`); the owner publishes every
//! event, already serialized, on the alert's subject, which a JetStream stream keeps for a few
//! minutes; every node that has watchers of the alert keeps a mirror fed from that subject
//! ([`Cluster::mirror`]), so watchers on every node see the same events with the same numbers.
//! Console updates, withdrawn credentials and prompts for phones are broadcast to all nodes.

mod mirrors;
mod names;
mod owned;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use alertme_protocol::{AlertStatus, ResponderMsg};
use async_nats::jetstream;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::live::{Frame, Hub, Outbound, Owned, Revoked, OUTBOUND_CAPACITY};
use crate::storage::{owners, Db};
pub use names::Names;

/// A node whose heartbeat stopped this long ago is taken for gone: any node may adopt its
/// alerts. It beats every [`RENEW_EVERY`].
pub const OWNER_TIMEOUT: Duration = Duration::from_secs(6);
/// How often a node beats and repeats its alerts' console summaries.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Every this many beats an owner checks that none of its alerts ended unseen.
const ENDED_CHECK_EVERY: u32 = 5;
/// A console summary from another node counts this long without being repeated.
pub const SUMMARY_FRESH: Duration = Duration::from_secs(8);
/// How long the stream keeps an alert's events: long enough to resume a watcher or continue
/// the numbering after a failover, short enough to stay small.
const STREAM_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Most bytes the stream keeps (oldest dropped first).
const STREAM_MAX_BYTES: i64 = 256 * 1024 * 1024;
/// How long a new owner waits for its predecessor to hand the alert over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node waits for an owner's snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why cluster mode could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS is unreachable or refused.
    #[error("NATS: {0}")]
    Nats(String),
    /// The ownership rows could not be read or written.
    #[error("database: {0}")]
    Db(String),
    /// An owner's snapshot was unusable.
    #[error(transparent)]
    Snapshot(#[from] crate::live::BadSnapshot),
}

fn nats(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

fn db(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Db(e.to_string())
}

/// Audio units compared when a new owner looks for the last one its predecessor published.
const HEARD_UNITS: usize = 4;

/// The last audio units (part, payloads in order) among published events of `epoch`.
fn heard_units(
    events: &[(crate::live::Published, Duration)],
    epoch: &str,
) -> Option<(u16, Vec<bytes::Bytes>)> {
    let units: Vec<(u16, bytes::Bytes)> = events
        .iter()
        .filter(|(p, _)| p.epoch == epoch && p.unit.is_some())
        .filter_map(|(p, _)| match &p.frame {
            Frame::Binary(b) => {
                let (h, payload) = alertme_protocol::audio::WatchHeader::parse(b)?;
                (h.kind == alertme_protocol::audio::KIND_UNIT).then(|| (h.part, b.slice_ref(payload)))
            }
            Frame::Text(_) => None,
        })
        .collect();
    let part = units.last()?.0;
    let tail: Vec<bytes::Bytes> = units
        .iter()
        .rev()
        .take_while(|(p, _)| *p == part)
        .take(HEARD_UNITS)
        .map(|(_, b)| b.clone())
        .collect();
    Some((part, tail.into_iter().rev().collect()))
}

/// Seqs of the fixes among published events of `epoch`.
fn shown_fixes(
    events: &[(crate::live::Published, Duration)],
    epoch: &str,
) -> std::collections::BTreeSet<u64> {
    events
        .iter()
        .filter(|(p, _)| p.epoch == epoch)
        .filter_map(|(p, _)| match &p.frame {
            Frame::Text(t) => match serde_json::from_slice::<alertme_protocol::WatchMsg>(t) {
                Ok(alertme_protocol::WatchMsg::Fix { fix, .. }) => Some(fix.seq),
                _ => None,
            },
            Frame::Binary(_) => None,
        })
        .collect()
}

/// This node's part of the cluster. Cheap to share (`Arc<Cluster>`).
pub struct Cluster {
    /// This node's id.
    pub node: String,
    /// This start of the node (its id and a random suffix): what ownership rows, heartbeats and
    /// messages name, so that a node restarted under the same id never passes for its
    /// predecessor.
    pub instance: String,
    client: async_nats::Client,
    stream: jetstream::stream::Stream,
    names: Names,
    hub: Hub,
    db: Db,
    /// One mirror start per alert at a time.
    starting: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// One takeover per alert at a time on this node.
    owning: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Alerts whose stored state changed on another node (claimed, noted, ended): the owner's
    /// domain reloads them.
    touches: mpsc::Sender<String>,
    /// The per-alert tasks (owned alerts' services, mirrors' feeds).
    tasks: TaskTracker,
    /// The server is stopping: mirrors end (their watchers are closed anyway).
    stop: CancellationToken,
    /// The node has drained (its last commits published): publishing and owned alerts' services
    /// end. Until then a stopping node still hands its alerts over properly.
    done: CancellationToken,
    /// The durable writer, flushed before an alert is handed over.
    store: std::sync::OnceLock<crate::storage::writer::Store>,
}

/// What the server wires after [`Cluster::connect`].
pub struct Joined {
    /// The node.
    pub cluster: Arc<Cluster>,
    /// The hub, whose owned sessions publish to the cluster.
    pub hub: Hub,
    /// What the hub hands over for other nodes (run by [`Cluster::publish`]).
    pub outbound: mpsc::Receiver<Outbound>,
    /// Alerts whose stored state another node changed (see [`Cluster::touch`]).
    pub touched: mpsc::Receiver<String>,
}

impl Cluster {
    /// Connects to NATS, makes sure the event stream exists and builds this node's hub.
    pub async fn connect(
        url: &str,
        prefix: &str,
        node: String,
        db: Db,
        stop: CancellationToken,
    ) -> Result<Joined, ClusterError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("alertme {node}"))
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(nats)?;
        let names = Names::new(prefix);
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: names.stream(),
                subjects: vec![names.all_events()],
                storage: jetstream::stream::StorageType::Memory,
                max_age: STREAM_MAX_AGE,
                max_bytes: STREAM_MAX_BYTES,
                discard: jetstream::stream::DiscardPolicy::Old,
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let (out_tx, outbound) = mpsc::channel(OUTBOUND_CAPACITY);
        let hub = Hub::clustered(out_tx);
        let (touches, touched) = mpsc::channel(1024);
        let instance = format!("{node}~{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let cluster = Arc::new(Cluster {
            node,
            instance,
            client,
            stream,
            names,
            hub: hub.clone(),
            db,
            starting: DashMap::new(),
            owning: DashMap::new(),
            touches,
            tasks: TaskTracker::new(),
            stop,
            done: CancellationToken::new(),
            store: std::sync::OnceLock::new(),
        });
        Ok(Joined { cluster, hub, outbound, touched })
    }

    /// The durable writer: a node handing an alert over flushes it first.
    pub fn use_store(&self, store: crate::storage::writer::Store) {
        let _ = self.store.set(store);
    }

    /// Ended when the node has drained: what must outlive the stop (publishing, handing
    /// alerts over) runs until then.
    pub fn done(&self) -> CancellationToken {
        self.done.clone()
    }

    /// The node drained: publishes what is left (at most 5 s: NATS may be gone), then ends
    /// publishing and the owned alerts' services.
    pub async fn finish(&self) {
        if tokio::time::timeout(Duration::from_secs(5), self.hub.flush_cluster()).await.is_err() {
            tracing::warn!("NATS did not take the last events within 5 s");
        }
        self.done.cancel();
    }

    /// One takeover of `alert_id` at a time on this node (two phone connections resuming it at
    /// once would otherwise leave the session with an older fence than the row's).
    pub async fn turn(&self, alert_id: &str) -> Turn<'_> {
        let lock = self.owning.entry(alert_id.to_owned()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Turn { cluster: self, alert_id: alert_id.to_owned(), lock, _guard: guard }
    }

    /// True while the NATS connection is up (an unhealthy node takes no traffic).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends what the hub hands over to the other nodes, in order, until the queue closes.
    pub async fn publish(self: Arc<Self>, mut outbound: mpsc::Receiver<Outbound>) {
        while let Some(o) = outbound.recv().await {
            let sent = match o {
                Outbound::Event(p) => {
                    let h = wire::event_headers(&self.instance, &p);
                    self.client
                        .publish_with_headers(self.names.events(&p.alert_id), h, p.frame.bytes().clone())
                        .await
                }
                Outbound::Console(f) => self.broadcast(self.names.console(), None, f.bytes().clone()).await,
                Outbound::Revoked(r) => {
                    let json = serde_json::to_vec(&r).expect("serializes");
                    self.broadcast(self.names.revoked(), None, json.into()).await
                }
                Outbound::User(user, f) => {
                    self.broadcast(self.names.user(), Some(user), f.bytes().clone()).await
                }
                Outbound::Flush(answer) => {
                    if let Err(e) = self.client.flush().await {
                        tracing::warn!(error = %e, "could not flush to NATS");
                    }
                    let _ = answer.send(());
                    Ok(())
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not hand a message to NATS");
                metrics::counter!(crate::telemetry::CLUSTER_DROPPED).increment(1);
            }
        }
    }

    async fn broadcast(
        &self,
        subject: String,
        user: Option<String>,
        payload: bytes::Bytes,
    ) -> Result<(), async_nats::PublishError> {
        let mut h = async_nats::HeaderMap::new();
        h.insert(wire::NODE, self.instance.as_str());
        if let Some(u) = user {
            h.insert(wire::USER, u.as_str());
        }
        self.client.publish_with_headers(subject, h, payload).await
    }

    /// Hears the other nodes' broadcasts (consoles, withdrawn credentials, phone prompts) and
    /// hands them to this node's hub, until the server stops.
    pub async fn listen(self: Arc<Self>) -> Result<(), ClusterError> {
        let mut console = self.client.subscribe(self.names.console()).await.map_err(nats)?;
        let mut revoked = self.client.subscribe(self.names.revoked()).await.map_err(nats)?;
        let mut user = self.client.subscribe(self.names.user()).await.map_err(nats)?;
        let mine = |m: &async_nats::Message| {
            m.headers.as_ref().and_then(|h| h.get(wire::NODE)).is_some_and(|n| n.as_str() == self.instance)
        };
        loop {
            tokio::select! {
                Some(m) = console.next() => {
                    if mine(&m) || std::str::from_utf8(&m.payload).is_err() {
                        continue;
                    }
                    if let Ok(ResponderMsg::Update { alert }) = serde_json::from_slice(&m.payload) {
                        let active = alert.alert.status == AlertStatus::Active;
                        self.hub.remote_console(alert, active, Frame::Text(m.payload));
                    }
                }
                Some(m) = revoked.next() => {
                    if let (false, Ok(r)) = (mine(&m), serde_json::from_slice::<Revoked>(&m.payload)) {
                        self.hub.remote_revoked(r);
                    }
                }
                Some(m) = user.next() => {
                    let who = m.headers.as_ref().and_then(|h| h.get(wire::USER)).map(|u| u.as_str().to_owned());
                    if let (false, Some(who), Some(f)) = (mine(&m), who, wire::frame("t", m.payload.clone())) {
                        self.hub.remote_user_message(who, f);
                    }
                }
                else => return Err(nats("subscriptions ended")),
            }
        }
    }

    /// Beats (this node is alive), repeats its alerts' console summaries (so that a node
    /// started later lists them) and now and then asks the database whether any of its alerts
    /// ended without word reaching it, until the server stops.
    pub async fn renew(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        let mut beats = 0u32;
        loop {
            tick.tick().await;
            if let Err(e) = owners::heartbeat(&self.db, &self.instance, crate::now_ms()).await {
                tracing::warn!(error = %e, "could not record this node's heartbeat");
            }
            for s in self.hub.sessions() {
                s.announce_to_cluster();
            }
            beats += 1;
            if beats.is_multiple_of(ENDED_CHECK_EVERY) {
                match owners::ended(&self.db, &self.instance).await {
                    Ok(ids) => {
                        for id in ids {
                            let _ = self.touches.try_send(id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not check for ended alerts"),
                }
            }
        }
    }

    /// Takes an alert over for this node (a phone resumed it here, or it was raised here):
    /// returns what the new session needs to continue its predecessor's numbering, or `None`
    /// when the alert is no longer active.
    pub async fn take(&self, alert_id: &str) -> Result<Option<Owned>, ClusterError> {
        match owners::take(&self.db, alert_id, &self.instance, crate::now_ms()).await.map_err(db)? {
            Some(fence) => Ok(Some(self.took(alert_id, fence).await)),
            None => Ok(None),
        }
    }

    /// True while the alert is active in the database.
    pub async fn is_active(&self, alert_id: &str) -> Result<bool, ClusterError> {
        owners::is_active(&self.db, alert_id).await.map_err(db)
    }

    /// Takes an alert whose owner is gone (stopped renewing), unless another node did first.
    pub async fn adopt(&self, alert_id: &str) -> Result<Option<Owned>, ClusterError> {
        let now = crate::now_ms();
        let cutoff = now - OWNER_TIMEOUT.as_millis() as i64;
        match owners::adopt(&self.db, alert_id, &self.instance, cutoff, now).await.map_err(db)? {
            Some(fence) => Ok(Some(self.took(alert_id, fence).await)),
            None => Ok(None),
        }
    }

    /// After the fence moved here: the previous owner, if alive, lets go (its last commits
    /// published, or fenced out); then what it published tells where to continue.
    async fn took(&self, alert_id: &str, fence: i64) -> Owned {
        let mut released = None;
        if fence > 1 {
            metrics::counter!(crate::telemetry::CLUSTER_TAKEOVERS).increment(1);
            tracing::info!(alert = %alert_id, fence, "took the alert over");
            let moved = format!("{} {fence}", self.instance);
            let ask = self.client.request(self.names.own(alert_id, "moved"), moved.into());
            match tokio::time::timeout(HANDOVER_TIMEOUT, ask).await {
                Ok(Ok(m)) => {
                    tracing::debug!(alert = %alert_id, "the previous owner handed over");
                    released = wire::position_text(&m.payload);
                }
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
                _ => {
                    tracing::warn!(alert = %alert_id, "the previous owner did not answer; taking over anyway")
                }
            }
        }
        let stored = self.last_published(alert_id).await;
        // The predecessor's own word beats the stream's, which may not have stored its last
        // events yet.
        let after = match (released, stored) {
            (Some((e, r)), Some((se, s))) if e == se => Some((e, r.max(s))),
            (Some(r), _) => Some(r),
            (None, s) => s,
        };
        let (shown, heard) = match &after {
            Some((epoch, ev)) => match self.retained(alert_id, epoch, *ev).await {
                (events, true) => (Some(shown_fixes(&events, epoch)), heard_units(&events, epoch)),
                // A partial read would make what watchers saw look unseen: publish none.
                (_, false) => (None, None),
            },
            None => (None, None),
        };
        Owned { fence, after, shown, heard }
    }

    /// Asks the owner of an alert to reload it from the database (another node claimed, noted
    /// or ended it).
    pub async fn touch(&self, alert_id: &str) {
        if let Err(e) = self.client.publish(self.names.own(alert_id, "cmd"), "reload".into()).await {
            tracing::warn!(error = %e, "could not tell the owner of a change");
        }
    }

    /// Forgets the ownership row of an alert that ended here.
    pub async fn release(&self, alert_id: &str) {
        if let Err(e) = owners::release(&self.db, alert_id, &self.instance).await {
            tracing::warn!(error = %e, "could not release an ended alert");
        }
    }

    /// Waits for the per-alert tasks to end (after the stop).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// This node's turn to take one alert over (see [`Cluster::turn`]).
pub struct Turn<'a> {
    cluster: &'a Cluster,
    alert_id: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // The last one waiting removes the lock: the map holds only alerts being taken now.
        self.cluster
            .owning
            .remove_if(&self.alert_id, |_, l| Arc::ptr_eq(l, &self.lock) && Arc::strong_count(l) <= 3);
    }
}
