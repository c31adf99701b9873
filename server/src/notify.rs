//! Seam where an alert start notifies the person's emergency contacts.
//!
//! Called inside the transaction that creates the alert, so that notification work (the SMS
//! outbox rows of the contacts issue) commits atomically with the alert itself and is never lost
//! or sent for an alert that does not exist. Until contacts exist it only records the fact.

use sea_orm::{DatabaseTransaction, DbErr};

use crate::db::entity::alerts;

/// Queues notifications for a new alert within its creating transaction.
pub async fn alert_started(_txn: &DatabaseTransaction, alert: &alerts::Model) -> Result<(), DbErr> {
    tracing::info!(alert = %alert.id, "alert started; no contact notifications configured yet");
    Ok(())
}
