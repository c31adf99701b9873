//! Retention: an ended alert's fixes and recording are deleted after the deployment's period,
//! unless a responder put it on legal hold.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::custody::{self, Who};
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::{alerts, audio_chunks, audio_parts, fixes, refused_fixes, uploads};

const DAY_MS: i64 = 86_400_000;
/// From the start to the first sweep.
const FIRST_SWEEP_MS: i64 = 3_600_000;
/// Alerts purged per transaction (a large backlog goes in steps, never one huge transaction).
const BATCH: u64 = 50;

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Alerts whose evidence went.
    pub alerts: u64,
    /// Fixes deleted.
    pub fixes: u64,
    /// Media chunks deleted.
    pub chunks: u64,
}

/// The daily job: the first sweep an hour after the start (the log says at once what it will
/// delete, so an operator who upgraded, or set the period too short, has time to act; a day
/// would never come for a server restarted daily), then one per day of the server's clock (a
/// test moves it).
pub async fn run(state: Core) {
    if state.settings.retention_days == 0 {
        // Kept for ever: nothing to do, but a worker that ends means a crash to the supervisor.
        return std::future::pending().await;
    }
    match due(&state).await {
        Ok(n) if n > 0 => tracing::warn!(
            alerts = n,
            days = state.settings.retention_days,
            "retention: this many ended alerts are past the period; their fixes and recordings will be \
             deleted in an hour unless put on legal hold (or ALERTME_RETENTION_DAYS is changed)"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "retention: counting what is due failed"),
    }
    let mut next = state.clock.now_ms() + FIRST_SWEEP_MS;
    loop {
        if state.clock.now_ms() >= next {
            match sweep(&state).await {
                Ok(s) if s.alerts > 0 => tracing::info!(
                    alerts = s.alerts,
                    fixes = s.fixes,
                    chunks = s.chunks,
                    "retention: ended alerts' fixes and recordings deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention sweep failed"),
            }
            next = state.clock.now_ms() + DAY_MS;
        }
        let wait = (next - state.clock.now_ms()).clamp(0, 3_600_000) as u64;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = state.clock.changed() => {}
        }
    }
}

fn due_now(state: &Core) -> sea_orm::Select<alerts::Entity> {
    let cutoff = state.clock.now_ms() - i64::from(state.settings.retention_days) * DAY_MS;
    alerts::Entity::find()
        .filter(alerts::Column::Status.ne(alertme_protocol::AlertStatus::Active.as_str()))
        .filter(alerts::Column::EndedAt.lt(cutoff))
        .filter(alerts::Column::HoldAt.is_null())
        .filter(alerts::Column::PurgedAt.is_null())
}

/// How many ended alerts are past the period now.
async fn due(state: &Core) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(due_now(state).count(&state.db).await?)
}

/// Deletes the fixes and media of every ended alert past the retention period and not on hold;
/// the alert row, its events, seals and custody log stay (what existed, and that it was deleted).
/// Also completes erasures that waited (for a hold lifted, or a live duress alert now ended).
pub async fn sweep(state: &Core) -> Result<Swept> {
    crate::domain::erasure::finish_waiting(state).await?;
    let mut total = Swept::default();
    loop {
        let due: Vec<String> = due_now(state)
            .select_only()
            .column(alerts::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(&state.db)
            .await?;
        if due.is_empty() {
            return Ok(total);
        }
        for id in due {
            let s = purge(state, &id, "retention").await?;
            total.alerts += s.alerts;
            total.fixes += s.fixes;
            total.chunks += s.chunks;
        }
    }
}

/// Deletes one alert's fixes and media (unless it is on hold, checked in the same transaction).
async fn purge(state: &Core, alert_id: &str, why: &str) -> Result<Swept> {
    let txn = crate::storage::write_txn(&state.db).await?;
    let now = crate::now_ms();
    let marked = alerts::Entity::update_many()
        .col_expr(alerts::Column::PurgedAt, now.into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::HoldAt.is_null())
        .filter(alerts::Column::PurgedAt.is_null())
        .exec(&txn)
        .await?;
    if marked.rows_affected == 0 {
        return Ok(Swept::default());
    }
    let f = fixes::Entity::delete_many().filter(fixes::Column::AlertId.eq(alert_id)).exec(&txn).await?;
    refused_fixes::Entity::delete_many()
        .filter(refused_fixes::Column::AlertId.eq(alert_id))
        .exec(&txn)
        .await?;
    let c = audio_chunks::Entity::delete_many()
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .exec(&txn)
        .await?;
    audio_parts::Entity::delete_many().filter(audio_parts::Column::AlertId.eq(alert_id)).exec(&txn).await?;
    uploads::Entity::delete_many().filter(uploads::Column::AlertId.eq(alert_id)).exec(&txn).await?;
    let detail = format!("{why}: {} fixes and {} recording chunks deleted", f.rows_affected, c.rows_affected);
    crate::domain::alerts::event_with(&txn, alert_id, "purged", None, now, Some(detail)).await?;
    txn.commit().await?;
    Ok(Swept { alerts: 1, fixes: f.rows_affected, chunks: c.rows_affected })
}

/// Puts an alert on legal hold (a responder, with a reason): retention and erasure skip it.
pub async fn hold(state: &Core, alert_id: &str, who: &Who, reason: &str, addr: Option<String>) -> Result<()> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Error::BadRequest("a legal hold needs a reason (1 to 500 characters)".into()));
    }
    let Who::Responder { id, name } = who else { return Err(Error::Forbidden) };
    let txn = crate::storage::write_txn(&state.db).await?;
    let alert = alerts::Entity::find_by_id(alert_id.to_owned()).one(&txn).await?.ok_or(Error::NotFound)?;
    if alert.purged_at.is_some() {
        return Err(Error::Conflict("this alert's evidence was already deleted".into()));
    }
    let now = crate::now_ms();
    let held = alerts::Entity::update_many()
        .col_expr(alerts::Column::HoldReason, reason.into())
        .col_expr(alerts::Column::HoldBy, name.as_str().into())
        .col_expr(alerts::Column::HoldAt, now.into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::PurgedAt.is_null())
        .exec(&txn)
        .await?;
    if held.rows_affected == 0 {
        // Purged between the read above and now (another node's sweep).
        return Err(Error::Conflict("this alert's evidence was already deleted".into()));
    }
    crate::domain::alerts::event_with(&txn, alert_id, "hold", Some(id), now, Some(reason.to_owned())).await?;
    custody::record(&txn, alert_id, custody::action::HOLD_SET, who, addr, Some(reason.to_owned())).await?;
    txn.commit().await?;
    Ok(())
}

/// Lifts a legal hold. An alert of a person who erased their account meanwhile goes now; one
/// past the retention period goes at the next sweep.
pub async fn lift(state: &Core, alert_id: &str, who: &Who, addr: Option<String>) -> Result<()> {
    let Who::Responder { id, .. } = who else { return Err(Error::Forbidden) };
    let txn = crate::storage::write_txn(&state.db).await?;
    let alert = alerts::Entity::find_by_id(alert_id.to_owned()).one(&txn).await?.ok_or(Error::NotFound)?;
    if alert.hold_at.is_none() {
        return Err(Error::Conflict("this alert is not on hold".into()));
    }
    let now = crate::now_ms();
    alerts::Entity::update_many()
        .col_expr(alerts::Column::HoldReason, Option::<String>::None.into())
        .col_expr(alerts::Column::HoldBy, Option::<String>::None.into())
        .col_expr(alerts::Column::HoldAt, Option::<i64>::None.into())
        .filter(alerts::Column::Id.eq(alert_id))
        .exec(&txn)
        .await?;
    crate::domain::alerts::event(&txn, alert_id, "hold_lifted", Some(id), now).await?;
    custody::record(&txn, alert_id, custody::action::HOLD_LIFTED, who, addr, None).await?;
    txn.commit().await?;
    crate::domain::erasure::after_hold_lifted(state, &alert.user_id).await
}
