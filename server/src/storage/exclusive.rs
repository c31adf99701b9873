//! One server per SQLite database: a lock on a file beside it, held while the server runs.
//!
//! Two servers writing one SQLite file would each take itself for the only writer: each keeps
//! its alerts' positions and evidence chains in memory, so their items would clash (batches
//! failing on duplicates, phones never acked) or fork an alert's chain across the fixes and
//! audio tables, whose unique chain indexes each see only their own table. PostgreSQL is shared
//! on purpose (cluster mode), and guarded by fencing numbers instead.
//!
//! The lock is the operating system's (`flock`), so it goes with the process, however that ends
//! (SIGKILL included); the file stays and means nothing by itself.

use std::path::PathBuf;
use std::time::Duration;

/// How often a starting server looks again while another holds the database.
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Why a server may not use the database.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another AlertMe server is using the database {db} (it holds {lock}): stop it first, \
         or give this one its own database (--data-dir or --database-url)"
    )]
    Busy {
        /// The database file.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The database's lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Held {
    _file: std::fs::File,
}

/// Takes the lock of the SQLite database at `url`, waiting up to `wait` for a server that holds
/// it to stop (a restart whose old process is still finishing its last commits). `None` for
/// databases that need no lock: PostgreSQL and in-memory SQLite.
pub async fn take(url: &str, wait: Duration) -> Result<Option<Held>, LockError> {
    let Some(db) = super::sqlite_file(url) else { return Ok(None) };
    // `alertme.db` → `alertme.db.lock`.
    let lock = db.with_added_extension("lock");
    let io = |source| LockError::Io { path: lock.clone(), source };
    // Before the database exists (a first start), its directory may not either.
    if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).map_err(io)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Held { _file: file })),
            Err(std::fs::TryLockError::Error(e)) if unsupported(&e) => {
                // Some network file systems have no such locks: run as before, unguarded.
                tracing::warn!(
                    lock = %lock.display(),
                    error = %e,
                    "this file system cannot lock files; nothing stops a second server on this database"
                );
                return Ok(None);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                if !said {
                    tracing::warn!(
                        lock = %lock.display(),
                        "another server is using this database; waiting up to {wait:?} for it to stop"
                    );
                    said = true;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(LockError::Busy { db, lock }),
        }
    }
}

/// The file system has no `flock` (some network mounts): not a reason to refuse to start.
fn unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::ENOLCK || code == libc::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock keeps a second holder out until the first lets go; PostgreSQL needs none.
    #[tokio::test]
    async fn one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!("alertme-lock-{}", uuid::Uuid::new_v4()));
        // Its directory is made (a first start, before the database exists).
        let url = format!("sqlite://{}?mode=rwc", dir.join("new").join("a.db").display());
        let first = take(&url, Duration::ZERO).await.unwrap().expect("a SQLite file is locked");
        let second = take(&url, Duration::from_millis(100)).await;
        assert!(matches!(second, Err(LockError::Busy { .. })), "{second:?}");
        // Let go while the next one waits: it gets the lock.
        let waiting = tokio::spawn({
            let url = url.clone();
            async move { take(&url, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert!(waiting.await.unwrap().unwrap().is_some());
        assert!(take("postgres://x@127.0.0.1/db", Duration::ZERO).await.unwrap().is_none());
        assert!(take("sqlite::memory:", Duration::ZERO).await.unwrap().is_none());
        assert!(take("sqlite://shared?mode=memory", Duration::ZERO).await.unwrap().is_none());
        std::fs::remove_dir_all(dir).ok();
    }
}
