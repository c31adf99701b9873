//! The durable SMS outbox and the background task that drains it.
//!
//! Rows are inserted in the same transaction as what causes them (an alert start commits its
//! contacts' texts atomically), so no text is lost and none is sent for something that did not
//! happen. One task sends due rows with bounded concurrency, claiming each with a conditional
//! update, retries with exponential backoff, and before resending anything whose first attempt
//! had an unknown outcome (timeout, 5xx) asks the provider whether it already took it, so a
//! contact is never texted twice. After a crash, rows caught mid-send are treated the same way.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Sent, SmsClient, SmsError};
use crate::storage::outbox::{self as rows, Row};
use crate::storage::Db;

pub use crate::storage::outbox::{contact_label, kind, status, NewText};

/// What the engine needs from the layer above it: the wording of texts worded at send time,
/// and a place to report that an alert's delivery states changed. `domain::notify` implements
/// it, so that the engine knows neither the hub nor the wording.
pub trait Texts: Send + Sync + 'static {
    /// The text of a row worded at send time (`None`: nothing to send).
    fn render(&self, row: &Row) -> impl std::future::Future<Output = anyhow::Result<Option<String>>> + Send;
    /// Delivery states of this alert's texts changed.
    fn delivery_changed(&self, alert_id: &str) -> impl std::future::Future<Output = ()> + Send;
}

/// Rows sent at once: the contacts of one alert go out in parallel, not one after another.
const CONCURRENCY: usize = 16;
/// Attempts before an alert text is given up as failed (about 25 minutes with backoff).
const MAX_ATTEMPTS_ALERT: i32 = 30;
/// Attempts for other texts.
const MAX_ATTEMPTS_OTHER: i32 = 8;
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Order of statuses; callbacks may arrive out of order and never move a row backwards.
pub fn rank(s: &str) -> u8 {
    match s {
        status::PENDING => 0,
        status::SENDING => 1,
        "queued" | "accepted" | "scheduled" => 2,
        status::SENT => 4,
        status::DELIVERED | status::UNDELIVERED | status::FAILED => 5,
        "read" => 6,
        status::OPTED_OUT | status::LIMITED => 7,
        _ => 0,
    }
}

/// Maps a provider status to ours (Twilio's `sending` is still on the provider's side).
pub fn normalize_status(s: &str) -> Option<&'static str> {
    Some(match s {
        "queued" | "accepted" | "scheduled" | "sending" => status::QUEUED,
        "sent" => status::SENT,
        "delivered" | "read" => status::DELIVERED,
        "undelivered" => status::UNDELIVERED,
        "failed" | "canceled" => status::FAILED,
        _ => return None,
    })
}

/// Wakes the sender; cheap to clone.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// Tells the sender that rows were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The background sender.
pub struct Sender<T> {
    /// Database.
    pub db: Db,
    /// Provider.
    pub client: SmsClient,
    /// Wording and delivery reports.
    pub texts: T,
    /// Base of the status callback URL.
    pub public_url: String,
    /// First retry delay.
    pub retry_base: Duration,
    /// Age after which a `queued` text's status is fetched instead of awaited.
    pub status_poll: Duration,
}

impl<T: Texts> Sender<T> {
    /// Runs forever: sends due rows, sleeps until the next is due or a wake-up.
    pub async fn run(self: Arc<Self>, outbox: Outbox) {
        // Rows caught mid-send by a crash may or may not have reached the provider.
        if let Err(e) = rows::recover_in_flight(&self.db).await {
            tracing::error!(error = %e, "outbox recovery failed");
        }
        let mut poll = tokio::time::interval((self.status_poll / 2).max(Duration::from_millis(200)));
        loop {
            let next = match self.send_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "outbox pass failed");
                    Some(crate::now_ms() + 1000)
                }
            };
            let wait = next.map_or(Duration::from_secs(30), |t| {
                Duration::from_millis((t - crate::now_ms()).clamp(0, 30_000) as u64)
            });
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = outbox.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = poll.tick() => {
                    if let Err(e) = self.poll_stale().await {
                        tracing::error!(error = %e, "status poll failed");
                    }
                }
            }
        }
    }

    /// Delivery reports can be lost (a webhook outage, a wrong public URL): texts the provider
    /// took but that stayed `queued` get their status fetched, so every recipient reaches a
    /// final state.
    async fn poll_stale(&self) -> anyhow::Result<()> {
        let cutoff = crate::now_ms() - self.status_poll.as_millis() as i64;
        let stale = rows::stale_queued(&self.db, cutoff, 100).await?;
        for row in stale {
            let Some(sid) = &row.provider_sid else { continue };
            let reported = match self.client.status(sid).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(row = row.id, error = %e, "status poll failed");
                    continue;
                }
            };
            let new =
                normalize_status(&reported).filter(|n| rank(n) > rank(&row.status)).unwrap_or(status::QUEUED);
            rows::advance(&self.db, row.id, status::QUEUED, new, None).await?;
            if let (true, Some(alert)) = (new != status::QUEUED, &row.alert_id) {
                self.texts.delivery_changed(alert).await;
            }
        }
        Ok(())
    }

    /// Sends every due row; returns when the next pending row is due.
    async fn send_due(self: &Arc<Self>) -> anyhow::Result<Option<i64>> {
        loop {
            let now = crate::now_ms();
            let due = rows::due(&self.db, now, CONCURRENCY as u64).await?;
            if due.is_empty() {
                break;
            }
            let mut set = JoinSet::new();
            for row in due {
                let me = self.clone();
                set.spawn(async move {
                    let (id, alert) = (row.id, row.alert_id.clone());
                    if let Err(e) = me.attempt(row).await {
                        tracing::error!(row = id, error = %e, "outbox attempt failed");
                    }
                    alert
                });
            }
            let mut touched = Vec::new();
            while let Some(r) = set.join_next().await {
                if let Ok(Some(a)) = r {
                    touched.push(a);
                }
            }
            touched.sort();
            touched.dedup();
            for a in touched {
                self.texts.delivery_changed(&a).await;
            }
        }
        Ok(rows::next_due(&self.db).await?)
    }

    async fn attempt(&self, row: Row) -> anyhow::Result<()> {
        let now = crate::now_ms();
        // Claim it: with several servers on one database, exactly one gets the row.
        if !rows::claim(&self.db, &row, now).await? {
            return Ok(());
        }
        let attempts = row.attempts + 1;
        if let Some(cid) = &row.contact_id {
            if rows::contact_opted_out(&self.db, cid).await? {
                return self.finish(&row, status::OPTED_OUT, None, Some("opted_out")).await;
            }
        }
        let Some(body) = self.texts.render(&row).await? else {
            return self.finish(&row, status::FAILED, None, Some("nothing_to_send")).await;
        };
        if row.in_doubt {
            match self.client.find(&row.to_phone, &body).await {
                Ok(Some(sent)) => {
                    tracing::info!(row = row.id, "earlier attempt had reached the provider; not resending");
                    return self.accepted(&row, sent).await;
                }
                Ok(None) => {}
                Err(e) => return self.retry(&row, attempts, true, &e).await,
            }
        }
        let callback = format!("{}/v1/sms/status", self.public_url);
        match self.client.send(&row.to_phone, &body, &callback).await {
            Ok(sent) => self.accepted(&row, sent).await,
            Err(SmsError::Rejected { code, opted_out }) => {
                let st = if opted_out { status::OPTED_OUT } else { status::FAILED };
                tracing::warn!(row = row.id, code = %code, "text rejected");
                self.finish(&row, st, None, Some(&code)).await
            }
            Err(e @ SmsError::InDoubt(_)) => self.retry(&row, attempts, true, &e).await,
            Err(e) => self.retry(&row, attempts, false, &e).await,
        }
    }

    async fn accepted(&self, row: &Row, sent: Sent) -> anyhow::Result<()> {
        let st = normalize_status(&sent.status).unwrap_or(status::QUEUED);
        self.finish(row, st, Some(sent.sid), None).await
    }

    async fn finish(
        &self,
        row: &Row,
        st: &str,
        sid: Option<String>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        Ok(rows::finish(&self.db, row, st, sid, error).await?)
    }

    async fn retry(&self, row: &Row, attempts: i32, in_doubt: bool, why: &SmsError) -> anyhow::Result<()> {
        let max = if row.kind == kind::CODE || row.kind == kind::CONTACT_ADDED {
            MAX_ATTEMPTS_OTHER
        } else {
            MAX_ATTEMPTS_ALERT
        };
        if attempts >= max {
            tracing::error!(row = row.id, attempts, "giving up on text");
            return self.finish(row, status::FAILED, None, Some("gave_up")).await;
        }
        let backoff = self.retry_base.saturating_mul(1 << (attempts - 1).clamp(0, 16)).min(MAX_BACKOFF);
        // ±20 % jitter so that many rows failing together do not retry in lockstep.
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let next = crate::now_ms() + (backoff.as_millis() as f64 * jitter) as i64;
        tracing::warn!(row = row.id, attempts, error = %why, "text not sent; will retry");
        Ok(rows::reschedule(&self.db, row, in_doubt, next).await?)
    }
}
