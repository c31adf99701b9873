//! `POST /v1/alerts/{id}/recording` (whole file: multipart as the original app sends it, or a raw body) and tus 1.0 resumable uploads.
//!
//! tus (https://tus.io/protocols/resumable-upload, core + creation + creation-with-upload):
//! `POST` with `Tus-Resumable: 1.0.0` and `Upload-Length` creates an upload and answers its
//! `Location` (`/v1/uploads/{id}`); `HEAD` there gives `Upload-Offset`, where a `PATCH`
//! (`application/offset+octet-stream`) continues. Every byte a `PATCH` carried is stored as it
//! arrives, so a link that drops mid-request loses nothing that reached us.

use std::collections::HashMap;
use std::time::Duration;

use alertme_protocol::RecordingUploaded;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::domain::uploads::{self, NewUpload, Progress, Upload};
use crate::error::{Error, Result};
use crate::web::extract::DeviceAuth;
use crate::web::state::AppState;

/// The tus version spoken.
const TUS_VERSION: &str = "1.0.0";
/// A body that sends nothing for this long is treated as broken off (what came is kept).
const BODY_IDLE: Duration = Duration::from_secs(30);

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");

/// The routes. They read their bodies themselves, as streams, bounded by the upload cap and
/// an idle time instead of the whole-request timeout other routes have.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts/{id}/recording", post(create).options(discover))
        .route("/v1/uploads/{upload}", head(status).patch(resume))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(tus_headers))
}

/// Every answer of these routes names the tus version (the handlers leave it to this; a 412
/// must, and clients read it from errors too).
async fn tus_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    if res.status() == StatusCode::PRECONDITION_FAILED {
        res.headers_mut().insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    res
}

/// Bytes of form fields besides the file that are read (and dropped) at most.
const MAX_OTHER_FIELDS: usize = 64 * 1024;

/// `OPTIONS`: what tus this server speaks.
async fn discover(State(state): State<AppState>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static("creation,creation-with-upload"));
    h.insert("tus-max-size", HeaderValue::from(state.settings.upload_max_bytes));
    res
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DeviceAuth(device): DeviceAuth,
    req: Request,
) -> Result<Response> {
    let headers = req.headers().clone();
    if headers.contains_key(TUS_RESUMABLE) {
        return create_tus(state, id, device, req).await;
    }
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if content_length(&headers).is_some_and(|len| len > state.settings.upload_max_bytes) {
        return Err(uploads::too_large(state.settings.upload_max_bytes));
    }
    if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        // The body stalls no longer than any upload's may.
        let (parts, body) = req.into_parts();
        let req =
            Request::from_parts(parts, axum::body::Body::from_stream(idle_cut(body.into_data_stream())));
        let mut form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| Error::BadRequest(format!("multipart body: {}", e.body_text())))?;
        let bad =
            |e: axum::extract::multipart::MultipartError| Error::BadRequest(format!("multipart body: {e}"));
        let mut other = 0;
        while let Some(mut field) = form.next_field().await.map_err(bad)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name != "audio" && name != "video" {
                // Other fields of the original app's form: read and dropped, within a bound.
                while let Some(b) = field.chunk().await.map_err(bad)? {
                    other += b.len();
                    if other > MAX_OTHER_FIELDS {
                        return Err(Error::TooLarge("the form's other fields are too large".into()));
                    }
                }
                continue;
            }
            let new = NewUpload {
                length: None,
                video: name == "video",
                declared_mime: field.content_type().map(str::to_owned),
            };
            return whole(&state, &device, &id, new, field).await;
        }
        return Err(Error::BadRequest("the form has no `audio` or `video` file field".into()));
    }
    let new = NewUpload {
        length: None,
        video: content_type.starts_with("video/"),
        declared_mime: Some(content_type),
    };
    whole(&state, &device, &id, new, req.into_body().into_data_stream()).await
}

/// Stores a whole file sent in one request: 201 with the part it became.
async fn whole<S, E>(
    state: &AppState,
    device: &crate::domain::accounts::Device,
    alert_id: &str,
    new: NewUpload,
    body: S,
) -> Result<Response>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let upload = uploads::create(state, device, alert_id, new).await?;
    let progress = uploads::append(state, &upload, 0, idle_cut(body)).await?;
    uploads::complete(state, &upload, &progress).await?;
    if progress.cut {
        return Err(Error::BadRequest(format!(
            "the body broke off after {} bytes (kept); send the whole file again: what is stored is not stored twice",
            progress.offset
        )));
    }
    let Some(part) = progress.part else {
        return Err(Error::BadRequest("the body is empty".into()));
    };
    let answer = RecordingUploaded {
        part,
        url: format!("/v1/alerts/{alert_id}/recording/{part}"),
        received: progress.offset,
        stored: progress.stored,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// tus creation (and creation-with-upload): 201 with the upload's `Location`.
async fn create_tus(
    state: AppState,
    alert_id: String,
    device: crate::domain::accounts::Device,
    req: Request,
) -> Result<Response> {
    let headers = req.headers().clone();
    check_version(&headers)?;
    let length = header_u64(&headers, &UPLOAD_LENGTH).ok_or_else(|| {
        Error::BadRequest("tus: Upload-Length is required (deferred lengths are not supported)".into())
    })?;
    let meta = metadata(&headers);
    let declared = meta.get("filetype").cloned();
    let video = declared.as_deref().is_some_and(|t| t.starts_with("video/"));
    let new = NewUpload { length: Some(length), video, declared_mime: declared };
    let with_bytes =
        content_length(&headers).unwrap_or(0) > 0 || headers.contains_key(header::TRANSFER_ENCODING);
    if with_bytes {
        expect_offset_stream(&headers)?;
        if content_length(&headers).is_some_and(|n| n > length) {
            return Err(Error::TooLarge("tus: more bytes than Upload-Length".into()));
        }
    }
    let upload = uploads::create(&state, &device, &alert_id, new).await?;
    let mut offset = 0;
    if with_bytes {
        let progress =
            uploads::append(&state, &upload, 0, idle_cut(req.into_body().into_data_stream())).await?;
        offset = progress.offset;
        if offset == length {
            uploads::uploaded(&state, &upload, &progress).await?;
        }
    }
    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/uploads/{}", upload.id)).expect("ascii id"),
    );
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    Ok(res)
}

/// `HEAD`: where the upload stands.
async fn status(
    State(state): State<AppState>,
    Path(upload): Path<String>,
    DeviceAuth(device): DeviceAuth,
    headers: HeaderMap,
) -> Result<Response> {
    check_version(&headers)?;
    let u = uploads::find(&state, &device, &upload).await?;
    Ok(tus_answer(StatusCode::OK, &u, u.offset as u64))
}

/// `PATCH`: the next bytes, from `Upload-Offset`.
async fn resume(
    State(state): State<AppState>,
    Path(upload): Path<String>,
    DeviceAuth(device): DeviceAuth,
    req: Request,
) -> Result<Response> {
    let headers = req.headers().clone();
    check_version(&headers)?;
    expect_offset_stream(&headers)?;
    let offset = header_u64(&headers, &UPLOAD_OFFSET)
        .ok_or_else(|| Error::BadRequest("tus: Upload-Offset is required".into()))?;
    let u = uploads::find(&state, &device, &upload).await?;
    if let (Some(n), Some(l)) = (content_length(&headers), u.length) {
        if offset + n > l as u64 {
            return Err(Error::TooLarge("tus: more bytes than Upload-Length".into()));
        }
    }
    let progress: Progress =
        uploads::append(&state, &u, offset, idle_cut(req.into_body().into_data_stream())).await?;
    if u.length.is_some_and(|l| l as u64 == progress.offset) && progress.offset > offset {
        uploads::uploaded(&state, &u, &progress).await?;
    }
    Ok(tus_answer(StatusCode::NO_CONTENT, &u, progress.offset))
}

fn tus_answer(status: StatusCode, u: &Upload, offset: u64) -> Response {
    let mut res = status.into_response();
    let h = res.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    if let Some(l) = u.length {
        h.insert(UPLOAD_LENGTH, HeaderValue::from(l));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// tus requests name the version; another one is refused with 412 (as the protocol says).
fn check_version(headers: &HeaderMap) -> Result<()> {
    match headers.get(TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(Error::PreconditionFailed(format!("tus: send Tus-Resumable: {TUS_VERSION}"))),
    }
}

fn expect_offset_stream(headers: &HeaderMap) -> Result<()> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/offset+octet-stream") {
        return Err(Error::UnsupportedMedia(
            "tus: bytes go as Content-Type: application/offset+octet-stream".into(),
        ));
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_u64(headers, &header::CONTENT_LENGTH)
}

/// A header holding a byte count.
fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs.
fn metadata(headers: &HeaderMap) -> HashMap<String, String> {
    let raw = headers.get(UPLOAD_METADATA).and_then(|v| v.to_str().ok()).unwrap_or("");
    raw.split(',')
        .filter_map(|pair| {
            let mut it = pair.trim().splitn(2, ' ');
            let key = it.next()?.to_owned();
            let value =
                base64::engine::general_purpose::STANDARD.decode(it.next().unwrap_or("").trim()).ok()?;
            Some((key, String::from_utf8(value).ok()?))
        })
        .take(16)
        .collect()
}

/// The body's pieces, ending with an error once nothing came for [`BODY_IDLE`].
fn idle_cut<S, E>(body: S) -> impl Stream<Item = std::result::Result<Bytes, String>> + Send
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let body = Box::pin(body);
    futures_util::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match tokio::time::timeout(BODY_IDLE, body.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), Some(body))),
            Ok(Some(Err(e))) => Some((Err(e.to_string()), None)),
            Ok(None) => None,
            Err(_) => Some((Err(format!("nothing received for {} s", BODY_IDLE.as_secs())), None)),
        }
    })
}
