//! `GET /v1/config`: settings the dashboard needs (map tiles), so they are configured in one place.

use alertme_protocol::Config;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/config", get(config))
}

async fn config(State(state): State<AppState>) -> Json<Config> {
    Json(Config {
        tile_url: state.settings.tile_url.clone(),
        tile_attribution: state.settings.tile_attribution.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}
