//! SQLite's write-ahead log kept small: the durable writer checkpoints it between its commits.
//!
//! A commit appends the pages it touched to the WAL; a checkpoint copies them into the database
//! file, and the next commit after a *complete* one starts the WAL over from its beginning. A
//! checkpoint running beside the writer (as it once did, on a timer of its own) never completes
//! under steady load: commits land while it copies, so the WAL only ever grew (1 GB within 25 s
//! of 1,000 phones, each write into new file space paid for by the kernel zeroing pages; see
//! docs/benchmarks.md, session 13). Finished by the writer while it commits nothing, a
//! checkpoint copies everything (unless a reader still holds older pages, or another connection
//! commits meanwhile; the next one catches up), and the WAL stays about one second of commits
//! long.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::time::Instant;

/// How often the WAL is copied into the database file. Longer copies each hot page fewer times
/// (a page touched by many commits is copied once) but makes the WAL, and the one pause of the
/// writer, longer.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// When the writer checkpoints next; `None` on PostgreSQL, which keeps its own log.
///
/// Each checkpoint has two steps. A connection of its own copies the WAL beside the writer,
/// which goes on committing (the copy is most of the work: 22-45 ms a second at 1,000 phones
/// when the writer did it all, and acks waited). Then the writer, between two commits, copies
/// what was committed meanwhile, which completes the checkpoint.
pub struct Checkpoints {
    next: Option<Instant>,
    /// The connection that copies beside the writer (without one, the writer copies it all).
    copier: Option<DatabaseConnection>,
    /// The copy under way beside the writer.
    copying: Option<tokio::task::JoinHandle<Result<Checkpointed, sea_orm::DbErr>>>,
}

/// What one checkpoint did, as SQLite reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    /// The checkpoint could not run to its end (another checkpoint, or a lock).
    pub busy: bool,
    /// Frames in the WAL (-1 when the database is not in WAL mode or the run was cut short).
    pub frames: i64,
    /// Of these, frames now in the database file.
    pub copied: i64,
}

impl Checkpointed {
    /// Everything copied: the next commit starts the WAL over.
    pub fn complete(&self) -> bool {
        !self.busy && self.frames >= 0 && self.copied == self.frames
    }
}

/// How often an idle writer looks whether the copy beside it is done.
const COPY_POLL: Duration = Duration::from_millis(5);

impl Checkpoints {
    /// Checkpoints for the database behind `db`, copying on `copier` beside the writer.
    pub fn new(db: &DatabaseConnection, copier: Option<DatabaseConnection>) -> Self {
        let sqlite = db.get_database_backend() == DbBackend::Sqlite;
        Self { next: sqlite.then(|| Instant::now() + CHECKPOINT_EVERY), copier, copying: None }
    }

    /// When the writer should look again (to wake an idle writer for it).
    pub fn due_at(&self) -> Option<Instant> {
        let next = self.next?;
        Some(if self.copying.is_some() { Instant::now() + COPY_POLL } else { next })
    }

    /// Starts or finishes a checkpoint if one is due. The caller holds no transaction.
    pub async fn run_if_due(&mut self, db: &DatabaseConnection) {
        let Some(next) = self.next else { return };
        if let Some(copying) = &self.copying {
            if !copying.is_finished() {
                return;
            }
            let copied = self.copying.take().expect("checked above").await;
            let failed = match copied {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = failed {
                tracing::warn!(%error, "copying the WAL beside the writer failed; the writer copies it");
            }
            self.finish(db).await;
            return;
        }
        if Instant::now() < next {
            return;
        }
        match &self.copier {
            Some(copier) => self.copying = Some(tokio::spawn(checkpoint(copier.clone()))),
            None => self.finish(db).await,
        }
    }

    /// The writer's step: copies what is left, with nothing committed meanwhile.
    async fn finish(&mut self, db: &DatabaseConnection) {
        let started = std::time::Instant::now();
        match checkpoint(db.clone()).await {
            Ok(done) => {
                let took = started.elapsed().as_secs_f64();
                metrics::histogram!(crate::telemetry::WAL_CHECKPOINT_SECONDS).record(took);
                // Counts and durations only (RUST_LOG=alertme_server::storage::wal=debug).
                tracing::debug!(
                    busy = done.busy,
                    frames = done.frames,
                    copied = done.copied,
                    ms = took * 1e3,
                    "wal checkpoint"
                );
                if !done.complete() {
                    // A reader still uses older pages, or the database was busy: the next one
                    // catches up.
                    metrics::counter!(crate::telemetry::WAL_CHECKPOINTS_INCOMPLETE).increment(1);
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; trying again in a second"),
        }
        self.next = Some(Instant::now() + CHECKPOINT_EVERY);
    }
}

/// Copies what the WAL holds into the database file without waiting for readers (`PASSIVE`).
pub async fn checkpoint(db: DatabaseConnection) -> Result<Checkpointed, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)"))
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("wal_checkpoint returned no row".into()))?;
    let busy: i64 = row.try_get_by_index(0)?;
    Ok(Checkpointed { busy: busy != 0, frames: row.try_get_by_index(1)?, copied: row.try_get_by_index(2)? })
}
