//! Reconnecting the way a crowd of clients should: growing, jittered delays, reset only by a
//! connection that proved healthy; and the WebSocket base of a server URL.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// Reconnect delays: growing across failures, with jitter, and back to the first only after a
/// connection proved healthy (an ack moved, or it stayed up a while). Resetting on every
/// successful connect made phones reconnect ~12 times a second against a server that accepts
/// and then fails (storage down, 4503).
pub(crate) struct Backoff {
    next: Duration,
    connected_at: Option<Instant>,
    /// The current connection stored something (an ack moved): the server works.
    acked: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST, connected_at: None, acked: false }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);
    /// A connection up this long was healthy.
    const HEALTHY: Duration = Duration::from_secs(10);

    /// A connection is up (and not yet known to have failed).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    pub(crate) fn connected(&mut self) {
        self.connected_at = Some(Instant::now());
        self.acked = false;
    }

    pub(crate) fn healthy(&mut self) {
        self.acked = true;
    }

    /// The connection (or an attempt) failed: when to try again.
    pub(crate) fn lost(&mut self) -> Instant {
        let lasted = self.connected_at.take().is_some_and(|t| t.elapsed() >= Self::HEALTHY);
        if lasted || std::mem::take(&mut self.acked) {
            self.next = Self::FIRST;
        }
        let full = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Half to all of the delay, so phones cut off together do not come back together.
        Instant::now() + full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
    }
}

/// `ws(s)://host[:port]` for a server given as `http(s)://…` or `ws(s)://…`.
pub(crate) fn ws_base(server: &str) -> anyhow::Result<String> {
    let base = server.trim_end_matches('/');
    Ok(if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        bail!("--server must be an http(s):// or ws(s):// URL");
    })
}
