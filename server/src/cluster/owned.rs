//! The owner's side of an alert: answers snapshot requests, hears changes made on other nodes,
//! other nodes' watcher counts, and that another node took the alert over.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{nats, wire, Cluster, ClusterError};
use crate::live::Session;

impl Cluster {
    /// Serves an alert this node now owns, for as long as it does.
    pub async fn serve_owned(self: &Arc<Self>, session: Arc<Session>) -> Result<(), ClusterError> {
        let id = session.alert_id.clone();
        let mut sub = self.client.subscribe(self.names.own(&id, "*")).await.map_err(nats)?;
        // Another node may have taken it between our take and this subscription (its word
        // could not reach us): the row says who owns it now.
        if !self.still_holds(&session).await {
            self.hub.disown(&id);
            return Ok(());
        }
        let me = self.clone();
        self.tasks.spawn(async move {
            let mut check = tokio::time::interval(Duration::from_millis(250));
            let still_mine = |hub: &crate::live::Hub| hub.get(&id).is_some_and(|s| Arc::ptr_eq(&s, &session));
            loop {
                tokio::select! {
                    () = me.done.cancelled() => break,
                    _ = check.tick() => if !still_mine(&me.hub) { break },
                    m = sub.next() => {
                        let Some(m) = m else { break };
                        match m.subject.as_str().rsplit('.').next() {
                            Some("snap") => {
                                if let (Some(reply), true) = (m.reply, still_mine(&me.hub)) {
                                    let frames = session.snapshot_now();
                                    let h = wire::fence_header(session.fence.unwrap_or(0));
                                    let bytes = wire::frames_to_bytes(&frames);
                                    if let Err(e) = me.client.publish_with_headers(reply, h, bytes).await {
                                        tracing::warn!(alert = %id, error = %e, "could not send a snapshot");
                                    }
                                }
                            }
                            Some("cmd") => {
                                let _ = me.touches.try_send(id.clone());
                            }
                            Some("watching") => {
                                let text = String::from_utf8_lossy(&m.payload);
                                if let Some((node, n)) = text.split_once(' ') {
                                    if let Ok(n) = n.parse::<usize>() {
                                        session.remote_watchers(node, n);
                                    }
                                }
                            }
                            Some("moved") => {
                                let text = String::from_utf8_lossy(&m.payload).into_owned();
                                let node = text.split(' ').next().unwrap_or_default();
                                // Only the row decides: a stale or forged message is ignored.
                                if node != me.instance && still_mine(&me.hub) && !me.still_holds(&session).await {
                                    tracing::info!(alert = %id, to = node, "another node took the alert over");
                                    me.hub.disown(&id);
                                    // What was committed here goes out before the new owner
                                    // reads where to continue (anything later is fenced out).
                                    if let Some(store) = me.store.get() {
                                        store.flush().await;
                                    }
                                    me.hub.flush_cluster().await;
                                    if let Some(reply) = m.reply {
                                        let (epoch, ev) = session.position();
                                        let _ = me.client.publish(reply, format!("{epoch} {ev}").into()).await;
                                        let _ = me.client.flush().await;
                                    }
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// True while the ownership row still names this node with the session's fence.
    async fn still_holds(&self, session: &Session) -> bool {
        match crate::storage::owners::of(&self.db, &session.alert_id).await {
            Ok(Some(o)) => o.node_id == self.instance && Some(o.fence) == session.fence,
            Ok(None) => false,
            // Unknown: keep serving; the writer's fence still guards every commit.
            Err(_) => true,
        }
    }
}
