//! `GET /healthz`: the process is up and the database answers.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::Result;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

async fn health(State(state): State<AppState>) -> Result<Json<Value>> {
    state.db.ping().await?;
    Ok(Json(json!({ "status": "ok", "live_alerts": state.hub.sessions().len() })))
}
