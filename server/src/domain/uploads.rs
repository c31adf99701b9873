//! Recordings handed over after the fact: whole-file and resumable (tus) uploads from the phone that raised the alert.
//!
//! A phone that had no link during the incident, or an app that still records first and sends
//! afterwards, uploads its file here. Its bytes go through the durable writer like streamed
//! audio (stored, chained into the evidence, then acknowledged), in pieces, so that an upload
//! cut anywhere keeps what arrived and continues from there. Where the file begins with a
//! recording already stored for the alert (the stream of the same recording, or an earlier
//! try), only what that recording lacks is stored.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::domain::accounts::Device;
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::media::Container;
use crate::storage::uploads as rows;
use crate::storage::writer::{UploadBytes, UploadRefused};

pub use crate::storage::uploads::Upload;

/// Unfinished uploads an alert may have at once.
pub const MAX_OPEN_PER_ALERT: u64 = 8;
/// Bytes handed to the writer at a time.
const STEP_BYTES: usize = 1024 * 1024;
/// Bytes needed to tell the container (the longest signature, MP4's `ftyp` at 4..8).
const SNIFF_BYTES: usize = 8;

/// What a client says about an upload it begins.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    /// Its total length, when known (tus always declares it).
    pub length: Option<u64>,
    /// A video recording (multipart field `video`, or a `video/…` type).
    pub video: bool,
    /// The MIME type it names, if any (kept when it agrees with the bytes).
    pub declared_mime: Option<String>,
}

/// Where an upload stands after bytes were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes received and stored (or found already stored).
    pub offset: u64,
    /// The stored part the upload is (or completes).
    pub part: Option<u16>,
    /// Bytes stored as new by this request (the rest were there already).
    pub stored: u64,
    /// The body ended before it was all read (the client went away or stalled).
    pub cut: bool,
}

/// Begins an upload of a recording of `alert_id`: only the phone that raised the alert may.
pub async fn create(state: &Core, device: &Device, alert_id: &str, new: NewUpload) -> Result<Upload> {
    let alert = crate::domain::alerts::find(&state.db, alert_id).await?.ok_or(Error::NotFound)?;
    if alert.device_id != device.id {
        return Err(Error::Forbidden);
    }
    if alert.purged_at.is_some() {
        return Err(Error::Conflict(
            "this alert's recordings were deleted; nothing more is stored for it".into(),
        ));
    }
    let cap = state.settings.upload_max_bytes;
    if new.length.is_some_and(|l| l > cap) {
        return Err(too_large(cap));
    }
    if new.length == Some(0) {
        return Err(Error::BadRequest("an empty recording: Upload-Length must be above 0".into()));
    }
    owned_here(state, &alert)?;
    if rows::open_count(&state.db, alert_id).await? >= MAX_OPEN_PER_ALERT {
        return Err(Error::RateLimited);
    }
    let declared = new.declared_mime.as_deref().and_then(Container::canonical_mime);
    let video = new.video || declared.as_deref().is_some_and(|m| m.starts_with("video/"));
    let row = Upload {
        id: format!("up{}", uuid::Uuid::new_v4().simple()),
        alert_id: alert_id.to_owned(),
        device_id: device.id.clone(),
        length: new.length.map(|l| l as i64),
        offset: 0,
        video,
        declared_mime: declared,
        part: None,
        created_at: crate::now_ms(),
        completed_at: None,
    };
    Ok(rows::create(&state.db, row).await?)
}

/// In a cluster, an alert live on another node takes no upload here: its owner writes its
/// evidence chain (one writer per alert while it is live).
fn owned_here(state: &Core, alert: &crate::domain::alerts::Alert) -> Result<()> {
    if state.cluster.is_some() && alert.status == "active" && state.hub.get(&alert.id).is_none() {
        return Err(Error::Unavailable(
            "this alert is live on another server of the cluster; retry in a few seconds".into(),
        ));
    }
    Ok(())
}

/// An upload the device may continue (another device's is not found).
pub async fn find(state: &Core, device: &Device, upload_id: &str) -> Result<Upload> {
    rows::find(&state.db, upload_id).await?.filter(|u| u.device_id == device.id).ok_or(Error::NotFound)
}

/// Stores `body` as the upload's bytes from `offset` (where it stands), piece by piece; each
/// piece is durable before the next is read. A body that breaks off keeps what arrived (`cut`).
/// The first bytes decide the container: anything but ADTS, WebM, MP4 or Ogg is refused.
pub async fn append<S, E>(state: &Core, upload: &Upload, offset: u64, body: S) -> Result<Progress>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    if offset != upload.offset as u64 {
        return Err(Error::UploadOffset(upload.offset as u64));
    }
    if state.cluster.is_some() {
        let alert = crate::domain::alerts::find(&state.db, &upload.alert_id).await?.ok_or(Error::NotFound)?;
        owned_here(state, &alert)?;
    }
    let cap = state.settings.upload_max_bytes;
    let limit = upload.length.map_or(cap, |l| l as u64).min(cap);
    // A resumed upload's new part (should it differ from the part it began like) takes that
    // part's type; a new one's comes from its first bytes.
    let mut mime = match upload.part {
        Some(p) => crate::storage::recordings::parts(&state.db, &upload.alert_id)
            .await?
            .into_iter()
            .find(|s| s.part == p as u16)
            .map(|s| s.mime),
        None => None,
    };
    let mut at = offset;
    let mut progress = Progress { offset, part: upload.part.map(|p| p as u16), stored: 0, cut: false };
    let mut buf = BytesMut::new();
    let mut body = std::pin::pin!(body);
    let mut over = false;
    loop {
        let next = body.next().await;
        let ended = match next {
            Some(Ok(b)) => {
                buf.extend_from_slice(&b);
                false
            }
            Some(Err(e)) => {
                tracing::info!(upload = %upload.id, error = %e, "an upload's body broke off; what arrived is kept");
                progress.cut = true;
                true
            }
            None => true,
        };
        if at + buf.len() as u64 > limit {
            buf.truncate(limit.saturating_sub(at) as usize);
            over = true;
        }
        // The first bytes tell the container: a wrong one is refused before anything is stored.
        if mime.is_none() && (buf.len() >= SNIFF_BYTES || ((ended || over) && !buf.is_empty())) {
            mime = Some(stored_mime(upload, &buf)?);
        }
        if buf.len() >= STEP_BYTES || ((ended || over) && !buf.is_empty()) {
            let bytes = buf.split().freeze();
            let sent = UploadBytes {
                upload_id: upload.id.clone(),
                alert_id: upload.alert_id.clone(),
                fence: state.hub.get(&upload.alert_id).and_then(|s| s.fence),
                mime: mime.clone().unwrap_or_default(),
                offset: at,
                bytes,
            };
            let p = state.store.upload(sent).await.map_err(refused)?;
            at = p.offset;
            progress.offset = p.offset;
            progress.part = Some(p.part);
            progress.stored += p.stored;
        }
        if over {
            finish(state, upload).await;
            return Err(too_large(cap));
        }
        if ended && buf.is_empty() {
            break;
        }
    }
    finish(state, upload).await;
    Ok(progress)
}

/// Marks a plain upload (no declared length) complete where it ended, and notes it in the
/// alert's timeline.
pub async fn complete(state: &Core, upload: &Upload, progress: &Progress) -> Result<()> {
    if upload.length.is_none() {
        rows::complete(&state.db, &upload.id, progress.offset, crate::now_ms()).await?;
    }
    uploaded(state, upload, progress).await
}

/// Notes a finished upload in the alert's timeline (the console shows it).
pub async fn uploaded(state: &Core, upload: &Upload, progress: &Progress) -> Result<()> {
    let detail = match progress.part {
        Some(p) => format!("part {p}, {} bytes ({} new)", progress.offset, progress.stored),
        None => "empty".to_owned(),
    };
    let now = crate::now_ms();
    crate::domain::alerts::event_with(
        &state.db,
        &upload.alert_id,
        "recording_uploaded",
        None,
        now,
        Some(detail),
    )
    .await
}

/// After a request: the writer need not keep the place of an alert no session here streams.
async fn finish(state: &Core, upload: &Upload) {
    if state.hub.get(&upload.alert_id).is_none() {
        state.store.forget(&upload.alert_id).await;
    }
}

/// The MIME type a new part of this upload gets: the container its first bytes show, as audio
/// or video as the client said, with the codecs it named when its type agrees.
fn stored_mime(upload: &Upload, first: &[u8]) -> Result<String> {
    let Some(container) = Container::sniff(first) else {
        return Err(Error::UnsupportedMedia(
            "this is not a recording we can keep: send AAC (ADTS), WebM, MP4 or Ogg".into(),
        ));
    };
    let plain = container.mime(upload.video);
    Ok(match &upload.declared_mime {
        Some(d) if d.split(';').next() == Some(plain) => d.clone(),
        _ => plain.to_owned(),
    })
}

fn refused(e: UploadRefused) -> Error {
    match e {
        UploadRefused::Offset(at) => Error::UploadOffset(at),
        UploadRefused::Unknown => Error::NotFound,
        UploadRefused::TooLong => Error::TooLarge("more bytes than the upload's declared length".into()),
        UploadRefused::Busy | UploadRefused::Fenced => {
            Error::Unavailable("the recording is being written just now; retry in a moment".into())
        }
        UploadRefused::StorageFailed => Error::Internal(anyhow::anyhow!("storing an upload failed")),
    }
}

/// The answer for a recording over the cap.
pub fn too_large(cap: u64) -> Error {
    Error::TooLarge(format!("a recording may be at most {cap} bytes"))
}
