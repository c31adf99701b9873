//! `DELETE /v1/alerts/{id}/links/{contact_id}`: the person or a responder withdraws one contact's
//! watch link of an alert; that contact's open pages close at once.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::delete;
use axum::Router;

use crate::domain::accounts;
use crate::domain::links::{self, Which};
use crate::error::{Error, Result};
use crate::web::extract::authorize_alert;
use crate::web::socket;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/alerts/{id}/links/{contact_id}", delete(revoke))
}

async fn revoke(
    State(state): State<AppState>,
    Path((id, contact_id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    // The owner's devices and responders; a contact cannot revoke another contact's link.
    if socket::token(&headers, &query)?.starts_with(accounts::WATCH_PREFIX) {
        return Err(Error::Forbidden);
    }
    authorize_alert(&state, &headers, &query, &id).await?;
    let hashes = links::revoke_alert_links(&state.db, &id, &Which::Contact(contact_id)).await?;
    links::close_links(&state.hub, hashes);
    crate::domain::notify::refresh(&state, &id).await;
    tracing::info!(alert = %id, "a contact's watch link was revoked");
    Ok(StatusCode::NO_CONTENT)
}
