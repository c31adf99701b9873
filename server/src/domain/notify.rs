//! What an alert's start and end tell the person's emergency contacts.
//!
//! Both run inside the transaction that starts or ends the alert: the texts (outbox rows) and
//! each contact's own watch token commit atomically with the alert itself, so none is lost and
//! none is sent for an alert that does not exist. The outbox sender does the sending.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::domain::accounts;
use crate::storage::entity::{alerts, contacts, sms_outbox, watch_tokens};
use crate::sms::outbox::{self, contact_label, kind, NewText};

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
