//! The evidence of an alert as its viewers get it: stored parts, their bytes, who was texted.

use alertme_protocol::Delivery;

use crate::error::Result;
use crate::storage::recordings as stored;
use crate::storage::Db;

pub use crate::storage::recordings::StoredPart;

/// An alert's recording parts with their committed lengths.
pub async fn parts(db: &Db, alert_id: &str) -> Result<Vec<StoredPart>> {
    Ok(stored::parts(db, alert_id).await?)
}

/// Bytes `range` of a part (shorter when the part is).
pub async fn read(
    db: &Db,
    alert_id: &str,
    part: u16,
    range: std::ops::Range<u64>,
) -> anyhow::Result<Vec<u8>> {
    stored::read_part(db, alert_id, part, range).await
}

/// Delivery state of the contacts' texts about this alert.
pub async fn deliveries(db: &Db, alert_id: &str) -> Result<Vec<Delivery>> {
    Ok(crate::storage::outbox::deliveries(db, alert_id).await?)
}
