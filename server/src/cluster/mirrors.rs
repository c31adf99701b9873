//! Mirrors: a node's copy of another node's live alert, fed by the owner's events, while it
//! has watchers of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alertme_protocol::AlertStatus;
use futures_util::StreamExt;

use super::{nats, wire, Cluster, ClusterError, SNAPSHOT_TIMEOUT};
use crate::live::{Applied, Call, Frame, Published, Session};

/// A mirror without watchers for this long is dropped (and its subject unsubscribed).
const IDLE: Duration = Duration::from_secs(30);
/// How far back a new mirror reads the stream for resuming watchers (its replay ring holds
/// about a minute of a phone's events anyway).
const BACKFILL_SPAN: Duration = Duration::from_secs(120);
/// Longest a new mirror spends reading them.
const BACKFILL_TIME: Duration = Duration::from_secs(2);
/// A mirror that heard nothing for this long checks the stream for events it missed.
const QUIET: Duration = Duration::from_secs(2);
/// A mirror whose feed has had a gap this long without a new snapshot gives up.
const GIVE_UP: Duration = Duration::from_secs(5);
/// At most one new snapshot per this interval while a mirror's feed has a gap.
const RESYNC_EVERY: Duration = Duration::from_millis(500);

impl Cluster {
    /// This node's mirror of a live alert, started from its owner's snapshot if needed.
    /// `None` when no node answers for the alert (its owner is gone): the caller may adopt it.
    pub async fn mirror(self: &Arc<Self>, alert_id: &str) -> Result<Option<Arc<Session>>, ClusterError> {
        if let Some(m) = self.hub.mirror(alert_id) {
            return Ok(Some(m));
        }
        let lock = self.starting.entry(alert_id.to_owned()).or_default().clone();
        let _starting = lock.lock().await;
        let made = async {
            if let Some(m) = self.hub.mirror(alert_id) {
                return Ok(Some(m));
            }
            // Subscribed before the snapshot is asked for: every event after it arrives.
            let sub = self.client.subscribe(self.names.events(alert_id)).await.map_err(nats)?;
            let Some((frames, fence)) = self.snapshot(alert_id).await? else { return Ok(None) };
            let mirror = Session::mirror(alert_id, &frames, fence)?;
            // What the stream still holds before the snapshot: a watcher that comes from
            // another node resumes here instead of starting over.
            let (epoch, upto) = mirror.position();
            mirror.backfill(self.retained(alert_id, &epoch, upto).await.0);
            let mirror = self.hub.add_mirror(mirror);
            let me = self.clone();
            let m = mirror.clone();
            self.tasks.spawn(async move { me.feed(m, sub).await });
            Ok(Some(mirror))
        }
        .await;
        // The last one waiting removes the lock.
        self.starting.remove_if(alert_id, |_, l| Arc::ptr_eq(l, &lock) && Arc::strong_count(l) <= 2);
        made
    }

    /// The owner's snapshot of an alert and its fence; `None` when nobody answers in time.
    async fn snapshot(&self, alert_id: &str) -> Result<Option<(Vec<Frame>, i64)>, ClusterError> {
        let ask = self.client.request(self.names.own(alert_id, "snap"), bytes::Bytes::new());
        match tokio::time::timeout(SNAPSHOT_TIMEOUT, ask).await {
            Ok(Ok(m)) => {
                let fence = wire::fence_of(m.headers.as_ref());
                Ok(wire::frames_from_bytes(m.payload).map(|f| (f, fence)))
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(None),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => Ok(None),
            Ok(Err(e)) => Err(nats(e)),
            Err(_) => Ok(None),
        }
    }

    /// The alert's events the stream still holds, up to event `upto` of `epoch`, each with
    /// its age (the stream's timestamp), and whether the read got that far. Bounded: the last
    /// [`BACKFILL_SPAN`], within [`BACKFILL_TIME`]; whatever fails leaves less to go on.
    pub(super) async fn retained(
        &self,
        alert_id: &str,
        epoch: &str,
        upto: u64,
    ) -> (Vec<(Published, Duration)>, bool) {
        use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
        let mut out = Vec::new();
        let mut complete = false;
        let read = async {
            let start_time = time::OffsetDateTime::now_utc() - BACKFILL_SPAN;
            let config = OrderedConfig {
                filter_subject: self.names.events(alert_id),
                deliver_policy: DeliverPolicy::ByStartTime { start_time },
                ..Default::default()
            };
            let consumer = self.stream.create_consumer(config).await.ok()?;
            let mut messages = consumer.messages().await.ok()?;
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(300), messages.next()).await
            {
                let (pending, published) = {
                    let info = m.info().ok()?;
                    (info.pending, info.published)
                };
                let age = (time::OffsetDateTime::now_utc() - published).whole_milliseconds().max(0) as u64;
                if let Some(p) = wire::event(alert_id, m.headers.as_ref(), m.payload.clone()) {
                    let done = p.epoch == epoch && p.ev >= upto;
                    out.push((p, Duration::from_millis(age)));
                    if done {
                        complete = true;
                        break;
                    }
                }
                if pending == 0 {
                    break;
                }
            }
            Some(())
        };
        let _ = tokio::time::timeout(BACKFILL_TIME, read).await;
        (out, complete)
    }

    /// The epoch and number of the last event the stream holds for an alert.
    pub(super) async fn last_published(&self, alert_id: &str) -> Option<(String, u64)> {
        let m = self.stream.get_last_raw_message_by_subject(&self.names.events(alert_id)).await.ok()?;
        wire::position(&m.headers)
    }

    /// True when the stream holds an event of the alert the mirror has not applied.
    async fn behind(&self, mirror: &Session) -> bool {
        let (epoch, ev) = mirror.position();
        self.last_published(&mirror.alert_id).await.is_some_and(|(e, last)| e != epoch || last > ev)
    }

    /// Applies what the stream holds after the mirror's position; true when that caught it up.
    async fn catch_up(&self, mirror: &Session) -> bool {
        let Some((epoch, last)) = self.last_published(&mirror.alert_id).await else { return false };
        for (p, _) in self.retained(&mirror.alert_id, &epoch, last).await.0 {
            if p.epoch != epoch {
                continue; // an earlier epoch's: a mirror still on it needs a snapshot anyway
            }
            if mirror.apply(&p) == Applied::Gap {
                return false;
            }
        }
        mirror.position() == (epoch, last)
    }

    /// Applies the owner's events to a mirror and reports its watchers to the owner, until it
    /// has had none for a while or the server stops.
    async fn feed(self: Arc<Self>, mirror: Arc<Session>, mut sub: async_nats::Subscriber) {
        let id = mirror.alert_id.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut idle_since: Option<Instant> = None;
        let mut reported = 0;
        let mut gap_since: Option<Instant> = None;
        let mut last_try: Option<Instant> = None;
        let mut last_event = Instant::now();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                m = sub.next() => {
                    let Some(m) = m else { break };
                    last_event = Instant::now();
                    let Some(p) = wire::event(&id, m.headers.as_ref(), m.payload) else { continue };
                    match mirror.apply(&p) {
                        Applied::Done | Applied::Stale => gap_since = None,
                        Applied::Gap => {
                            gap_since.get_or_insert_with(Instant::now);
                        }
                    }
                }
                _ = tick.tick() => {
                    let n = mirror.local_watchers();
                    if n > 0 || reported > 0 {
                        let text = format!("{} {n}", self.node);
                        let _ = self.client.publish(self.names.own(&id, "watching"), text.into()).await;
                        reported = n;
                    }
                    idle_since = if n > 0 { None } else { idle_since.or(Some(Instant::now())) };
                    let ended = *mirror.status().borrow() != AlertStatus::Active;
                    if idle_since.is_some_and(|t| t.elapsed() >= IDLE) || (ended && n == 0) {
                        break;
                    }
                    // Quiet for a while: was something published that never arrived (a message
                    // dropped at the very end leaves no later one to show the gap)?
                    if gap_since.is_none() && !ended && last_event.elapsed() >= QUIET {
                        last_event = Instant::now();
                        if self.behind(&mirror).await {
                            gap_since = Some(Instant::now());
                        } else if self.is_active(&id).await.is_ok_and(|active| !active) {
                            // It ended and the end never came through: the watchers reconnect
                            // and get the alert as it ended.
                            tracing::warn!(alert = %id, "mirror missed the end; its watchers reconnect");
                            mirror.call(Call::Reconnect);
                            break;
                        }
                    }
                }
            }
            // No way to catch up for a while (the alert ended meanwhile, or no node holds it):
            // this mirror cannot go on. Its watchers reconnect and find the alert as it stands.
            if gap_since.is_some_and(|t| t.elapsed() >= GIVE_UP) {
                tracing::info!(alert = %id, "mirror lost its feed; its watchers reconnect");
                mirror.call(Call::Reconnect);
                break;
            }
            if gap_since.is_some() && last_try.is_none_or(|t| t.elapsed() >= RESYNC_EVERY) {
                last_try = Some(Instant::now());
                // The stream usually still holds what was missed: applied in order, the
                // watchers never notice. Else a snapshot from the owner, and they start over.
                if self.catch_up(&mirror).await {
                    gap_since = None;
                } else if let Ok(Some((frames, fence))) = self.snapshot(&id).await {
                    if mirror.reset(&frames, fence).is_ok() {
                        metrics::counter!(crate::telemetry::CLUSTER_RESYNCS).increment(1);
                        tracing::debug!(alert = %id, "mirror had a gap; started over from a snapshot");
                        gap_since = None;
                    }
                }
            }
        }
        // Whoever still watches it, or got it just now and subscribes next, reconnects: the
        // feed ended under them.
        mirror.mark_dead();
        self.hub.drop_mirror(&mirror);
    }
}
