//! Where an alert's evidence chain stands, and the chain records of stored rows.

use anyhow::Context;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::chain::{self, FixRecord, Hash, MediaRecord, Start};
use crate::storage::entity::{alerts, audio_chunks, fixes};

/// The last link of an alert's chain.
#[derive(Debug, Clone, Copy)]
pub struct Tip {
    /// Items chained so far (0: only the start record).
    pub n: i64,
    /// `h_n`.
    pub head: Hash,
}

/// The start record of an alert row, canonical.
pub fn start_record(a: &alerts::Model) -> String {
    chain::canonical(&Start::new(&a.id, &a.user_id, &a.device_id, &a.client_id, a.started_at))
}

/// The chain record of a fix row, canonical.
pub fn fix_record(f: &fixes::Model) -> String {
    chain::canonical(&FixRecord::new(
        f.seq,
        f.lat,
        f.lon,
        f.accuracy_m,
        f.device_time,
        f.battery_pct.map(i64::from),
        f.speed_mps,
        f.heading_deg,
        f.altitude_m,
        f.received_at,
    ))
}

/// The chain record of a media chunk row, canonical.
pub fn chunk_record(c: &audio_chunks::Model) -> String {
    chain::canonical(&MediaRecord {
        kind: "audio",
        part: c.part.into(),
        seq: c.seq,
        offset: c.offset,
        len: c.len.into(),
        sha256: &c.sha256,
        received_at: c.received_at,
    })
}

/// Reads where an alert's chain stands: its last chained fix or chunk, else its start record.
pub async fn tip<C: ConnectionTrait>(db: &C, alert_id: &str) -> anyhow::Result<Tip> {
    let fix: Option<(Option<i64>, Option<String>)> = fixes::Entity::find()
        .select_only()
        .columns([fixes::Column::ChainN, fixes::Column::ChainHash])
        .filter(fixes::Column::AlertId.eq(alert_id))
        .filter(fixes::Column::ChainN.is_not_null())
        .order_by_desc(fixes::Column::ChainN)
        .into_tuple()
        .one(db)
        .await?;
    let chunk: Option<(Option<i64>, Option<String>)> = audio_chunks::Entity::find()
        .select_only()
        .columns([audio_chunks::Column::ChainN, audio_chunks::Column::ChainHash])
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .filter(audio_chunks::Column::ChainN.is_not_null())
        .order_by_desc(audio_chunks::Column::ChainN)
        .into_tuple()
        .one(db)
        .await?;
    let last = [fix, chunk].into_iter().flatten().filter_map(|(n, h)| Some((n?, h?))).max_by_key(|(n, _)| *n);
    if let Some((n, h)) = last {
        let head =
            chain::parse(&h).with_context(|| format!("chain hash {n} of alert {alert_id} is not hex"))?;
        return Ok(Tip { n, head });
    }
    let alert = alerts::Entity::find_by_id(alert_id.to_owned()).one(db).await?.context("no such alert")?;
    Ok(Tip { n: 0, head: chain::anchor(&start_record(&alert)) })
}

/// Highest fix seq stored for an alert (0: none).
pub async fn max_fix_seq<C: ConnectionTrait>(db: &C, alert_id: &str) -> anyhow::Result<i64> {
    let max: Option<Option<i64>> = fixes::Entity::find()
        .select_only()
        .column_as(fixes::Column::Seq.max(), "m")
        .filter(fixes::Column::AlertId.eq(alert_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

/// Which of `seqs` an alert already has stored.
pub async fn stored_fix_seqs<C: ConnectionTrait>(
    db: &C,
    alert_id: &str,
    seqs: &[i64],
) -> anyhow::Result<std::collections::HashSet<i64>> {
    let mut out = std::collections::HashSet::new();
    for group in seqs.chunks(500) {
        let found: Vec<i64> = fixes::Entity::find()
            .select_only()
            .column(fixes::Column::Seq)
            .filter(fixes::Column::AlertId.eq(alert_id))
            .filter(fixes::Column::Seq.is_in(group.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(found);
    }
    Ok(out)
}

/// The alerts among `ids` with nothing stored yet (no fix, no chunk): their chain is at its start
/// record and their audio at chunk 1, known without a query each. When 1,000 phones start at
/// once, one batch would otherwise ask three questions per alert before it could commit.
pub async fn fresh<C: ConnectionTrait>(db: &C, ids: &[String]) -> anyhow::Result<Vec<alerts::Model>> {
    let mut out = Vec::new();
    for group in ids.chunks(500) {
        let group = group.to_vec();
        let with_fixes: Vec<String> = fixes::Entity::find()
            .select_only()
            .column(fixes::Column::AlertId)
            .filter(fixes::Column::AlertId.is_in(group.clone()))
            .group_by(fixes::Column::AlertId)
            .into_tuple()
            .all(db)
            .await?;
        let with_chunks: Vec<String> = audio_chunks::Entity::find()
            .select_only()
            .column(audio_chunks::Column::AlertId)
            .filter(audio_chunks::Column::AlertId.is_in(group.clone()))
            .group_by(audio_chunks::Column::AlertId)
            .into_tuple()
            .all(db)
            .await?;
        let stored: std::collections::HashSet<String> = with_fixes.into_iter().chain(with_chunks).collect();
        let empty: Vec<String> = group.into_iter().filter(|id| !stored.contains(id)).collect();
        if !empty.is_empty() {
            out.extend(alerts::Entity::find().filter(alerts::Column::Id.is_in(empty)).all(db).await?);
        }
    }
    Ok(out)
}
