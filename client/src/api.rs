//! The REST API as Rust calls, one method per endpoint (`docs/openapi.yaml`): what a phone app,
//! a tool or a test uses besides the sockets.

use alertme_protocol::{
    CodeRequest, Config, Contact, ContactInput, Delivery, DeviceInfo, ErrorBody, Health, PinBody, PinSetup,
    Place, RecordingPart, RecordingUploaded, StatusBody, Timer, TimerExtend, TimerStart, VerifyRequest,
    VerifyResponse, Zone,
};
use serde::de::DeserializeOwned;

/// A refused or failed request: the status and the server's error body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status}: {} ({})", body.error, body.detail)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `{"error": code, "detail": text}` (a transport failure has status 0 and code `transport`).
    pub body: ErrorBody,
}

impl From<reqwest::Error> for ApiError {
    fn from(e: reqwest::Error) -> Self {
        ApiError { status: 0, body: ErrorBody { error: "transport".into(), detail: e.to_string() } }
    }
}

/// Result of an API call.
pub type ApiResult<T> = Result<T, ApiError>;

/// An AlertMe server's REST API, as a device (with its token), a responder or anyone.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// The API at `base` (`http://host:port`), without credentials.
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), token: None, http: reqwest::Client::new() }
    }

    /// The same API with a bearer token (a device's, a responder's or a watch link's).
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..self.clone() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(r: reqwest::RequestBuilder) -> ApiResult<reqwest::Response> {
        let res = r.send().await?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text)
            .unwrap_or(ErrorBody { error: "unexpected".into(), detail: text.chars().take(200).collect() });
        Err(ApiError { status, body })
    }

    async fn json<T: DeserializeOwned>(r: reqwest::RequestBuilder) -> ApiResult<T> {
        Ok(Self::send(r).await?.json().await?)
    }

    async fn empty(r: reqwest::RequestBuilder) -> ApiResult<()> {
        Self::send(r).await.map(drop)
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> ApiResult<Health> {
        Self::json(self.req(reqwest::Method::GET, "/healthz")).await
    }

    /// `GET /v1/config`.
    pub async fn config(&self) -> ApiResult<Config> {
        Self::json(self.req(reqwest::Method::GET, "/v1/config")).await
    }

    /// `POST /v1/auth/code`: texts a sign-in code to `phone`.
    pub async fn request_code(&self, phone: &str) -> ApiResult<StatusBody> {
        let body = CodeRequest { phone: phone.to_owned(), language: None };
        Self::json(self.req(reqwest::Method::POST, "/v1/auth/code").json(&body)).await
    }

    /// `POST /v1/auth/verify`: the code for a device token.
    pub async fn verify(&self, req: &VerifyRequest) -> ApiResult<VerifyResponse> {
        Self::json(self.req(reqwest::Method::POST, "/v1/auth/verify").json(req)).await
    }

    /// `GET /v1/devices`.
    pub async fn devices(&self) -> ApiResult<Vec<DeviceInfo>> {
        Self::json(self.req(reqwest::Method::GET, "/v1/devices")).await
    }

    /// `DELETE /v1/devices/{id}`.
    pub async fn revoke_device(&self, id: &str) -> ApiResult<()> {
        Self::empty(self.req(reqwest::Method::DELETE, &format!("/v1/devices/{id}"))).await
    }

    /// `GET /v1/contacts`.
    pub async fn contacts(&self) -> ApiResult<Vec<Contact>> {
        Self::json(self.req(reqwest::Method::GET, "/v1/contacts")).await
    }

    /// `POST /v1/contacts`.
    pub async fn add_contact(&self, c: &ContactInput) -> ApiResult<Contact> {
        Self::json(self.req(reqwest::Method::POST, "/v1/contacts").json(c)).await
    }

    /// `PUT /v1/contacts/{id}`.
    pub async fn update_contact(&self, id: &str, c: &ContactInput) -> ApiResult<Contact> {
        Self::json(self.req(reqwest::Method::PUT, &format!("/v1/contacts/{id}")).json(c)).await
    }

    /// `DELETE /v1/contacts/{id}`.
    pub async fn remove_contact(&self, id: &str) -> ApiResult<()> {
        Self::empty(self.req(reqwest::Method::DELETE, &format!("/v1/contacts/{id}"))).await
    }

    /// `DELETE /v1/alerts/{id}/links/{contact_id}`: withdraws a contact's watch link.
    pub async fn revoke_link(&self, alert: &str, contact_id: &str) -> ApiResult<()> {
        Self::empty(self.req(reqwest::Method::DELETE, &format!("/v1/alerts/{alert}/links/{contact_id}")))
            .await
    }

    /// `PUT /v1/pin`.
    pub async fn set_pin(&self, pin: &str, duress_pin: Option<&str>) -> ApiResult<()> {
        let body = PinSetup { pin: pin.to_owned(), duress_pin: duress_pin.map(str::to_owned) };
        Self::empty(self.req(reqwest::Method::PUT, "/v1/pin").json(&body)).await
    }

    /// `POST /v1/timers`.
    pub async fn start_timer(&self, t: &TimerStart) -> ApiResult<Timer> {
        Self::json(self.req(reqwest::Method::POST, "/v1/timers").json(t)).await
    }

    /// `GET /v1/timers`.
    pub async fn timers(&self) -> ApiResult<Vec<Timer>> {
        Self::json(self.req(reqwest::Method::GET, "/v1/timers")).await
    }

    /// `POST /v1/timers/{id}/extend`.
    pub async fn extend_timer(&self, id: &str, duration_s: u64) -> ApiResult<Timer> {
        let body = TimerExtend { duration_s };
        Self::json(self.req(reqwest::Method::POST, &format!("/v1/timers/{id}/extend")).json(&body)).await
    }

    /// `POST /v1/timers/{id}/checkin` with the PIN.
    pub async fn check_in(&self, id: &str, pin: &str) -> ApiResult<Timer> {
        let body = PinBody { pin: pin.to_owned() };
        Self::json(self.req(reqwest::Method::POST, &format!("/v1/timers/{id}/checkin")).json(&body)).await
    }

    /// `POST /v1/timers/{id}/cancel` with the PIN.
    pub async fn cancel_timer(&self, id: &str, pin: &str) -> ApiResult<Timer> {
        let body = PinBody { pin: pin.to_owned() };
        Self::json(self.req(reqwest::Method::POST, &format!("/v1/timers/{id}/cancel")).json(&body)).await
    }

    /// `POST /v1/alerts/{id}/cancel`: ends one's own SOS with the PIN.
    pub async fn cancel_alert(&self, id: &str, pin: &str) -> ApiResult<StatusBody> {
        let body = PinBody { pin: pin.to_owned() };
        Self::json(self.req(reqwest::Method::POST, &format!("/v1/alerts/{id}/cancel")).json(&body)).await
    }

    /// `POST /v1/geozones`.
    pub async fn add_zone(&self, z: &Zone) -> ApiResult<Zone> {
        Self::json(self.req(reqwest::Method::POST, "/v1/geozones").json(z)).await
    }

    /// `GET /v1/geozones`.
    pub async fn zones(&self) -> ApiResult<Vec<Zone>> {
        Self::json(self.req(reqwest::Method::GET, "/v1/geozones")).await
    }

    /// `DELETE /v1/geozones/{id}`.
    pub async fn remove_zone(&self, id: &str) -> ApiResult<()> {
        Self::empty(self.req(reqwest::Method::DELETE, &format!("/v1/geozones/{id}"))).await
    }

    /// `GET /v1/alerts/{id}/deliveries`: who was texted, and how far each text got.
    pub async fn deliveries(&self, alert: &str) -> ApiResult<Vec<Delivery>> {
        Self::json(self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/deliveries"))).await
    }

    /// `GET /v1/alerts/{id}/trail` as GeoJSON (or GPX with `gpx`).
    pub async fn trail(&self, alert: &str, gpx: bool) -> ApiResult<String> {
        let accept = if gpx { "application/gpx+xml" } else { "application/geo+json" };
        let r = self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/trail")).header("accept", accept);
        Ok(Self::send(r).await?.text().await?)
    }

    /// `GET /v1/alerts/{id}/place`: the newest fix, its Plus Code and the address near it (in
    /// `language`, where the server has a geocoder).
    pub async fn place(&self, alert: &str, language: &str) -> ApiResult<Place> {
        Self::json(self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/place?lang={language}"))).await
    }

    /// `GET /v1/alerts/{id}/recording`: the stored parts.
    pub async fn recording(&self, alert: &str) -> ApiResult<Vec<RecordingPart>> {
        Self::json(self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/recording"))).await
    }

    /// `GET /v1/alerts/{id}/recording/{part}`, whole or one byte range (`start..end`, end
    /// exclusive).
    pub async fn recording_part(
        &self,
        alert: &str,
        part: u16,
        range: Option<std::ops::Range<u64>>,
    ) -> ApiResult<Vec<u8>> {
        let mut r = self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/recording/{part}"));
        if let Some(range) = range {
            r = r.header("range", format!("bytes={}-{}", range.start, range.end.saturating_sub(1)));
        }
        Ok(Self::send(r).await?.bytes().await?.to_vec())
    }

    /// `POST /v1/alerts/{id}/recording`: uploads a whole recording (raw body with its MIME
    /// type) of the device's own alert; what the stream already stored is not stored twice.
    pub async fn upload_recording(
        &self,
        alert: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> ApiResult<RecordingUploaded> {
        let r = self.req(reqwest::Method::POST, &format!("/v1/alerts/{alert}/recording"));
        Self::json(r.header("content-type", mime).body(bytes)).await
    }

    /// tus creation on `POST /v1/alerts/{id}/recording`: a resumable upload of `length` bytes;
    /// returns its URL (relative, `/v1/uploads/…`).
    pub async fn create_upload(&self, alert: &str, length: u64, mime: &str) -> ApiResult<String> {
        use base64::Engine;
        let meta = format!("filetype {}", base64::engine::general_purpose::STANDARD.encode(mime));
        let r = self
            .req(reqwest::Method::POST, &format!("/v1/alerts/{alert}/recording"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string())
            .header("upload-metadata", meta);
        let res = Self::send(r).await?;
        Ok(res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// tus `HEAD` on an upload's URL: how many bytes the server holds.
    pub async fn upload_offset(&self, upload_url: &str) -> ApiResult<u64> {
        let r = self.req(reqwest::Method::HEAD, upload_url).header("tus-resumable", "1.0.0");
        Ok(offset_of(&Self::send(r).await?))
    }

    /// `PATCH /v1/uploads/{upload}`: the bytes from `offset` (tus); returns the new offset.
    pub async fn upload_bytes(&self, upload_url: &str, offset: u64, bytes: Vec<u8>) -> ApiResult<u64> {
        let r = self
            .req(reqwest::Method::PATCH, upload_url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes);
        Ok(offset_of(&Self::send(r).await?))
    }

    /// `GET /v1/alerts/{id}/evidence`: the signed evidence bundle (a zip), as the person's device
    /// or a responder.
    pub async fn evidence(&self, alert: &str) -> ApiResult<Vec<u8>> {
        let r = self.req(reqwest::Method::GET, &format!("/v1/alerts/{alert}/evidence"));
        Ok(Self::send(r).await?.bytes().await?.to_vec())
    }

    /// `GET /v1/evidence/key`: the public key evidence is signed with (base64).
    pub async fn evidence_key(&self) -> ApiResult<String> {
        let v: serde_json::Value = Self::json(self.req(reqwest::Method::GET, "/v1/evidence/key")).await?;
        Ok(v["public_key"].as_str().unwrap_or_default().to_owned())
    }

    /// `PUT /v1/alerts/{id}/hold`: a responder puts the alert on legal hold, with a reason.
    pub async fn hold(&self, alert: &str, reason: &str) -> ApiResult<()> {
        let body = serde_json::json!({ "reason": reason });
        Self::empty(self.req(reqwest::Method::PUT, &format!("/v1/alerts/{alert}/hold")).json(&body)).await
    }

    /// `DELETE /v1/alerts/{id}/hold`: the responder lifts it.
    pub async fn lift_hold(&self, alert: &str) -> ApiResult<()> {
        Self::empty(self.req(reqwest::Method::DELETE, &format!("/v1/alerts/{alert}/hold"))).await
    }

    /// `DELETE /v1/me`: erases the caller's account and all their data, with their PIN.
    pub async fn erase_me(&self, pin: &str) -> ApiResult<()> {
        let body = PinBody { pin: pin.to_owned() };
        Self::empty(self.req(reqwest::Method::DELETE, "/v1/me").json(&body)).await
    }
}

/// A tus answer's `Upload-Offset`.
fn offset_of(res: &reqwest::Response) -> u64 {
    res.headers().get("upload-offset").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    /// Endpoints only a provider or a developer calls (webhooks, the console provider's list).
    const NOT_FOR_CLIENTS: &[&str] = &["/v1/sms/status", "/v1/sms/inbound", "/v1/dev/sms"];

    #[test]
    fn every_endpoint_of_the_openapi_document_has_a_method() {
        let spec =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml")).unwrap();
        let src = include_str!("api.rs");
        let mut path = None;
        let mut seen = 0;
        for line in spec.lines() {
            if let Some(p) = line.strip_prefix("  /") {
                path = Some(format!("/{}", p.trim_end_matches(':')));
                continue;
            }
            let Some(p) = path.as_deref().filter(|p| !NOT_FOR_CLIENTS.contains(p)) else { continue };
            for method in ["get", "post", "put", "delete", "patch"] {
                if line.trim_end() == format!("    {method}:") {
                    let doc = format!("`{} {p}", method.to_uppercase());
                    assert!(src.contains(&doc), "no Api method documented as {doc}`");
                    seen += 1;
                }
            }
        }
        assert!(seen > 20, "read the endpoints ({seen})");
    }
}
