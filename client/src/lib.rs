//! AlertMe's reference Rust client: a phone that streams an SOS by docs/protocol.md's rules
//! (start and resume, keep everything until acked, newest fix first, backoff across failures,
//! `stop` until `stopped`), and the tracks it replays. Used by the demo, `alertme-tools` and the
//! tests. Also a watcher that follows an alert as a contact's page does, resuming after drops,
//! and the REST API as calls.
#![warn(missing_docs)]

pub mod api;
mod backoff;
pub mod phone;
pub mod track;
pub mod watch;

pub use api::{Api, ApiError, ApiResult};
pub use phone::{run, Finish, PhoneArgs};
pub use watch::{Seen, Watcher};

/// How this crate's sockets (and `alertme-tools`' load generator's) read: into 8 KiB at a time
/// (a bigger message still arrives whole, in several reads). tungstenite zero-fills the spare
/// room of its read buffer before every read, 128 KiB by default: thousands of such sockets in
/// one process spent a core on `memset` (docs/benchmarks.md, session 14).
pub fn socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// Milliseconds since the Unix epoch, this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
