//! The server's clock for deadlines. In tests (`--test-clock`) it can be moved forward, so timer
//! tests run in milliseconds; the offset survives restarts through a file in the data dir.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

/// Wall clock plus an offset that only tests change.
pub struct Clock {
    offset_ms: AtomicI64,
    file: Option<PathBuf>,
    changed: Notify,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self { offset_ms: AtomicI64::new(0), file: None, changed: Notify::new() }
    }

    /// A clock that tests can advance, starting from the offset saved in `file` (if any).
    pub fn controllable(file: PathBuf) -> Self {
        let offset = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        Self { offset_ms: AtomicI64::new(offset), file: Some(file), changed: Notify::new() }
    }

    /// True when tests may move it.
    pub fn is_controllable(&self) -> bool {
        self.file.is_some()
    }

    /// Now, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        crate::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward and wakes whatever waits on a deadline.
    pub fn advance(&self, ms: i64) -> std::io::Result<()> {
        let offset = self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed) + ms.max(0);
        if let Some(f) = &self.file {
            std::fs::write(f, offset.to_string())?;
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// Resolves when the clock was moved.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
