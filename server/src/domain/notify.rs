//! Which texts go out, to whom, and their wording: alerts to contacts, follow-ups, codes, notices.
//!
//! An alert's texts are queued inside the transaction that starts or ends it: the texts (outbox
//! rows) and each contact's own watch token commit atomically with the alert itself, so none is
//! lost and none is sent for an alert that does not exist. The SMS engine does the sending; the
//! texts that carry a link are worded at send time ([`SendTime`]), so the database never holds
//! a usable link.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use alertme_protocol::{AlertStatus, Reason};

use crate::domain::accounts;
use crate::domain::wording::{self, Arg};
use crate::domain::Core;
use crate::storage::entity::{
    alert_events, alerts, contacts, fixes, responders, sms_outbox, users, watch_tokens,
};
use crate::storage::outbox::{self, contact_label, kind, NewText, Row};
use crate::storage::Db;

/// The sign-in code text, in `lang`.
pub fn code_text(lang: &str, code: &str, minutes: u64) -> String {
    wording::text(lang, "sms-code", &[("code", Arg::Text(code)), ("minutes", Arg::Count(minutes))])
}

/// The text that tells a new emergency contact who added them, and how to opt out, in `lang`.
pub fn contact_added_text(lang: &str, name: &str) -> String {
    wording::text(lang, "sms-contact-added", &[("name", Arg::Text(name))])
}

/// How many more alert texts this person may send this hour (`budget` per hour). Past it,
/// alert texts are recorded as `limited` and never sent: an account used to start and cancel
/// alerts in a loop cannot turn its contacts' numbers into a texting bill (responders still see
/// every alert). Follow-ups are not limited: whoever was told of an alert hears how it ended,
/// and there are at most three per alert text.
async fn remaining(txn: &DatabaseTransaction, user_id: &str, budget: u64) -> Result<u64, DbErr> {
    // The person's row is locked (PostgreSQL; SQLite's write transaction is exclusive anyway),
    // so that alerts started in parallel count each other's texts. NO KEY UPDATE: the new
    // alert row already holds a key-share lock on it (foreign key), which this must not wait on.
    crate::storage::entity::users::Entity::find_by_id(user_id.to_owned())
        .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
        .one(txn)
        .await?;
    let since = crate::now_ms() - 3_600_000;
    Ok(budget.saturating_sub(outbox::sent_for(txn, user_id, &[kind::ALERT], since).await?))
}

/// Queues one alert text per contact, each with a watch link of their own (per-contact access
/// that can be revoked, and "opened" per contact). Returns how many were queued.
pub async fn alert_started(
    txn: &DatabaseTransaction,
    alert: &alerts::Model,
    secret: &[u8],
    budget: u64,
) -> Result<usize, DbErr> {
    let people = contacts::Entity::find()
        .filter(contacts::Column::UserId.eq(alert.user_id.clone()))
        .filter(contacts::Column::OptedOutAt.is_null())
        .order_by_asc(contacts::Column::Position)
        .all(txn)
        .await?;
    let mut left = remaining(txn, &alert.user_id, budget).await?;
    for c in &people {
        let label = contact_label(&c.id);
        watch_tokens::Entity::insert(watch_tokens::ActiveModel {
            token_hash: Set(accounts::hash_token(&accounts::watch_token(secret, &alert.id, &label))),
            alert_id: Set(alert.id.clone()),
            label: Set(label),
            created_at: Set(alert.started_at),
            revoked_at: Set(None),
            first_opened_at: Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        let text = NewText {
            kind: kind::ALERT,
            alert_id: Some(&alert.id),
            contact_id: Some(&c.id),
            user_id: Some(&alert.user_id),
            to: &c.phone,
            body: None,
            limited: left == 0,
        };
        outbox::enqueue(txn, text).await?;
        left = left.saturating_sub(1);
    }
    if left == 0 {
        tracing::warn!(alert = %alert.id, "this person's texts for the hour are used up; contacts over it are not texted");
    }
    tracing::info!(alert = %alert.id, contacts = people.len(), "alert texts queued");
    Ok(people.len())
}

/// Queues an "all clear" to every contact who was texted about the alert.
pub async fn alert_ended(txn: &DatabaseTransaction, alert_id: &str) -> Result<(), DbErr> {
    follow_up(txn, alert_id, kind::ALL_CLEAR).await
}

/// Queues "the phone went silent, last known position …" to every contact texted about the alert.
pub async fn phone_silent(txn: &DatabaseTransaction, alert_id: &str) -> Result<(), DbErr> {
    follow_up(txn, alert_id, kind::PHONE_SILENT).await
}

/// Queues "cancelled under duress, the alert goes on" to every contact texted about the alert.
pub async fn duress_cancel(txn: &DatabaseTransaction, alert_id: &str) -> Result<(), DbErr> {
    follow_up(txn, alert_id, kind::DURESS).await
}

/// A follow-up goes to the contacts who were actually texted the alert (not to those over the
/// budget, who never heard of it).
async fn follow_up(txn: &DatabaseTransaction, alert_id: &str, what: &str) -> Result<(), DbErr> {
    let Some(alert) = alerts::Entity::find_by_id(alert_id.to_owned()).one(txn).await? else {
        return Ok(());
    };
    let texted = sms_outbox::Entity::find()
        .filter(sms_outbox::Column::AlertId.eq(alert_id))
        .filter(sms_outbox::Column::Kind.eq(kind::ALERT))
        .filter(sms_outbox::Column::Status.ne(outbox::status::LIMITED))
        .all(txn)
        .await?;
    for r in texted {
        let text = NewText {
            kind: what,
            alert_id: Some(alert_id),
            contact_id: r.contact_id.as_deref(),
            user_id: Some(&alert.user_id),
            to: &r.to_phone,
            body: None,
            limited: false,
        };
        outbox::enqueue(txn, text).await?;
    }
    Ok(())
}

/// Words the texts the outbox words at send time, and tells live alerts when delivery states
/// change (the SMS engine's [`crate::sms::outbox::Texts`]).
#[derive(Clone)]
pub struct SendTime(pub Core);

impl SendTime {
    /// What raised the alert, in words: an SOS, a missed check-in (with what the person wrote),
    /// a zone crossed, or the duress PIN.
    fn alert_text(
        alert: &alerts::Model,
        text: impl Fn(&str, Vec<(&'static str, Arg<'_>)>) -> String,
    ) -> String {
        if alert.duress == Some(true) {
            return text("sms-alert-duress", vec![]);
        }
        match alert.parsed_reason() {
            Some(Reason::MissedCheckIn { note, destination }) => {
                // Stored trimmed, empty ones as none (`timers::text_field`).
                let detail: Vec<String> = [note, destination].into_iter().flatten().collect();
                if detail.is_empty() {
                    text("sms-alert-timer", vec![])
                } else {
                    let detail = detail.join(", ");
                    text("sms-alert-timer-detail", vec![("detail", Arg::Text(&detail))])
                }
            }
            Some(Reason::EnteredDangerZone { zone }) => {
                text("sms-alert-zone-entered", vec![("zone", Arg::Text(&zone))])
            }
            Some(Reason::LeftSafeZone { zone }) => {
                text("sms-alert-zone-left", vec![("zone", Arg::Text(&zone))])
            }
            // Duress is worded above; an SOS has no reason.
            Some(Reason::DuressCheckIn { .. } | Reason::DuressErase | Reason::Other) | None => {
                text("sms-alert", vec![])
            }
        }
    }

    /// How it ended, never wrong about who ended it: the person, or which responder.
    async fn ended_text(
        &self,
        alert: &alerts::Model,
        text: impl Fn(&str, Vec<(&'static str, Arg<'_>)>) -> String,
    ) -> Result<String, DbErr> {
        if AlertStatus::parse(&alert.status) != Some(AlertStatus::Resolved) {
            return Ok(text("sms-ended", vec![]));
        }
        let ended = alert_events::Entity::find()
            .filter(alert_events::Column::AlertId.eq(alert.id.clone()))
            .filter(alert_events::Column::Kind.eq(AlertStatus::Resolved.as_str()))
            .one(&self.0.db)
            .await?;
        let by = match ended.and_then(|e| e.actor) {
            Some(actor) => responders::Entity::find_by_id(actor).one(&self.0.db).await?.map(|r| r.name),
            None => None,
        };
        Ok(match by {
            Some(r) => text("sms-resolved-by", vec![("responder", Arg::Text(&r))]),
            // Resolved from the person's own phone.
            None if alert.claimed_by.is_none() => text("sms-ended", vec![]),
            None => text("sms-resolved", vec![]),
        })
    }
}

impl crate::sms::outbox::Texts for SendTime {
    /// The text of a row. Alert texts are rendered now rather than stored, so the database never
    /// holds a usable watch link; rendering is deterministic, which reconciliation relies on.
    async fn render(&self, row: &Row) -> anyhow::Result<Option<String>> {
        if ![kind::ALERT, kind::ALL_CLEAR, kind::PHONE_SILENT, kind::DURESS].contains(&row.kind.as_str()) {
            return Ok(row.body.clone());
        }
        let (Some(alert_id), Some(contact_id)) = (&row.alert_id, &row.contact_id) else {
            return Ok(None);
        };
        let Some(alert) = alerts::Entity::find_by_id(alert_id.clone()).one(&self.0.db).await? else {
            return Ok(None);
        };
        let person = users::Entity::find_by_id(alert.user_id.clone()).one(&self.0.db).await?;
        let contact = contacts::Entity::find_by_id(contact_id.clone()).one(&self.0.db).await?;
        // The contact's own language, else the person's.
        let lang = contact
            .and_then(|c| c.language)
            .or_else(|| person.as_ref().map(|u| u.language.clone()))
            .unwrap_or_default();
        let name = person.map_or_else(|| "AlertMe".to_owned(), |u| u.name);
        let token = accounts::watch_token(&self.0.secret, alert_id, &contact_label(contact_id));
        let link = self.0.watch_url(&token);
        let (name, link) = (Arg::Text(&name), Arg::Text(&link));
        let text = |id: &str, args: Vec<(&'static str, Arg<'_>)>| {
            let mut all = vec![("name", name.clone()), ("link", link.clone())];
            all.extend(args);
            wording::text(&lang, id, &all)
        };
        Ok(Some(match row.kind.as_str() {
            kind::ALERT => Self::alert_text(&alert, text),
            kind::DURESS => text("sms-duress-cancel", vec![]),
            kind::PHONE_SILENT => {
                let last = fixes::Entity::find()
                    .filter(fixes::Column::AlertId.eq(alert_id.clone()))
                    .order_by_desc(fixes::Column::DeviceTime)
                    .one(&self.0.db)
                    .await?;
                match last {
                    Some(f) => {
                        let at =
                            format!("https://www.openstreetmap.org/?mlat={:.5}&mlon={:.5}", f.lat, f.lon);
                        text("sms-phone-silent", vec![("position", Arg::Text(&at))])
                    }
                    None => text("sms-phone-silent-nowhere", vec![]),
                }
            }
            _ => self.ended_text(&alert, text).await?,
        }))
    }
    async fn delivery_changed(&self, alert_id: &str) {
        refresh(&self.0, alert_id).await;
    }
}

/// Pushes an alert's delivery state to its live session, if any (in a cluster, wherever it is).
pub async fn refresh(core: &Core, alert_id: &str) {
    let Some(session) = core.hub.get(alert_id) else {
        if let Some(c) = &core.cluster {
            c.touch(alert_id).await;
        }
        return;
    };
    let _reload = session.deliveries_reload.lock().await;
    match outbox::deliveries(&core.db, alert_id).await {
        Ok(d) => session.set_deliveries(d),
        Err(e) => tracing::error!(error = %e, "loading delivery state failed"),
    }
}

/// A provider's delivery report for the text it knows as `sid`: the row moves forward only
/// (callbacks arrive in any order), and the alert's live session hears of it.
pub async fn delivery_report(
    core: &Core,
    sid: &str,
    new: &str,
    error_code: Option<&str>,
) -> Result<(), DbErr> {
    let Some(row) = outbox::by_sid(&core.db, sid).await? else { return Ok(()) };
    if crate::sms::outbox::rank(new) <= crate::sms::outbox::rank(&row.status) {
        return Ok(());
    }
    outbox::advance(&core.db, row.id, &row.status, new, error_code).await?;
    if let Some(alert) = &row.alert_id {
        refresh(core, alert).await;
    }
    Ok(())
}

/// Outbox rows by status, for `/metrics`.
pub async fn outbox_states(db: &Db) -> Result<Vec<(String, i64)>, DbErr> {
    outbox::count_by_status(db).await
}
