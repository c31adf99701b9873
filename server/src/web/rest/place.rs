//! `GET /v1/alerts/{id}/place`: where the person is, to tell an emergency operator and to go there.

use std::collections::HashMap;

use alertme_protocol::Place;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::routing::get;
use axum::{Json, Router};

use crate::domain::places;
use crate::error::Result;
use crate::web::extract::authorize_alert;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/alerts/{id}/place", get(place))
}

/// For whoever may follow the alert: the newest fix, its Plus Code and the address near it
/// (in the language of `?lang=`, else the browser's `Accept-Language`).
async fn place(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Place>> {
    authorize_alert(&state, &headers, &query, &id).await?;
    let language = query
        .get("lang")
        .cloned()
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(Json(places::of_alert(&state, &id, &language).await?))
}
