//! Errors as clients see them: a status code and a JSON body with a stable code.

use alertme_protocol::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::Error;

/// The status and stable code of an error.
fn parts(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Error::ForbiddenOrigin => (StatusCode::FORBIDDEN, "origin_not_allowed"),
        Error::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid_code"),
        Error::LinkExpired => (StatusCode::GONE, "link_expired"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Error::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        Error::UploadOffset(_) => (StatusCode::CONFLICT, "upload_offset"),
        Error::Db(_) | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = parts(&self);
        metrics::counter!(crate::telemetry::HTTP_ERRORS, "error" => code).increment(1);
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; see server log".to_owned()
        } else {
            self.to_string()
        };
        (status, Json(ErrorBody { error: code.to_owned(), detail })).into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for Error {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

/// `Json` whose rejections use our error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct AppJson<T>(pub T);
