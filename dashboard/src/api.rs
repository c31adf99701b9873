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
    /// The server refused with this status and said why.
    Refused(u16, String),
}

impl ApiError {
    /// Words for the person using the page.
    pub fn message(&self) -> String {
        match self {
            Self::Status(401) | Self::Refused(401, _) => {
                "Not signed in, or this device was signed out.".into()
            }
            Self::Status(429) | Self::Refused(429, _) => "Too many tries; wait a while and try again.".into(),
            Self::Refused(_, detail) => detail.clone(),
            Self::Status(s) => format!("The server refused ({s})."),
            Self::Network => "No connection to the server; try again.".into(),
        }
    }
}

/// Sends `body` as JSON with `method` and the device token, and parses the JSON answer (an
/// empty answer parses as `null`). Errors carry the server's `detail`.
pub async fn send_json<T: DeserializeOwned>(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<T, ApiError> {
    let window = web_sys::window().ok_or(ApiError::Network)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().map_err(|_| ApiError::Network)?;
    if let Some(t) = token {
        let _ = headers.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(b) = body {
        let _ = headers.set("Content-Type", "application/json");
        init.set_body(&wasm_bindgen::JsValue::from_str(&b.to_string()));
    }
    init.set_headers(&headers);
    let resp =
        JsFuture::from(window.fetch_with_str_and_init(url, &init)).await.map_err(|_| ApiError::Network)?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| ApiError::Network)?;
    let text =
        JsFuture::from(resp.text().map_err(|_| ApiError::Network)?).await.map_err(|_| ApiError::Network)?;
    let text = text.as_string().unwrap_or_default();
    if !resp.ok() {
        let detail = serde_json::from_str::<alertme_protocol::ErrorBody>(&text).map(|e| e.detail);
        return Err(match detail {
            Ok(d) => ApiError::Refused(resp.status(), d),
            Err(_) => ApiError::Status(resp.status()),
        });
    }
    serde_json::from_str(if text.trim().is_empty() { "null" } else { &text }).map_err(|_| ApiError::Network)
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
pub use alertme_protocol::Config;

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
