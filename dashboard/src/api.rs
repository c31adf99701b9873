//! Small HTTP helpers over `fetch`.

use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server answered with this status.
    Status(u16),
    /// No answer, or an unreadable one.
    Network,
}

/// GETs `url` and parses its JSON body.
pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    let window = web_sys::window().ok_or(ApiError::Network)?;
    let resp = JsFuture::from(window.fetch_with_str(url)).await.map_err(|_| ApiError::Network)?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| ApiError::Network)?;
    if !resp.ok() {
        return Err(ApiError::Status(resp.status()));
    }
    let text =
        JsFuture::from(resp.text().map_err(|_| ApiError::Network)?).await.map_err(|_| ApiError::Network)?;
    serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|_| ApiError::Network)
}

/// Map settings served by `/v1/config`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct Config {
    /// Tile URL template, `{z}/{x}/{y}`; empty for none.
    #[serde(default)]
    pub tile_url: String,
    /// Attribution under the map.
    #[serde(default)]
    pub tile_attribution: String,
}

/// `ws://` or `wss://` URL for a path on this origin.
pub fn ws_url(path: &str) -> String {
    let loc = web_sys::window().expect("window").location();
    let proto = if loc.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    format!("{proto}://{}{path}", loc.host().unwrap_or_default())
}

/// Milliseconds since the epoch, browser clock.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Milliseconds since the page started loading.
pub fn since_navigation_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}
