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

use alertme_protocol::{AlertStatus, Delivery};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Sent, SmsClient, SmsError};
use crate::storage::entity::{alerts, contacts, sms_outbox, users, watch_tokens};
use crate::live::Hub;

/// Rows sent at once: the contacts of one alert go out in parallel, not one after another.
const CONCURRENCY: usize = 16;
/// Attempts before an alert text is given up as failed (about 25 minutes with backoff).
const MAX_ATTEMPTS_ALERT: i32 = 30;
/// Attempts for other texts.
const MAX_ATTEMPTS_OTHER: i32 = 8;
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a row is for.
pub mod kind {
    /// "NAME needs help — watch live: …" to a contact.
    pub const ALERT: &str = "alert";
    /// The alert ended.
    pub const ALL_CLEAR: &str = "all_clear";
    /// The SOS phone went silent: last known position.
    pub const PHONE_SILENT: &str = "phone_silent";
    /// The person "cancelled" with the duress PIN: the alert goes on.
    pub const DURESS: &str = "duress";
    /// Informational text to a new contact.
    pub const CONTACT_ADDED: &str = "contact_added";
    /// Verification code.
    pub const CODE: &str = "code";
}

/// Statuses a row moves through. Only forward: see [`rank`].
pub mod status {
    /// Waiting for its (next) attempt.
    pub const PENDING: &str = "pending";
    /// An attempt is under way.
    pub const SENDING: &str = "sending";
    /// The provider accepted it.
    pub const QUEUED: &str = "queued";
    /// Left the provider (final when no delivery report follows).
    pub const SENT: &str = "sent";
    /// Delivered to the handset.
    pub const DELIVERED: &str = "delivered";
    /// The carrier could not deliver it.
    pub const UNDELIVERED: &str = "undelivered";
    /// Failed for good.
    pub const FAILED: &str = "failed";
    /// The recipient opted out (STOP).
    pub const OPTED_OUT: &str = "opted_out";
    /// Never sent: the person's texts for this hour were used up (SMS-pumping guard).
    pub const LIMITED: &str = "limited";
}

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

/// A text to queue.
#[derive(Debug, Clone, Default)]
pub struct NewText<'a> {
    /// One of [`kind`].
    pub kind: &'a str,
    /// The alert it is about.
    pub alert_id: Option<&'a str>,
    /// The contact it goes to.
    pub contact_id: Option<&'a str>,
    /// The person it is sent for (counts against their hourly budget).
    pub user_id: Option<&'a str>,
    /// Recipient, E.164.
    pub to: &'a str,
    /// Fixed text; `None` for texts worded at send time.
    pub body: Option<String>,
    /// Over the person's budget: recorded as [`status::LIMITED`] and never sent.
    pub limited: bool,
}

/// Queues a text inside the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(db: &C, t: NewText<'_>) -> Result<(), DbErr> {
    let now = crate::now_ms();
    let state = if t.limited { status::LIMITED } else { status::PENDING };
    sms_outbox::Entity::insert(sms_outbox::ActiveModel {
        kind: Set(t.kind.to_owned()),
        alert_id: Set(t.alert_id.map(str::to_owned)),
        contact_id: Set(t.contact_id.map(str::to_owned)),
        user_id: Set(t.user_id.map(str::to_owned)),
        to_phone: Set(t.to.to_owned()),
        body: Set(if t.limited { None } else { t.body }),
        status: Set(state.to_owned()),
        attempts: Set(0),
        in_doubt: Set(false),
        next_attempt_at: Set(now),
        attempt_started_at: Set(None),
        provider_sid: Set(None),
        error_code: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
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
pub struct Sender {
    /// Database.
    pub db: DatabaseConnection,
    /// Provider.
    pub client: SmsClient,
    /// To push delivery state to live alerts.
    pub hub: Hub,
    /// Derives contacts' watch tokens for the alert text.
    pub secret: Arc<Vec<u8>>,
    /// Base of watch links and of the status callback URL.
    pub public_url: String,
    /// First retry delay.
    pub retry_base: Duration,
    /// Age after which a `queued` text's status is fetched instead of awaited.
    pub status_poll: Duration,
}

impl Sender {
    /// Runs forever: sends due rows, sleeps until the next is due or a wake-up.
    pub async fn run(self: Arc<Self>, outbox: Outbox) {
        // Rows caught mid-send by a crash may or may not have reached the provider.
        if let Err(e) = sms_outbox::Entity::update_many()
            .col_expr(sms_outbox::Column::Status, status::PENDING.into())
            .col_expr(sms_outbox::Column::InDoubt, true.into())
            .filter(sms_outbox::Column::Status.eq(status::SENDING))
            .exec(&self.db)
            .await
        {
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
    async fn poll_stale(&self) -> Result<(), DbErr> {
        let cutoff = crate::now_ms() - self.status_poll.as_millis() as i64;
        let stale = sms_outbox::Entity::find()
            .filter(sms_outbox::Column::Status.eq(status::QUEUED))
            .filter(sms_outbox::Column::UpdatedAt.lt(cutoff))
            .limit(100)
            .all(&self.db)
            .await?;
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
            sms_outbox::Entity::update_many()
                .col_expr(sms_outbox::Column::Status, new.into())
                .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
                .filter(sms_outbox::Column::Id.eq(row.id))
                .filter(sms_outbox::Column::Status.eq(status::QUEUED))
                .exec(&self.db)
                .await?;
            if let (true, Some(alert)) = (new != status::QUEUED, &row.alert_id) {
                refresh(&self.db, &self.hub, alert).await;
            }
        }
        Ok(())
    }

    /// Sends every due row; returns when the next pending row is due.
    async fn send_due(self: &Arc<Self>) -> Result<Option<i64>, DbErr> {
        loop {
            let now = crate::now_ms();
            let due = sms_outbox::Entity::find()
                .filter(sms_outbox::Column::Status.eq(status::PENDING))
                .filter(sms_outbox::Column::NextAttemptAt.lte(now))
                .order_by_asc(sms_outbox::Column::Id)
                .limit(CONCURRENCY as u64)
                .all(&self.db)
                .await?;
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
                refresh(&self.db, &self.hub, &a).await;
            }
        }
        let next: Option<i64> = sms_outbox::Entity::find()
            .select_only()
            .column_as(sms_outbox::Column::NextAttemptAt.min(), "next")
            .filter(sms_outbox::Column::Status.eq(status::PENDING))
            .into_tuple::<Option<i64>>()
            .one(&self.db)
            .await?
            .flatten();
        Ok(next)
    }

    async fn attempt(&self, row: sms_outbox::Model) -> Result<(), DbErr> {
        let now = crate::now_ms();
        // Claim it: with several servers on one database, exactly one gets the row.
        let claimed = sms_outbox::Entity::update_many()
            .col_expr(sms_outbox::Column::Status, status::SENDING.into())
            .col_expr(sms_outbox::Column::Attempts, (row.attempts + 1).into())
            .col_expr(sms_outbox::Column::AttemptStartedAt, now.into())
            .col_expr(sms_outbox::Column::UpdatedAt, now.into())
            .filter(sms_outbox::Column::Id.eq(row.id))
            .filter(sms_outbox::Column::Status.eq(status::PENDING))
            .exec(&self.db)
            .await?;
        if claimed.rows_affected == 0 {
            return Ok(());
        }
        let attempts = row.attempts + 1;
        if let Some(cid) = &row.contact_id {
            let opted = contacts::Entity::find_by_id(cid.clone())
                .one(&self.db)
                .await?
                .is_some_and(|c| c.opted_out_at.is_some());
            if opted {
                return self.finish(&row, status::OPTED_OUT, None, Some("opted_out")).await;
            }
        }
        let Some(body) = self.render(&row).await? else {
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

    async fn accepted(&self, row: &sms_outbox::Model, sent: Sent) -> Result<(), DbErr> {
        let st = normalize_status(&sent.status).unwrap_or(status::QUEUED);
        self.finish(row, st, Some(sent.sid), None).await
    }

    async fn finish(
        &self,
        row: &sms_outbox::Model,
        st: &str,
        sid: Option<String>,
        error: Option<&str>,
    ) -> Result<(), DbErr> {
        let mut q = sms_outbox::Entity::update_many()
            .col_expr(sms_outbox::Column::Status, st.into())
            .col_expr(sms_outbox::Column::InDoubt, false.into())
            .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
            .col_expr(sms_outbox::Column::ErrorCode, error.map(str::to_owned).into());
        if let Some(sid) = sid {
            q = q.col_expr(sms_outbox::Column::ProviderSid, sid.into());
        }
        if row.kind == kind::CODE {
            // The code is only needed until the provider has it.
            q = q.col_expr(sms_outbox::Column::Body, Option::<String>::None.into());
        }
        q.filter(sms_outbox::Column::Id.eq(row.id)).exec(&self.db).await?;
        Ok(())
    }

    async fn retry(
        &self,
        row: &sms_outbox::Model,
        attempts: i32,
        in_doubt: bool,
        why: &SmsError,
    ) -> Result<(), DbErr> {
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
        sms_outbox::Entity::update_many()
            .col_expr(sms_outbox::Column::Status, status::PENDING.into())
            .col_expr(sms_outbox::Column::InDoubt, (in_doubt || row.in_doubt).into())
            .col_expr(sms_outbox::Column::NextAttemptAt, next.into())
            .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
            .filter(sms_outbox::Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The text of a row. Alert texts are rendered now rather than stored, so the database never
    /// holds a usable watch link; rendering is deterministic, which reconciliation relies on.
    async fn render(&self, row: &sms_outbox::Model) -> Result<Option<String>, DbErr> {
        if ![kind::ALERT, kind::ALL_CLEAR, kind::PHONE_SILENT, kind::DURESS].contains(&row.kind.as_str()) {
            return Ok(row.body.clone());
        }
        let (Some(alert_id), Some(contact_id)) = (&row.alert_id, &row.contact_id) else {
            return Ok(None);
        };
        let Some(alert) = alerts::Entity::find_by_id(alert_id.clone()).one(&self.db).await? else {
            return Ok(None);
        };
        let name = users::Entity::find_by_id(alert.user_id.clone())
            .one(&self.db)
            .await?
            .map_or_else(|| "Someone".into(), |u| u.name);
        if row.kind == kind::ALERT {
            let token = crate::domain::accounts::watch_token(&self.secret, alert_id, &contact_label(contact_id));
            let link = format!("{}/w/{token}", self.public_url);
            return Ok(Some(match (alert.duress, alert.source.as_deref(), &alert.note) {
                (Some(true), _, _) => {
                    format!("{name} may be in danger (possible duress) — watch live: {link}")
                }
                (_, Some("timer"), Some(note)) => {
                    format!("{name} needs help — {note}. Last known position: {link}")
                }
                _ => format!("{name} needs help — watch live: {link}"),
            }));
        }
        if row.kind == kind::DURESS {
            let token = crate::domain::accounts::watch_token(&self.secret, alert_id, &contact_label(contact_id));
            return Ok(Some(format!(
                "{name} cancelled the alert with their duress PIN: they may be forced to. The alert is still on; do not call them. Watch: {}/w/{token}",
                self.public_url
            )));
        }
        if row.kind == kind::PHONE_SILENT {
            let token = crate::domain::accounts::watch_token(&self.secret, alert_id, &contact_label(contact_id));
            let last = crate::storage::entity::fixes::Entity::find()
                .filter(crate::storage::entity::fixes::Column::AlertId.eq(alert_id.clone()))
                .order_by_desc(crate::storage::entity::fixes::Column::DeviceTime)
                .one(&self.db)
                .await?;
            let place = last.map_or_else(
                || "no position was received".to_owned(),
                |f| format!("last known position https://www.openstreetmap.org/?mlat={:.5}&mlon={:.5}#map=17/{:.5}/{:.5}", f.lat, f.lon, f.lat, f.lon),
            );
            return Ok(Some(format!(
                "{name}'s phone has gone silent during their SOS; {place} — watch: {}/w/{token}",
                self.public_url
            )));
        }
        Ok(Some(match AlertStatus::parse(&alert.status) {
            Some(AlertStatus::Cancelled) => {
                format!("All clear: {name} cancelled the alert, it was a false alarm. — AlertMe")
            }
            _ => format!("All clear: {name}'s alert has been resolved. — AlertMe"),
        }))
    }
}

/// Texts sent for a person (to their contacts) since `since`, ms: what their hourly budget counts.
pub async fn sent_for<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    kinds: &[&str],
    since: i64,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    sms_outbox::Entity::find()
        .filter(sms_outbox::Column::UserId.eq(user_id))
        .filter(sms_outbox::Column::Kind.is_in(kinds.iter().copied()))
        .filter(sms_outbox::Column::CreatedAt.gte(since))
        .filter(sms_outbox::Column::Status.ne(status::LIMITED))
        .count(db)
        .await
}

/// Watch-token label of a contact.
pub fn contact_label(contact_id: &str) -> String {
    format!("contact:{contact_id}")
}

/// Current delivery state of an alert's contact texts.
pub async fn deliveries(db: &DatabaseConnection, alert_id: &str) -> Result<Vec<Delivery>, DbErr> {
    let rows = sms_outbox::Entity::find()
        .filter(sms_outbox::Column::AlertId.eq(alert_id))
        .filter(sms_outbox::Column::Kind.eq(kind::ALERT))
        .order_by_asc(sms_outbox::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.contact_id.clone()).collect();
    let people = contacts::Entity::find().filter(contacts::Column::Id.is_in(ids)).all(db).await?;
    let tokens =
        watch_tokens::Entity::find().filter(watch_tokens::Column::AlertId.eq(alert_id)).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cid = r.contact_id.clone().unwrap_or_default();
            let label = contact_label(&cid);
            Delivery {
                contact: people
                    .iter()
                    .find(|c| c.id == cid)
                    .map_or_else(|| "(removed contact)".into(), |c| c.name.clone()),
                phone: crate::e164::mask(&r.to_phone),
                status: r.status,
                opened: tokens.iter().any(|t| t.label == label && t.first_opened_at.is_some()),
                revoked: tokens.iter().any(|t| t.label == label && t.revoked_at.is_some()),
                contact_id: people.iter().any(|c| c.id == cid).then_some(cid),
            }
        })
        .collect())
}

/// Pushes an alert's delivery state to its live session, if any.
pub async fn refresh(db: &DatabaseConnection, hub: &Hub, alert_id: &str) {
    let Some(session) = hub.get(alert_id) else { return };
    let _reload = session.deliveries_reload.lock().await;
    match deliveries(db, alert_id).await {
        Ok(d) => session.set_deliveries(d),
        Err(e) => tracing::error!(error = %e, "loading delivery state failed"),
    }
}
