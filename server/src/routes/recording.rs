//! `GET /v1/alerts/{id}/recording[/{part}]`: the stored evidence, during and after the SOS, with Range.

use std::collections::HashMap;

use alertme_protocol::RecordingPart;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::extract::authorize_alert;
use crate::db::entity::{audio_chunks, audio_parts};
use crate::error::{Error, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts/{id}/recording", get(list))
        .route("/v1/alerts/{id}/recording/{part}", get(download))
        .route("/v1/alerts/{id}/deliveries", get(deliveries))
}

/// Committed length of each part: bytes the phone was told are stored.
async fn parts(state: &AppState, alert_id: &str) -> Result<Vec<(audio_parts::Model, u64)>> {
    let ends: Vec<(i32, Option<i64>)> = audio_chunks::Entity::find()
        .select_only()
        .column(audio_chunks::Column::Part)
        .expr(Func::max(Expr::col(audio_chunks::Column::Offset).add(Expr::col(audio_chunks::Column::Len))))
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .group_by(audio_chunks::Column::Part)
        .into_tuple()
        .all(&state.db)
        .await?;
    let rows =
        audio_parts::Entity::find().filter(audio_parts::Column::AlertId.eq(alert_id)).all(&state.db).await?;
    Ok(rows
        .into_iter()
        .map(|p| {
            let len = ends.iter().find(|(n, _)| *n == p.part).and_then(|(_, e)| *e).unwrap_or(0);
            (p, len as u64)
        })
        .collect())
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<RecordingPart>>> {
    authorize_alert(&state, &headers, &query, &id).await?;
    let mut out: Vec<RecordingPart> = parts(&state, &id)
        .await?
        .into_iter()
        .map(|(p, bytes)| RecordingPart {
            part: p.part as u16,
            url: format!("/v1/alerts/{id}/recording/{}", p.part),
            mime: p.mime,
            bytes,
        })
        .collect();
    out.sort_by_key(|p| p.part);
    Ok(Json(out))
}

async fn download(
    State(state): State<AppState>,
    Path((id, part)): Path<(String, u16)>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response> {
    authorize_alert(&state, req.headers(), &query, &id).await?;
    let (row, _) =
        parts(&state, &id).await?.into_iter().find(|(p, _)| p.part == part as i32).ok_or(Error::NotFound)?;
    let path = state.store.part_path(&id, part, &row.mime);
    let mime = HeaderValue::from_str(&row.mime).map_err(|e| Error::Internal(e.into()))?;
    let mut res =
        ServeFile::new(path).oneshot(req).await.map_err(|e| Error::Internal(e.into()))?.map(Body::new);
    res.headers_mut().insert(header::CONTENT_TYPE, mime);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(res.into_response())
}

/// Delivery state of the contacts' texts about this alert.
async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<alertme_protocol::Delivery>>> {
    authorize_alert(&state, &headers, &query, &id).await?;
    Ok(Json(crate::sms::outbox::deliveries(&state.db, &id).await?))
}
