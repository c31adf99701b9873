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
            Self::Db(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; see server log".to_owned()
        } else {
            self.to_string()
        };
        (
            status,
            Json(ErrorBody {
                error: code.to_owned(),
                detail,
            }),
        )
            .into_response()
    }
}
