//! The server's clock for deadlines: the system's, or, in tests, one they move forward at will.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

/// Wall clock plus an offset that only tests change.
pub struct Clock {
    offset_ms: AtomicI64,
    manual: bool,
    changed: Notify,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self { offset_ms: AtomicI64::new(0), manual: false, changed: Notify::new() }
    }

    /// A clock its holder moves forward ([`Clock::advance`]), so that tests of hour-long
    /// deadlines run in milliseconds. Only code that builds a server in-process (tests) can
    /// hand one in: the `alertme` binary has no way to.
    pub fn manual() -> Self {
        Self { offset_ms: AtomicI64::new(0), manual: true, changed: Notify::new() }
    }

    /// Now, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        crate::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves a manual clock forward and wakes whatever waits on a deadline.
    ///
    /// # Panics
    /// On the system clock: nothing may move real time.
    pub fn advance(&self, ms: i64) {
        assert!(self.manual, "only a manual clock can be moved");
        self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Resolves when the clock was moved.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
