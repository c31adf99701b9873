//! `GET /v1/alerts/{id}/recording[/{part}]`: the stored evidence, during and after the SOS, with Range.

use std::collections::HashMap;

use crate::domain::evidence::custody;
use crate::domain::recordings;
use crate::error::{Error, Result};
use crate::web::extract::{authorize_alert, ClientIp};
use crate::web::state::AppState;
use alertme_protocol::RecordingPart;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts/{id}/recording", get(list))
        .route("/v1/alerts/{id}/recording/{part}", get(download))
        .route("/v1/alerts/{id}/deliveries", get(deliveries))
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<RecordingPart>>> {
    authorize_alert(&state, &headers, &query, &id).await?;
    let mut out: Vec<RecordingPart> = recordings::parts(&state.db, &id)
        .await?
        .into_iter()
        .map(|p| RecordingPart {
            part: p.part,
            url: format!("/v1/alerts/{id}/recording/{}", p.part),
            track: if p.mime.starts_with("video/") { "video" } else { "audio" }.to_owned(),
            mime: p.mime,
            bytes: p.len,
            uploaded: p.uploaded,
        })
        .collect();
    out.sort_by_key(|p| p.part);
    Ok(Json(out))
}

async fn download(
    State(state): State<AppState>,
    Path((id, part)): Path<(String, u16)>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let (_, who) = authorize_alert(&state, &headers, &query, &id).await?;
    let row = recordings::parts(&state.db, &id)
        .await?
        .into_iter()
        .find(|p| p.part == part)
        .ok_or(Error::NotFound)?;
    let len = row.len;
    // Rows of earlier versions may hold a type as the phone sent it: only a canonical one goes out.
    let mime = crate::media::Container::canonical_mime(&row.mime)
        .and_then(|m| HeaderValue::from_str(&m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    // One range, as players ask for; anything else gets the whole part (RFC 9110 allows that).
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| http_range_header::parse_range_header(v).ok())
        .map(|r| r.validate(len));
    let (status, span) = match range {
        Some(Ok(r)) if r.len() == 1 && len > 0 => {
            (StatusCode::PARTIAL_CONTENT, *r[0].start()..*r[0].end() + 1)
        }
        Some(Err(_)) => {
            let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            let unsatisfied = HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii");
            res.headers_mut().insert(header::CONTENT_RANGE, unsatisfied);
            return Ok(res);
        }
        _ => (StatusCode::OK, 0..len),
    };
    // A player fetches in ranges: a download (or a playback) is counted where it starts.
    if span.start == 0 {
        let mark = custody::addr_hash(&state.secret, ip);
        let what = Some(format!("recording part {part}"));
        custody::record_soon(
            &state.store,
            &id,
            custody::action::RECORDING_DOWNLOADED,
            &who,
            Some(mark),
            what,
        );
    }
    let body = Body::from_stream(part_stream(state, id, part, span.clone()));
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, mime);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(span.end - span.start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{len}", span.start, span.end - 1);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("ascii"));
    }
    Ok(res)
}

/// Bytes read from the database per step of a download: memory stays bounded whatever the
/// length of the recording.
const READ_STEP: u64 = 64 * 1024;

/// A part's bytes in `span`, read step by step as the client takes them.
fn part_stream(
    state: AppState,
    id: String,
    part: u16,
    span: std::ops::Range<u64>,
) -> impl futures_util::Stream<Item = anyhow::Result<bytes::Bytes>> {
    futures_util::stream::try_unfold(span.start, move |at| {
        let (state, id) = (state.clone(), id.clone());
        async move {
            if at >= span.end {
                return Ok(None);
            }
            let to = std::cmp::min(at + READ_STEP, span.end);
            let bytes = recordings::read(&state.db, &id, part, at..to).await?;
            anyhow::ensure!(
                bytes.len() as u64 == to - at,
                "audio part {part} is shorter than its chunks say"
            );
            Ok(Some((bytes::Bytes::from(bytes), to)))
        }
    })
}

/// Delivery state of the contacts' texts about this alert.
async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<alertme_protocol::Delivery>>> {
    authorize_alert(&state, &headers, &query, &id).await?;
    Ok(Json(recordings::deliveries(&state.db, &id).await?))
}
