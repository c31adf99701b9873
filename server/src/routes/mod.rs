//! HTTP and WebSocket routes, one module per surface, merged into one router here.

mod account;
mod config;
mod contacts;
mod extract;
mod health;
mod phone;
mod recording;
mod responder;
mod sms_hooks;
mod sockets;
mod timers;
mod watch;

use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// The whole application.
pub fn router(state: AppState, static_dir: &std::path::Path) -> Router {
    let index = static_dir.join("index.html");
    Router::new()
        .merge(health::router())
        .merge(account::router())
        .merge(config::router())
        .merge(contacts::router())
        .merge(sms_hooks::router())
        .merge(timers::router())
        .route("/openapi.yaml", axum::routing::get(openapi))
        .merge(phone::router())
        .merge(watch::router())
        .merge(responder::router())
        .merge(recording::router())
        // The dashboard is a single-page app: its routes all load index.html.
        .route_service("/w/{token}", ServeFile::new(&index))
        .route_service("/console", ServeFile::new(&index))
        .route_service("/sos", ServeFile::new(&index))
        .fallback_service(ServeDir::new(static_dir).fallback(ServeFile::new(&index)))
        .with_state(state)
}

/// The REST API description.
async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], include_str!("../../../docs/openapi.yaml"))
}
