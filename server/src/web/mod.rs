//! The web layer, the only code that knows HTTP: the router, the sockets and the REST resources.

pub(crate) mod error;
mod extract;
pub(crate) mod forwarded;
pub(crate) mod listen;
mod phone;
mod responder;
mod rest;
mod socket;
pub(crate) mod state;
pub(crate) mod throttle;
mod upgrade;
mod watch;

use rest::{
    account, config, contacts, evidence, health, links, place, recording, sms_hooks, timers, trail, upload,
};

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::web::state::AppState;

/// The whole application.
pub fn router(state: AppState, static_dir: &std::path::Path) -> Router {
    let index = static_dir.join("index.html");
    let csp = HeaderValue::from_str(&content_security_policy(&state.settings.tile_url))
        .expect("the policy is plain ASCII");
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
        .merge(evidence::router())
        .merge(links::router())
        .merge(trail::router())
        .merge(place::router())
        // The dashboard is a single-page app: its routes all load index.html.
        .route_service("/w/{token}", ServeFile::new(&index))
        .route_service("/console", ServeFile::new(&index))
        .route_service("/sos", ServeFile::new(&index))
        .fallback_service(ServeDir::new(static_dir).fallback(ServeFile::new(&index)))
        // A request (its body included) must be handled within this; streamed answers
        // (recordings) and sockets run on after their handler returned.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        // Uploads may take long on a bad link: they bound themselves (size cap, idle time).
        .merge(upload::router())
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // Watch links and the SOS page carry tokens in the URL or the page: never in a Referer.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn(no_store))
        .layer(axum::middleware::from_fn_with_state(state.bad_tokens.clone(), throttle::refuse_guessers))
        // A span per request with the route's pattern only: a URI can carry `?token=`.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &axum::extract::Request| {
                let route =
                    req.extensions().get::<axum::extract::MatchedPath>().map_or("static", |p| p.as_str());
                tracing::debug_span!("http", method = %req.method(), route)
            },
        ))
        .with_state(state)
}

/// Pages and API answers may carry tokens, positions or codes: no cache (browser, proxy or
/// back/forward) keeps them. Only the dashboard's build and static assets may be cached.
async fn no_store(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let path = req.uri().path();
    let asset = path.starts_with("/pkg/")
        || path.starts_with("/demo/")
        || [".css", ".js", ".wasm", ".png", ".svg", ".ico"].iter().any(|e| path.ends_with(e));
    let mut res = next.run(req).await;
    if !asset {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// What pages of this server may load and run. The SOS page keeps a device token in the
/// browser: no inline or foreign script may run next to it, and data may only go back to this
/// server. Map tiles may come from the configured tile server; audio plays from `blob:` URLs
/// (MediaSource); WebAssembly needs `wasm-unsafe-eval`.
fn content_security_policy(tile_url: &str) -> String {
    let tiles = tile_url
        .split_once("://")
        .map(|(scheme, rest)| format!(" {scheme}://{}", rest.split('/').next().unwrap_or_default()))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:{tiles}; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn tiles_are_allowed_from_their_server_only() {
        let p = super::content_security_policy("https://tile.openstreetmap.org/{z}/{x}/{y}.png");
        assert!(p.contains("img-src 'self' data: https://tile.openstreetmap.org;"), "{p}");
        assert!(super::content_security_policy("").contains("img-src 'self' data:;"));
    }
}

/// The REST API description.
async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], include_str!("../../../docs/openapi.yaml"))
}
