//! Errors as clients see them: a status code and a JSON body with a stable code.

use alertme_protocol::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, unknown or revoked credentials.
    #[error("missing or invalid token")]
    Unauthorized,
    /// Browser origin not allowed.
    #[error("origin not allowed")]
    ForbiddenOrigin,
    /// Authenticated, but not allowed to see this.
    #[error("not allowed")]
    Forbidden,
    /// No such thing.
    #[error("not found")]
    NotFound,
    /// The request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// It clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests; try later.
    #[error("too many requests; try again later")]
    RateLimited,
    /// A watch link whose alert ended longer ago than links live.
    #[error("this link has expired: the alert ended more than {0} hours ago")]
    LinkExpired(u64),
    /// The verification code is wrong, expired or used up.
    #[error("invalid or expired code")]
    InvalidCode,
    /// Database failure.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::ForbiddenOrigin => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid_code"),
            Self::LinkExpired(_) => (StatusCode::GONE, "link_expired"),
            Self::Db(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
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

impl From<crate::e164::InvalidPhone> for Error {
    fn from(e: crate::e164::InvalidPhone) -> Self {
        Self::BadRequest(e.to_string())
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
