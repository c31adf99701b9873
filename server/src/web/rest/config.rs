//! `GET /v1/config`: settings the dashboard needs (map tiles), so they are configured in one place.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/config", get(config))
}

async fn config(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "tile_url": state.settings.tile_url,
        "tile_attribution": state.settings.tile_attribution,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
