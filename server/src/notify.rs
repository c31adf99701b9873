//! What an alert's start and end tell the person's emergency contacts.
//!
//! Both run inside the transaction that starts or ends the alert: the texts (outbox rows) and
//! each contact's own watch token commit atomically with the alert itself, so none is lost and
//! none is sent for an alert that does not exist. The outbox sender does the sending.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::auth;
use crate::db::entity::{alerts, contacts, sms_outbox, watch_tokens};
use crate::sms::outbox::{self, contact_label, kind};

/// Queues one alert text per contact, each with a watch link of their own (per-contact access
/// that can be revoked, and "opened" per contact). Returns how many were queued.
pub async fn alert_started(
    txn: &DatabaseTransaction,
    alert: &alerts::Model,
    secret: &[u8],
) -> Result<usize, DbErr> {
    let people = contacts::Entity::find()
        .filter(contacts::Column::UserId.eq(alert.user_id.clone()))
        .filter(contacts::Column::OptedOutAt.is_null())
        .order_by_asc(contacts::Column::Position)
        .all(txn)
        .await?;
    for c in &people {
        let label = contact_label(&c.id);
        watch_tokens::Entity::insert(watch_tokens::ActiveModel {
            token_hash: Set(auth::hash_token(&auth::watch_token(secret, &alert.id, &label))),
            alert_id: Set(alert.id.clone()),
            label: Set(label),
            created_at: Set(alert.started_at),
            revoked_at: Set(None),
            first_opened_at: Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        outbox::enqueue(txn, kind::ALERT, Some(&alert.id), Some(&c.id), &c.phone, None).await?;
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

async fn follow_up(txn: &DatabaseTransaction, alert_id: &str, what: &str) -> Result<(), DbErr> {
    let texted = sms_outbox::Entity::find()
        .filter(sms_outbox::Column::AlertId.eq(alert_id))
        .filter(sms_outbox::Column::Kind.eq(kind::ALERT))
        .all(txn)
        .await?;
    for r in texted {
        outbox::enqueue(txn, what, Some(alert_id), r.contact_id.as_deref(), &r.to_phone, None).await?;
    }
    Ok(())
}
