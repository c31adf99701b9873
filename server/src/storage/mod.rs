//! Database connection: SQLite (embedded default) or PostgreSQL, migrated on connect.

pub mod entity;
pub mod evidence;
pub mod exclusive;
pub mod outbox;
pub mod owners;
pub mod priority;
pub mod recordings;
pub mod uploads;
pub mod wal;
pub mod writer;

use std::time::Duration;

use alertme_migrations::{Migrator, MigratorTrait};
use anyhow::{bail, Context};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

/// Opens the database at `url`, applies durability settings, checks them, and runs migrations.
///
/// SQLite gets WAL (readers never block the writer) and `synchronous=FULL`, so a commit is on disk
/// before we acknowledge anything to a phone. sqlx's defaults differ across versions, so the
/// settings are read back and startup fails if they did not take.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = open(url, 8, 16).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // Once, here: the writer's own pool is checked too but need not say it again.
        tracing::info!("sqlite: journal_mode=wal synchronous=full");
    }
    migrate(&db).await.context("running migrations")?;
    Ok(db)
}

/// Applies pending migrations. Several cluster nodes starting at once on one PostgreSQL database
/// may race on the same migration: the loser's statement fails while the winner commits, so it
/// tries again (the winner's work is then recorded as applied).
async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let mut tries = 0;
    loop {
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(e) if db.get_database_backend() == DbBackend::Postgres && tries < 5 => {
                tries += 1;
                tracing::info!(error = %e, tries, "migration raced another server; trying again");
                tokio::time::sleep(Duration::from_millis(300 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A small pool of its own for the durable writer, opened on the writer's thread so that its
/// connections belong to that thread's runtime (settings as in [`connect`]; the schema is
/// already migrated by then). On SQLite one connection: the writer does one thing at a time,
/// and a connection's page cache is dropped whenever another connection wrote since its last
/// transaction, so two connections taking turns kept re-reading the index pages every commit
/// touches (`bench ingest`: file reads 84 → 60 MB/s, CPU ~−7 %; docs/benchmarks.md, session 13).
pub async fn connect_writer(url: &str) -> anyhow::Result<DatabaseConnection> {
    open(url, 1, 2).await
}

/// On SQLite, a connection of its own that copies the WAL into the database file beside the
/// writer (see `wal`); `None` on PostgreSQL.
pub async fn connect_copier(url: &str) -> anyhow::Result<Option<DatabaseConnection>> {
    if sqlite_file(url).is_none() {
        return Ok(None);
    }
    open(url, 1, 1).await.map(Some)
}

async fn open(url: &str, sqlite_max: u32, postgres_max: u32) -> anyhow::Result<DatabaseConnection> {
    let backend = if is_sqlite(url) {
        DbBackend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        DbBackend::Postgres
    } else {
        bail!("unsupported database URL scheme (use sqlite:// or postgres://)");
    };
    if backend == DbBackend::Sqlite {
        ensure_sqlite_dir(url)?;
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .max_connections(if backend == DbBackend::Sqlite { sqlite_max } else { postgres_max })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(15))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(15))
                // The durable writer checkpoints between its commits (`wal`), not whichever
                // commit happens to fill the WAL: that commit would wait for the copy.
                .pragma("wal_autocheckpoint", "0")
                // A WAL that grew (a reader held old pages for long) is cut back to this when
                // it starts over, instead of keeping its largest size on disk for good. Above
                // one second of commits at full load (~66 MB with 1,000 phones), so that a
                // WAL of normal length is not cut and grown again every second.
                .pragma("journal_size_limit", (128 * 1024 * 1024).to_string())
                // Statement journals (kept while a multi-row INSERT runs inside the writer's
                // transaction) in memory rather than in a temporary file written page by page.
                .pragma("temp_store", "memory")
        });
    let db = Database::connect(opts).await.context("connecting to the database")?;
    if backend == DbBackend::Sqlite {
        check_sqlite_settings(&db).await?;
    }
    Ok(db)
}

fn ensure_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_file(url) else { return Ok(()) };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Whether `url` names a SQLite database (a file or in memory).
pub(crate) fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file of a SQLite URL (`None` for other databases and in-memory SQLite).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite:")?;
    let path = path.strip_prefix("//").unwrap_or(path);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let in_memory = path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!path.is_empty() && !in_memory).then(|| std::path::PathBuf::from(path))
}

async fn check_sqlite_settings(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pragma = |name: &str| Statement::from_string(DbBackend::Sqlite, format!("PRAGMA {name}"));
    let mode: String =
        db.query_one_raw(pragma("journal_mode")).await?.context("no journal_mode")?.try_get_by_index(0)?;
    let sync: i64 =
        db.query_one_raw(pragma("synchronous")).await?.context("no synchronous")?.try_get_by_index(0)?;
    if !mode.eq_ignore_ascii_case("wal") || sync != 2 {
        bail!("SQLite settings did not take: journal_mode={mode}, synchronous={sync} (want wal, 2=FULL)");
    }
    Ok(())
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails with
/// "database is locked" instead of waiting when another writer committed in between.
/// Other backends ignore the mode.
pub async fn write_txn(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// The database handle the layers above hold (they never query it themselves).
pub type Db = sea_orm::DatabaseConnection;

impl From<sea_orm::DbErr> for crate::error::Error {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Db(Box::new(e))
    }
}
