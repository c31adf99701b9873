//! Durable writes with group commit: fixes and audio chunks are stored before they are acked.
//!
//! One writer task takes every queued job at once, writes the audio bytes to their part files
//! with positional writes, `fsync`s each touched file once, then commits all rows in one
//! transaction. Only then does it tell the sessions, which move the acks and relay to watchers.
//! Under load the batches grow, so acks stay fast while the database sees few commits.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alertme_protocol::Fix;
use anyhow::Context;
use bytes::Bytes;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::audio::Container;
use crate::db::entity::{audio_chunks, audio_parts, fixes};
use crate::hub::Session;

/// Jobs waiting for the writer. When full, phone sockets stop reading (backpressure to the
/// phone, which keeps its data until acked) instead of the server buffering without bound.
const QUEUE_CAPACITY: usize = 4096;
/// Most jobs folded into one commit.
const MAX_BATCH: usize = 1024;
/// Rows per INSERT statement (11 columns × 200 stays far below SQLite's parameter limit).
const ROWS_PER_INSERT: usize = 200;

/// What the writer tells a phone connection when it cannot take a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Audio arrived ahead of a missing chunk; resend from `expected`.
    AudioGap {
        /// The seq the server needs next.
        expected: u64,
    },
    /// The alert has no (supported) audio format.
    NoAudioFormat,
    /// Storage failed; nothing in the batch was acked. Reconnect and resend.
    StorageFailed,
}

enum Job {
    Forget(String),
    Fixes {
        session: Arc<Session>,
        fixes: Vec<Fix>,
        notice: mpsc::Sender<Notice>,
    },
    Audio {
        session: Arc<Session>,
        mime: Option<String>,
        seq: u64,
        bytes: Bytes,
        notice: mpsc::Sender<Notice>,
    },
}

/// Handle to the writer.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    audio_dir: PathBuf,
}

/// Where an alert's audio stands on disk and in the database.
#[derive(Debug, Clone)]
pub struct AudioPosition {
    /// Highest stored chunk seq.
    pub acked: u64,
    /// Current part, its MIME type and committed length.
    pub part: Option<(u16, String, u64)>,
}

impl Store {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection, data_dir: &Path) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let audio_dir = data_dir.join("audio");
        tokio::spawn(Writer { db, audio_dir: audio_dir.clone(), files: HashMap::new() }.run(rx));
        Self { tx, audio_dir }
    }

    /// Queues fixes for storage; waits only when the queue is full.
    pub async fn fixes(&self, session: Arc<Session>, fixes: Vec<Fix>, notice: mpsc::Sender<Notice>) {
        let _ = self.tx.send(Job::Fixes { session, fixes, notice }).await;
    }

    /// Queues an audio chunk for storage; waits only when the queue is full.
    pub async fn audio(
        &self,
        session: Arc<Session>,
        mime: Option<String>,
        seq: u64,
        bytes: Bytes,
        notice: mpsc::Sender<Notice>,
    ) {
        let _ = self.tx.send(Job::Audio { session, mime, seq, bytes, notice }).await;
    }

    /// Drops the writer's open file of an ended alert (after anything queued before it).
    pub async fn forget(&self, alert_id: &str) {
        let _ = self.tx.send(Job::Forget(alert_id.to_owned())).await;
    }

    /// Path of a stored audio part.
    pub fn part_path(&self, alert_id: &str, part: u16, mime: &str) -> PathBuf {
        part_path(&self.audio_dir, alert_id, part, mime)
    }
}

fn part_path(audio_dir: &Path, alert_id: &str, part: u16, mime: &str) -> PathBuf {
    let ext = Container::from_mime(mime).map_or("bin", |c| c.extension());
    audio_dir.join(alert_id).join(format!("{part:04}.{ext}"))
}

/// Reads an alert's audio position from the database and trims its part file to the committed
/// length: bytes written before a crash but never committed were never acked, and the phone
/// resends them.
pub async fn recover_audio(
    db: &DatabaseConnection,
    audio_dir: &Path,
    alert_id: &str,
) -> anyhow::Result<AudioPosition> {
    let last = audio_chunks::Entity::find()
        .filter(audio_chunks::Column::AlertId.eq(alert_id))
        .order_by_desc(audio_chunks::Column::Seq)
        .one(db)
        .await?;
    let Some(last) = last else {
        return Ok(AudioPosition { acked: 0, part: None });
    };
    let part = audio_parts::Entity::find_by_id((alert_id.to_owned(), last.part))
        .one(db)
        .await?
        .context("audio chunk without its part row")?;
    let len = (last.offset + last.len as i64) as u64;
    let path = part_path(audio_dir, alert_id, last.part as u16, &part.mime);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let on_disk = f.metadata()?.len();
    anyhow::ensure!(
        on_disk >= len,
        "audio part {} shorter than committed ({on_disk} < {len})",
        path.display()
    );
    if on_disk > len {
        tracing::warn!(alert = alert_id, dropped = on_disk - len, "trimming unacknowledged audio bytes");
        f.set_len(len)?;
        f.sync_all()?;
    }
    Ok(AudioPosition { acked: last.seq as u64, part: Some((last.part as u16, part.mime, len)) })
}

struct OpenPart {
    next_seq: u64,
    part: Option<(u16, String, u64, Arc<File>)>,
}

struct Writer {
    db: DatabaseConnection,
    audio_dir: PathBuf,
    /// Per alert: where the next chunk goes. Dropped on failure and rebuilt from the database.
    files: HashMap<String, OpenPart>,
}

struct PlannedWrite {
    file: Arc<File>,
    offset: u64,
    bytes: Bytes,
}

enum Done {
    Fixes(Arc<Session>, Vec<Fix>),
    Audio(Arc<Session>, u64, String, Bytes),
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    async fn commit(&mut self, jobs: Vec<Job>) {
        let now = crate::now_ms();
        let audio_dir = self.audio_dir.clone();
        let mut writes = Vec::new();
        let mut fix_rows = Vec::new();
        let mut part_rows = Vec::new();
        let mut chunk_rows = Vec::new();
        let mut done = Vec::new();
        let mut notices = Vec::new();
        let mut touched = Vec::new();
        for job in jobs {
            match job {
                Job::Forget(id) => {
                    self.files.remove(&id);
                }
                Job::Fixes { session, fixes, notice } => {
                    for f in &fixes {
                        fix_rows.push(fix_row(&session.alert_id, f, now));
                    }
                    notices.push(notice);
                    done.push(Done::Fixes(session, fixes));
                }
                Job::Audio { session, mime, seq, bytes, notice } => {
                    let Some(mime) = mime.filter(|m| Container::from_mime(m).is_some()) else {
                        let _ = notice.try_send(Notice::NoAudioFormat);
                        continue;
                    };
                    let id = session.alert_id.clone();
                    let open = match self.open(&id).await {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::error!(alert = %id, error = %e, "audio state unavailable");
                            let _ = notice.try_send(Notice::StorageFailed);
                            continue;
                        }
                    };
                    if seq < open.next_seq {
                        // A resend of something stored: the ack it gets now is all it needs.
                        done.push(Done::Audio(session, seq, mime, Bytes::new()));
                        continue;
                    }
                    if seq > open.next_seq {
                        let _ = notice.try_send(Notice::AudioGap { expected: open.next_seq });
                        continue;
                    }
                    let container = Container::from_mime(&mime).expect("checked above");
                    let new_part = match &open.part {
                        None => Some(0),
                        Some((p, _, len, _)) if *len > 0 && container.starts_recording(&bytes) => Some(p + 1),
                        Some(_) => None,
                    };
                    if let Some(p) = new_part {
                        let path = part_path(&audio_dir, &id, p, &mime);
                        let file = match open_part_file(&path) {
                            Ok(f) => f,
                            Err(e) => {
                                tracing::error!(alert = %id, error = %e, "cannot create audio part");
                                let _ = notice.try_send(Notice::StorageFailed);
                                continue;
                            }
                        };
                        part_rows.push(audio_parts::ActiveModel {
                            alert_id: Set(id.clone()),
                            part: Set(p as i32),
                            mime: Set(mime.clone()),
                            first_seq: Set(seq as i64),
                            created_at: Set(now),
                        });
                        open.part = Some((p, mime.clone(), 0, Arc::new(file)));
                    }
                    let (p, _, len, file) = open.part.as_mut().expect("set above");
                    writes.push(PlannedWrite { file: file.clone(), offset: *len, bytes: bytes.clone() });
                    chunk_rows.push(audio_chunks::ActiveModel {
                        alert_id: Set(id.clone()),
                        seq: Set(seq as i64),
                        part: Set(*p as i32),
                        offset: Set(*len as i64),
                        len: Set(bytes.len() as i32),
                        sha256: Set(hex::encode(Sha256::digest(&bytes))),
                        received_at: Set(now),
                    });
                    *len += bytes.len() as u64;
                    open.next_seq += 1;
                    touched.push(id);
                    notices.push(notice);
                    done.push(Done::Audio(session, seq, mime, bytes));
                }
            }
        }
        let rows_in_batch = fix_rows.len() + chunk_rows.len();
        let result = async {
            let t0 = std::time::Instant::now();
            if !writes.is_empty() {
                tokio::task::spawn_blocking(move || write_and_sync(writes)).await??;
            }
            let t1 = std::time::Instant::now();
            let txn = crate::db::write_txn(&self.db).await?;
            for rows in fix_rows.chunks(ROWS_PER_INSERT) {
                // Resent fixes are already stored: skip them instead of failing the batch.
                fixes::Entity::insert_many(rows.to_vec())
                    .on_conflict_do_nothing_on([fixes::Column::AlertId, fixes::Column::Seq])
                    .exec_without_returning(&txn)
                    .await?;
            }
            if !part_rows.is_empty() {
                audio_parts::Entity::insert_many(part_rows).exec_without_returning(&txn).await?;
            }
            for rows in chunk_rows.chunks(ROWS_PER_INSERT) {
                audio_chunks::Entity::insert_many(rows.to_vec()).exec_without_returning(&txn).await?;
            }
            txn.commit().await?;
            // How a batch's time splits between the audio files and the database (RUST_LOG=
            // alertme_server::store=debug); counts and durations only.
            tracing::debug!(
                rows = rows_in_batch,
                files_ms = (t1 - t0).as_secs_f64() * 1e3,
                db_ms = t1.elapsed().as_secs_f64() * 1e3,
                "batch committed"
            );
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "commit failed; nothing in this batch is acknowledged");
            for id in touched {
                self.files.remove(&id);
            }
            for n in notices {
                let _ = n.try_send(Notice::StorageFailed);
            }
            return;
        }
        for d in done {
            match d {
                Done::Fixes(s, fixes) => s.fixes_stored(&fixes),
                Done::Audio(s, seq, mime, bytes) if !bytes.is_empty() => s.audio_stored(seq, &mime, &bytes),
                Done::Audio(..) => {}
            }
        }
    }

    async fn open(&mut self, alert_id: &str) -> anyhow::Result<&mut OpenPart> {
        if !self.files.contains_key(alert_id) {
            let pos = recover_audio(&self.db, &self.audio_dir, alert_id).await?;
            let part = match pos.part {
                Some((p, mime, len)) => {
                    let file = open_part_file(&part_path(&self.audio_dir, alert_id, p, &mime))?;
                    Some((p, mime, len, Arc::new(file)))
                }
                None => None,
            };
            self.files.insert(alert_id.to_owned(), OpenPart { next_seq: pos.acked + 1, part });
        }
        Ok(self.files.get_mut(alert_id).expect("inserted above"))
    }
}

fn open_part_file(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?)
}

/// Above this many files in one batch, one `syncfs` (a single device flush for the whole file
/// system) is cheaper than an `fdatasync` per file, each of which flushes the device again:
/// with 1,000 phones streaming, per-file syncs made a batch take ~1 s (measured, docs/benchmarks.md).
const SYNCFS_FROM_FILES: usize = 4;

fn write_and_sync(writes: Vec<PlannedWrite>) -> anyhow::Result<()> {
    let mut files: Vec<Arc<File>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for w in &writes {
        w.file.write_all_at(&w.bytes, w.offset)?;
        if seen.insert(Arc::as_ptr(&w.file)) {
            files.push(w.file.clone());
        }
    }
    if files.len() >= SYNCFS_FROM_FILES {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; syncfs writes back every dirty inode of its file
        // system and reports write-back errors (Linux ≥ 5.8) like fdatasync does.
        if unsafe { libc::syncfs(files[0].as_raw_fd()) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error().into());
    }
    for f in files {
        f.sync_data()?;
    }
    Ok(())
}

fn fix_row(alert_id: &str, f: &Fix, now: i64) -> fixes::ActiveModel {
    fixes::ActiveModel {
        alert_id: Set(alert_id.to_owned()),
        seq: Set(f.seq as i64),
        lat: Set(f.lat),
        lon: Set(f.lon),
        accuracy_m: Set(f.accuracy_m),
        device_time: Set(f.time_ms),
        battery_pct: Set(f.battery_pct.map(i16::from)),
        speed_mps: Set(f.speed_mps),
        heading_deg: Set(f.heading_deg),
        altitude_m: Set(f.altitude_m),
        received_at: Set(now),
    }
}

/// Converts a stored fix row back to the wire type.
pub fn fix_from_row(r: fixes::Model) -> Fix {
    Fix {
        seq: r.seq as u64,
        lat: r.lat,
        lon: r.lon,
        accuracy_m: r.accuracy_m,
        time_ms: r.device_time,
        battery_pct: r.battery_pct.map(|b| b.clamp(0, 100) as u8),
        speed_mps: r.speed_mps,
        heading_deg: r.heading_deg,
        altitude_m: r.altitude_m,
    }
}
