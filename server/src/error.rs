//! What an operation can fail with; `web::error` turns each into a status and a stable code.

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
    #[error("this link has expired: the alert ended and its links no longer work")]
    LinkExpired,
    /// The verification code is wrong, expired or used up.
    #[error("invalid or expired code")]
    InvalidCode,
    /// Cluster mode: the node that holds this alert does not answer yet (retry in a moment).
    #[error("{0}")]
    Unavailable(String),
    /// A precondition of the protocol spoken is not met (tus: another version).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not in a format we take.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// Bytes of an upload sent for another offset than where it stands.
    #[error("the upload stands at byte {0}; send from there")]
    UploadOffset(u64),
    /// Database failure (`storage` converts its errors into this).
    #[error("database: {0}")]
    Db(Box<dyn std::error::Error + Send + Sync>),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::e164::InvalidPhone> for Error {
    fn from(e: crate::e164::InvalidPhone) -> Self {
        Self::BadRequest(e.to_string())
    }
}
