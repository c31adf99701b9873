//! Where a person is and has been: last known positions, a raised alert's first fix, trails.

use alertme_protocol::Fix;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::{fixes, user_positions};
use crate::storage::writer::fix_from_row;
use crate::storage::Db;

/// Up to `limit` fixes of an alert in device-time order, after `after` (device time, seq):
/// keyset pages, so a phone backfilling older fixes meanwhile cannot make a page repeat or
/// skip one.
pub async fn page(db: &Db, alert_id: &str, after: Option<(i64, u64)>, limit: u64) -> Result<Vec<Fix>> {
    let mut find = fixes::Entity::find().filter(fixes::Column::AlertId.eq(alert_id));
    if let Some((t, seq)) = after {
        find = find.filter(Condition::any().add(fixes::Column::DeviceTime.gt(t)).add(
            Condition::all().add(fixes::Column::DeviceTime.eq(t)).add(fixes::Column::Seq.gt(seq as i64)),
        ));
    }
    let rows = find
        .order_by_asc(fixes::Column::DeviceTime)
        .order_by_asc(fixes::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(fix_from_row).collect())
}

/// Stores a phone's position outside an SOS as its person's last known position.
pub async fn track(state: &Core, user_id: &str, fix: &Fix) -> Result<()> {
    fix.validate().map_err(Error::BadRequest)?;
    let current = user_positions::Entity::find_by_id(user_id.to_owned()).one(&state.db).await?;
    if current.as_ref().is_some_and(|c| c.time_ms >= fix.time_ms) {
        return Ok(()); // backfill never replaces a newer position
    }
    user_positions::Entity::delete_by_id(user_id.to_owned()).exec(&state.db).await?;
    user_positions::ActiveModel {
        user_id: Set(user_id.to_owned()),
        lat: Set(fix.lat),
        lon: Set(fix.lon),
        accuracy_m: Set(fix.accuracy_m),
        time_ms: Set(fix.time_ms),
    }
    .insert(&state.db)
    .await?;
    Ok(())
}

/// The person's last known position (from outside an SOS), as a fix 0 for a server-raised alert.
pub async fn last_known<C: sea_orm::ConnectionTrait>(db: &C, user_id: &str) -> Result<Option<Fix>> {
    let Some(p) = user_positions::Entity::find_by_id(user_id.to_owned()).one(db).await? else {
        return Ok(None);
    };
    Ok(Some(Fix {
        seq: 0,
        lat: p.lat,
        lon: p.lon,
        accuracy_m: p.accuracy_m,
        time_ms: p.time_ms,
        battery_pct: None,
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    }))
}

/// Stores `fix` as fix `seq` 0 of a server-raised alert (phones number theirs from 1, so it
/// never collides with what a phone streams into the alert later).
pub async fn add_fix_zero(
    state: &Core,
    txn: &sea_orm::DatabaseTransaction,
    alert_id: &str,
    fix: &Fix,
) -> Result<()> {
    // The first item of the alert's evidence chain (the writer goes on from it).
    let mut row =
        crate::storage::writer::fix_row(alert_id, &Fix { seq: 0, ..fix.clone() }, state.clock.now_ms());
    let tip = crate::storage::evidence::tip(txn, alert_id).await?;
    let head = crate::chain::link(&tip.head, &crate::storage::evidence::fix_record(&row));
    row.chain_n = Some(tip.n + 1);
    row.chain_hash = Some(crate::chain::hex(&head));
    fixes::ActiveModel::from(row).insert(txn).await?;
    Ok(())
}
