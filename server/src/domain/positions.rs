//! Where a person has been: an alert's stored fixes, read in pages for the trail downloads.

use alertme_protocol::Fix;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::Result;
use crate::storage::entity::fixes;
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
