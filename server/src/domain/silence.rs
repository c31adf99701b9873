//! A phone gone silent during its SOS: the contacts are told once, with the last known position.

use alertme_protocol::AlertStatus;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::Core;
use crate::error::Result;
use crate::storage::entity::alerts;

/// Texts the contacts once when an active SOS's phone stays silent for `after` (no fix, audio
/// or heartbeat): their last known position, so help can start from there.
pub async fn watch(state: Core, after: std::time::Duration) {
    let period = (after / 4).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for s in state.hub.sessions() {
            if s.silent_for().is_some_and(|d| d >= after) {
                if let Err(e) = text_silence(&state, &s.alert_id).await {
                    tracing::error!(alert = %s.alert_id, error = %e, "phone-silent texts failed");
                }
            }
        }
    }
}

async fn text_silence(state: &Core, alert_id: &str) -> Result<()> {
    let txn = crate::storage::write_txn(&state.db).await?;
    let res = alerts::Entity::update_many()
        .col_expr(alerts::Column::SilentTextedAt, crate::now_ms().into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .filter(alerts::Column::SilentTextedAt.is_null())
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(()); // already told (maybe by another server), or over
    }
    crate::domain::notify::phone_silent(&txn, alert_id).await?;
    txn.commit().await?;
    tracing::warn!(alert = %alert_id, "phone silent during SOS; contacts texted");
    state.outbox.wake();
    Ok(())
}
