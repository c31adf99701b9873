//! Stored recordings: where an alert's audio stands, and a part's bytes joined from its chunks.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::media::Container;
use crate::storage::entity::{audio_chunks, audio_parts};

/// Where an alert's audio stands in the database.
#[derive(Debug, Clone)]
pub struct AudioPosition {
    /// Highest chunk seq the phone's stream stored.
    pub acked: u64,
    /// The stream's current part, its MIME type and stored length.
    pub part: Option<(u16, String, u64)>,
    /// The number the next new part gets.
    pub next_part: u16,
    /// The seq the next uploaded chunk gets (uploads count down from -1).
    pub next_upload_seq: i64,
    /// An upload wrote into the stream's current part (the stream goes on in a new one).
    pub closed: bool,
}

/// Reads an alert's audio position from the database.
pub async fn audio_position(db: &DatabaseConnection, alert_id: &str) -> anyhow::Result<AudioPosition> {
    let last = audio_chunks::Entity::find()
        .select_only()
        .columns([audio_chunks::Column::Seq, audio_chunks::Column::Part])
        .expr(Expr::col(audio_chunks::Column::Offset).add(Expr::col(audio_chunks::Column::Len)))
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .filter(audio_chunks::Column::Seq.gt(0))
        .order_by_desc(audio_chunks::Column::Seq)
        .into_tuple::<(i64, i32, i64)>()
        .one(db)
        .await?;
    let lowest: Option<i64> = audio_chunks::Entity::find()
        .select_only()
        .column(audio_chunks::Column::Seq)
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .filter(audio_chunks::Column::Seq.lt(0))
        .order_by_asc(audio_chunks::Column::Seq)
        .into_tuple()
        .one(db)
        .await?;
    let next_upload_seq = lowest.map_or(-1, |s| s - 1);
    let parts = audio_parts::Entity::find().filter(audio_parts::Column::AlertId.eq(alert_id)).all(db).await?;
    let next_part = parts.iter().map(|p| p.part as u16 + 1).max().unwrap_or(0);
    let Some((seq, part, len)) = last else {
        return Ok(AudioPosition { acked: 0, part: None, next_part, next_upload_seq, closed: false });
    };
    let row = parts.into_iter().find(|p| p.part == part).context("audio chunk without its part row")?;
    Ok(AudioPosition {
        acked: seq as u64,
        part: Some((part as u16, row.mime, len as u64)),
        next_part,
        next_upload_seq,
        closed: row.uploaded_at.is_some(),
    })
}

/// Where a part's stored bytes end.
pub async fn part_end(db: &DatabaseConnection, alert_id: &str, part: u16) -> anyhow::Result<u64> {
    let end: Option<Option<i64>> = audio_chunks::Entity::find()
        .select_only()
        .expr(Func::max(Expr::col(audio_chunks::Column::Offset).add(Expr::col(audio_chunks::Column::Len))))
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .filter(audio_chunks::Column::Part.eq(part as i32))
        .into_tuple()
        .one(db)
        .await?;
    Ok(end.flatten().unwrap_or(0) as u64)
}

/// Bytes `range` (end exclusive) of a stored audio part, joined from its chunks; shorter when
/// the part is.
pub async fn read_part(
    db: &DatabaseConnection,
    alert_id: &str,
    part: u16,
    range: std::ops::Range<u64>,
) -> anyhow::Result<Vec<u8>> {
    let chunks: Vec<(i64, i32, Option<Vec<u8>>)> = audio_chunks::Entity::find()
        .select_only()
        .columns([audio_chunks::Column::Offset, audio_chunks::Column::Len, audio_chunks::Column::Data])
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .filter(audio_chunks::Column::Part.eq(part as i32))
        .filter(audio_chunks::Column::Offset.lt(range.end as i64))
        .filter(
            Expr::col(audio_chunks::Column::Offset)
                .add(Expr::col(audio_chunks::Column::Len))
                .gt(range.start as i64),
        )
        .order_by_asc(audio_chunks::Column::Offset)
        .into_tuple()
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(std::cmp::min(range.end - range.start, 16 << 20) as usize);
    for (offset, len, data) in chunks {
        let data = data.with_context(|| format!("audio chunk at {offset} has no bytes"))?;
        anyhow::ensure!(data.len() == len as usize, "audio chunk at {offset} is not {len} bytes");
        let (start, end) = (offset as u64, offset as u64 + len as u64);
        let at = range.start + out.len() as u64;
        anyhow::ensure!(start <= at, "audio part {part} has a gap at byte {at}");
        if end > at {
            out.extend_from_slice(
                &data[(at - start) as usize..(std::cmp::min(range.end, end) - start) as usize],
            );
        }
    }
    Ok(out)
}

/// Imports audio stored by earlier versions, which kept chunk bytes in one file per part
/// (`DATA_DIR/audio/ALERT/PART.EXT`): fills each chunk row that has no bytes from its file, so
/// those recordings still play. Chunks whose file is missing or short stay empty and are
/// reported; the files are left in place.
pub async fn import_part_files(db: &DatabaseConnection, audio_dir: &Path) -> anyhow::Result<()> {
    if !tokio::fs::try_exists(audio_dir).await.unwrap_or(true) {
        return Ok(()); // never ran an earlier version: nothing to import, no table scan
    }
    let parts: Vec<(String, i32)> = audio_chunks::Entity::find()
        .select_only()
        .columns([audio_chunks::Column::AlertId, audio_chunks::Column::Part])
        .filter(audio_chunks::Column::Data.is_null())
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    for (alert_id, part) in parts {
        let Some(row) = audio_parts::Entity::find_by_id((alert_id.clone(), part)).one(db).await? else {
            tracing::error!(alert = %alert_id, part, "audio chunks without their part row; not imported");
            continue;
        };
        let path = legacy_part_path(audio_dir, &alert_id, part as u16, &row.mime);
        let file = match tokio::fs::read(&path).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(alert = %alert_id, part, error = %e, "audio part file unreadable; not imported");
                continue;
            }
        };
        let chunks = audio_chunks::Entity::find()
            .filter(audio_chunks::Column::AlertId.eq(alert_id.clone()))
            .filter(audio_chunks::Column::Part.eq(part))
            .filter(audio_chunks::Column::Data.is_null())
            .all(db)
            .await?;
        let (mut imported, mut missing) = (0, 0);
        for c in chunks {
            let Some(bytes) = file.get(c.offset as usize..(c.offset + c.len as i64) as usize) else {
                missing += 1;
                continue;
            };
            audio_chunks::Entity::update_many()
                .col_expr(audio_chunks::Column::Data, Expr::value(bytes.to_vec()))
                .filter(audio_chunks::Column::AlertId.eq(alert_id.clone()))
                .filter(audio_chunks::Column::Seq.eq(c.seq))
                .exec(db)
                .await?;
            imported += 1;
        }
        tracing::info!(alert = %alert_id, part, imported, missing, "imported audio chunks from a part file");
    }
    Ok(())
}

fn legacy_part_path(audio_dir: &Path, alert_id: &str, part: u16, mime: &str) -> PathBuf {
    let ext = Container::from_mime(mime).map_or("bin", |c| c.extension());
    audio_dir.join(alert_id).join(format!("{part:04}.{ext}"))
}

/// A stored part and its committed length: bytes the phone was told are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Part number.
    pub part: u16,
    /// Its MIME type as stored.
    pub mime: String,
    /// Committed bytes.
    pub len: u64,
    /// An upload wrote into it (it was uploaded, or an upload completed it).
    pub uploaded: bool,
}

/// An alert's stored parts with their committed lengths.
pub async fn parts(db: &DatabaseConnection, alert_id: &str) -> anyhow::Result<Vec<StoredPart>> {
    let ends: Vec<(i32, Option<i64>)> = audio_chunks::Entity::find()
        .select_only()
        .column(audio_chunks::Column::Part)
        .expr(Func::max(Expr::col(audio_chunks::Column::Offset).add(Expr::col(audio_chunks::Column::Len))))
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .group_by(audio_chunks::Column::Part)
        .into_tuple()
        .all(db)
        .await?;
    let rows = audio_parts::Entity::find().filter(audio_parts::Column::AlertId.eq(alert_id)).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|p| {
            let len = ends.iter().find(|(n, _)| *n == p.part).and_then(|(_, e)| *e).unwrap_or(0);
            StoredPart {
                part: p.part as u16,
                mime: p.mime,
                len: len as u64,
                uploaded: p.uploaded_at.is_some(),
            }
        })
        .collect())
}
