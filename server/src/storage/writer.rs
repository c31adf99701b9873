//! Durable writes with group commit: fixes and audio chunks are stored before they are acked.
//!
//! One writer, on a thread of its own (see [`Store::start`]), takes every queued job at once and
//! commits all rows, audio bytes included, in one transaction. Only then does it tell the sessions, which move the acks. Under load the
//! batches grow, so acks stay fast while the database sees few commits.
//!
//! Audio bytes live in their chunk rows rather than in one file per alert: a batch from 1,000
//! phones is then one sequential write to the database's log and one flush, instead of 1,000
//! scattered file writes the device must each make durable (measured ~10× slower here, see
//! docs/benchmarks.md). A part's playable file is its chunks joined in order.

use std::collections::HashMap;
use std::sync::Arc;

use alertme_protocol::Fix;
use anyhow::Context;
use bytes::Bytes;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::media::Container;
use crate::storage::entity::{audio_chunks, audio_parts, custody, fixes, refused_fixes, uploads};

/// Jobs waiting for the writer. When full, phone sockets stop reading (backpressure to the
/// phone, which keeps its data until acked) instead of the server buffering without bound.
const QUEUE_CAPACITY: usize = 4096;
/// Most jobs folded into one commit.
const MAX_BATCH: usize = 1024;
/// The beat of commits while only media waits (a waiting fix may go sooner, see [`Pace`]; a full
/// batch goes at once). Each commit rewrites the B-tree pages it touches, so
/// many tiny commits cost far more CPU and log bytes per row than fewer larger ones (ingest of
/// 1,000 phones: ~300 commits/s and most of a core in SQLite before; see docs/benchmarks.md).
/// A job waits at most this long for its batch: small beside the ack latency a phone tolerates.
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(25);
/// Rows per INSERT statement (11 columns × 200 stays far below SQLite's parameter limit).
const ROWS_PER_INSERT: usize = 200;
/// Custody entries that may wait for room in a full queue (see [`Store::custody`]).
const MAX_SPILLED: usize = 10_000;
/// Largest chunk row an upload writes (its bytes come in pieces of any size).
pub const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;
/// Uploads whose place the writer keeps in memory; beyond this they are read again.
const UPLOADS_CACHED: usize = 1024;

/// Who hears that items were stored: the alert's live session, which then moves the acks and
/// fans the items out. The writer owns this seam so that storage never depends on the hub
/// (`domain` implements it for the live session).
pub trait Committed: Send + Sync {
    /// The alert the items belong to.
    fn alert_id(&self) -> &str;
    /// These fixes are committed.
    fn fixes_stored(&self, fixes: &[Fix]);
    /// Fix `seq` was refused, and the refusal is committed.
    fn fix_refused(&self, seq: u64);
    /// Audio chunk `seq` is committed.
    fn audio_stored(&self, seq: u64, mime: &str, bytes: &[u8]);
    /// In a cluster, the fencing number this node owns the alert with: its items commit only
    /// while that still stands.
    fn fence(&self) -> Option<i64>;
}

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
    /// Another node took the alert over: nothing more is stored here for it.
    Fenced,
}

/// Why the writer did not take bytes of an upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefused {
    /// The bytes are not where the upload stands.
    #[error("the upload stands at byte {0}")]
    Offset(u64),
    /// No such upload for this alert.
    #[error("no such upload")]
    Unknown,
    /// They would take the upload past its declared length.
    #[error("the bytes go past the upload's declared length")]
    TooLong,
    /// Another upload is writing into the same part in this very batch: retry in a moment.
    #[error("another upload is writing into the same recording; retry")]
    Busy,
    /// Storage failed; nothing of this job is stored.
    #[error("storage failed")]
    StorageFailed,
    /// Another node took the alert over.
    #[error("the alert is live on another node")]
    Fenced,
}

/// Where an upload stands once the writer committed a job of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes of the upload received and committed.
    pub offset: u64,
    /// The stored part they went to.
    pub part: u16,
    /// Bytes of this job stored as new (bytes the part already held are not stored twice).
    pub stored: u64,
}

/// Bytes of an upload for the writer.
#[derive(Debug)]
pub struct UploadBytes {
    /// The upload.
    pub upload_id: String,
    /// Its alert.
    pub alert_id: String,
    /// The fencing number of the alert's live session on this node, if there is one.
    pub fence: Option<i64>,
    /// The MIME type a new part gets (the container sniffed from the upload's first bytes).
    pub mime: String,
    /// Where in the upload the bytes begin.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
}

enum Job {
    Forget(String),
    /// A custody log entry: written in the next batch, beside the items (see [`Store::custody`]).
    Custody(custody::ActiveModel),
    Upload(UploadBytes, tokio::sync::oneshot::Sender<Result<UploadProgress, UploadRefused>>),
    /// Answered once everything queued before it is committed (or failed).
    Flush(tokio::sync::oneshot::Sender<()>),
    Fixes {
        session: Arc<dyn Committed>,
        fixes: Vec<Fix>,
        notice: mpsc::Sender<Notice>,
        queued: std::time::Instant,
    },
    Refused {
        session: Arc<dyn Committed>,
        seq: u64,
        reason: String,
        notice: mpsc::Sender<Notice>,
    },
    Audio {
        session: Arc<dyn Committed>,
        mime: Option<String>,
        seq: u64,
        bytes: Bytes,
        notice: mpsc::Sender<Notice>,
        queued: std::time::Instant,
    },
}

/// Handle to the writer.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Custody entries waiting for room in a full queue (see [`Store::custody`]).
    spilled: tokio_util::task::TaskTracker,
}

impl Store {
    /// Starts the writer on a thread of its own, with its own connections to the database at
    /// `url`. On the shared runtime the writer's every database round trip queued behind
    /// thousands of socket tasks: at the nominal fan-out a batch took tens of ms of waiting and
    /// phones waited seconds for acks. On its own thread the OS gives it a fair share of the CPU
    /// whatever the number of sockets.
    ///
    /// `lock` (this server's hold on a SQLite database, see `storage::exclusive`) is let go only
    /// when the writer has made its last commit: a server waiting to start on the database may
    /// then write it.
    pub async fn start(
        url: &str,
        node: Option<String>,
        lock: Option<super::exclusive::Held>,
    ) -> anyhow::Result<Self> {
        // A cluster's commit holds its ownership check's transaction while it reads more: that
        // needs a second connection, which the writer has on PostgreSQL only.
        anyhow::ensure!(node.is_none() || !super::is_sqlite(url), "cluster mode needs PostgreSQL");
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let url = url.to_owned();
        let thread = std::thread::Builder::new().name("alertme-writer".into()).spawn(move || {
            let _lock = lock;
            // Before its connections start their threads, which inherit it. Not in a cluster,
            // where this thread relays what it stored (see `storage::priority`).
            if node.is_none() {
                super::priority::defer_to_sockets();
            }
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            rt.block_on(async move {
                match crate::storage::connect_writer(&url).await {
                    Ok(db) => {
                        let copier = crate::storage::connect_copier(&url).await.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "no connection to copy the WAL beside the writer; it copies it all");
                            None
                        });
                        let _ = ready_tx.send(Ok(()));
                        Writer { db, copier, positions: HashMap::new(), node, uploads: HashMap::new() }
                            .run(rx)
                            .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        ready.await.context("the writer thread ended")?.context("starting the durable writer")?;
        Ok(Self {
            tx,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
            spilled: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Waits until everything queued so far is committed (a stopping server calls this after
    /// its sockets closed, so that what was received is stored; phones resend what was not
    /// acked anyway).
    pub async fn flush(&self) {
        // Custody entries that waited for room are queued first (rare: only when the queue
        // was full, and each of them waits at most for one batch to be taken).
        while !self.spilled.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Resolves if the writer thread ever ends (a panic): acks would silently stop, so the
    /// caller takes the process down.
    pub async fn died(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match handle {
            Some(h) => {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Queues fixes for storage; waits only when the queue is full.
    pub async fn fixes(&self, session: Arc<dyn Committed>, fixes: Vec<Fix>, notice: mpsc::Sender<Notice>) {
        let _ = self.tx.send(Job::Fixes { session, fixes, notice, queued: std::time::Instant::now() }).await;
    }

    /// Queues the refusal of fix `seq`: once stored, the seq counts as acknowledged (the phone
    /// drops that fix and its later fixes can be acked).
    pub async fn refused(
        &self,
        session: Arc<dyn Committed>,
        seq: u64,
        reason: String,
        notice: mpsc::Sender<Notice>,
    ) {
        let _ = self.tx.send(Job::Refused { session, seq, reason, notice }).await;
    }

    /// Queues an audio chunk for storage; waits only when the queue is full.
    pub async fn audio(
        &self,
        session: Arc<dyn Committed>,
        mime: Option<String>,
        seq: u64,
        bytes: Bytes,
        notice: mpsc::Sender<Notice>,
    ) {
        let _ = self
            .tx
            .send(Job::Audio { session, mime, seq, bytes, notice, queued: std::time::Instant::now() })
            .await;
    }

    /// Stores bytes of an upload once everything queued before is committed: how the upload
    /// stands after them, or why they were not taken.
    pub async fn upload(&self, bytes: UploadBytes) -> Result<UploadProgress, UploadRefused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Job::Upload(bytes, tx)).await.is_err() {
            return Err(UploadRefused::StorageFailed);
        }
        rx.await.unwrap_or(Err(UploadRefused::StorageFailed))
    }

    /// Queues a custody log entry (a watch socket opened or closed, a recording downloaded)
    /// without holding up the caller. It commits with the next batch: written on their own,
    /// these entries each took SQLite's write lock for a commit of one row, and a thousand
    /// watchers reconnecting at once queued a thousand commits in front of the phones' acks.
    /// When the queue is full the entry waits for room in a task of its own rather than be
    /// dropped, since the log is evidence; [`flush`](Self::flush) waits for those too. Only
    /// past [`MAX_SPILLED`] such entries (a writer stalled for long) is one dropped, with an
    /// error in the log.
    pub fn custody(&self, row: custody::ActiveModel) {
        match self.tx.try_send(Job::Custody(row)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) if self.spilled.len() >= MAX_SPILLED => {
                tracing::error!("custody entry not recorded: the writer is {MAX_SPILLED} entries behind");
            }
            Err(mpsc::error::TrySendError::Full(job)) => {
                let tx = self.tx.clone();
                self.spilled.spawn(async move {
                    if tx.send(job).await.is_err() {
                        tracing::error!("custody entry not recorded: the writer has stopped");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("custody entry not recorded: the writer has stopped");
            }
        }
    }

    /// Drops the writer's position of an ended alert (after anything queued before it).
    pub async fn forget(&self, alert_id: &str) {
        let _ = self.tx.send(Job::Forget(alert_id.to_owned())).await;
    }
}

/// Where an alert stands in the database: its next audio chunk, its fixes and its chain.
struct OpenPart {
    next_seq: u64,
    /// Current part, its MIME type and stored length.
    part: Option<(u16, String, u64)>,
    /// Highest stored fix seq: a fix above it cannot be a resend.
    fix_max: i64,
    /// The evidence chain's last link: each stored item extends it, in commit order.
    tip: super::evidence::Tip,
    /// The fencing number this was read under (a cluster node that owns an alert again, later,
    /// reads it afresh: another node stored items meanwhile).
    fence: Option<i64>,
    /// The number a new part gets: parts come from the stream and from uploads.
    next_part: u16,
    /// The seq the next uploaded chunk gets: uploads count down from -1, apart from the
    /// phone's stream (1, 2, 3, …), whose seqs the phone assigns.
    next_upload_seq: i64,
    /// An upload wrote into the stream's current part: the stream's next chunk opens a new one.
    stream_closed: bool,
    /// Lengths of parts uploads write into (as stored plus this batch), read when first needed.
    part_lens: HashMap<u16, u64>,
}

/// Where an upload stands, as the writer keeps it.
#[derive(Debug, Clone)]
struct UploadPos {
    alert_id: String,
    offset: u64,
    length: Option<u64>,
    part: Option<u16>,
}

/// Rows a batch writes for uploads, besides chunk and part rows.
#[derive(Default)]
struct UploadRows {
    /// Existing parts uploads began writing into.
    marked: Vec<(String, u16)>,
    /// Each touched upload's place after the batch.
    places: HashMap<String, UploadPos>,
}

struct Writer {
    db: DatabaseConnection,
    /// Copies SQLite's WAL beside the writer (taken by the run loop's checkpoints).
    copier: Option<DatabaseConnection>,
    /// Per alert. Dropped on failure and rebuilt from the database.
    positions: HashMap<String, OpenPart>,
    /// In a cluster, this node's id: commits check the alerts' ownership rows.
    node: Option<String>,
    /// Uploads in progress. Dropped on failure and read again.
    uploads: HashMap<String, UploadPos>,
}

/// When the next commit may start. Media alone waits for [`COMMIT_EVERY`]; a waiting fix
/// may go sooner: [`FIX_SPACING`] after the last commit started, once the writer has rested as
/// long as that commit took. A fix is what a person in danger is acknowledged for first: with a
/// camera streaming, media arrives every ~30 ms and kept the writer on its 25 ms beat, so a
/// fix waited ~12 ms on average for a commit it did not need to share. At most 125 commits a
/// second instead of 40 while fixes keep coming: at loads where a fix always waits that costs
/// CPU for half the ack latency (docs/benchmarks.md, session 9).
#[derive(Default)]
struct Pace {
    /// The last commit's start and end.
    last: Option<(tokio::time::Instant, tokio::time::Instant)>,
}

/// The shortest time between the starts of two commits when a fix waits.
const FIX_SPACING: std::time::Duration = std::time::Duration::from_millis(8);

impl Pace {
    fn due(&self, fix_waiting: bool) -> tokio::time::Instant {
        let Some((start, end)) = self.last else { return tokio::time::Instant::now() };
        let beat = start + COMMIT_EVERY;
        if fix_waiting {
            beat.min((start + FIX_SPACING).max(end + (end - start)))
        } else {
            beat
        }
    }

    fn committed(&mut self, started: tokio::time::Instant) {
        self.last = Some((started, tokio::time::Instant::now()));
    }
}

impl Job {
    /// A fix (or a refused fix's answer): what the phone must hear about first.
    fn is_fix(&self) -> bool {
        matches!(self, Job::Fixes { .. } | Job::Refused { .. })
    }

    fn session(&self) -> Option<&Arc<dyn Committed>> {
        match self {
            Job::Fixes { session, .. } | Job::Refused { session, .. } | Job::Audio { session, .. } => {
                Some(session)
            }
            Job::Forget(_) | Job::Flush(_) | Job::Upload(..) | Job::Custody(_) => None,
        }
    }

    fn notice(&self) -> Option<&mpsc::Sender<Notice>> {
        match self {
            Job::Fixes { notice, .. } | Job::Refused { notice, .. } | Job::Audio { notice, .. } => {
                Some(notice)
            }
            Job::Forget(_) | Job::Flush(_) | Job::Upload(..) | Job::Custody(_) => None,
        }
    }
}

enum Done {
    Fixes(Arc<dyn Committed>, Vec<Fix>),
    Refused(Arc<dyn Committed>, u64),
    Audio(Arc<dyn Committed>, u64, String, Bytes),
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut pace = Pace::default();
        let mut wal = super::wal::Checkpoints::new(&self.db, self.copier.take());
        loop {
            if batch.is_empty() {
                // Idle: wake for the WAL's checkpoint too (other connections write as well).
                let n = match wal.due_at() {
                    Some(at) => tokio::select! {
                        n = rx.recv_many(&mut batch, MAX_BATCH) => Some(n),
                        _ = tokio::time::sleep_until(at) => None,
                    },
                    None => Some(rx.recv_many(&mut batch, MAX_BATCH).await),
                };
                match n {
                    Some(0) => return,
                    Some(_) => {}
                    None => {
                        wal.run_if_due(&self.db).await;
                        continue;
                    }
                }
            }
            // What arrives while the pace holds joins this batch; a fix shortens the wait.
            // (Sleeping once a fix waits, instead of waking per job, was tried: no clear CPU
            // saving in `bench ingest`, and 2 of 4 runs had p99 tails of 0.4-0.5 s; see #18.)
            let mut open = true;
            let mut fix = batch.iter().any(Job::is_fix);
            while open && batch.len() < MAX_BATCH {
                let due = pace.due(fix);
                if tokio::time::Instant::now() >= due {
                    break;
                }
                let (seen, room) = (batch.len(), MAX_BATCH - batch.len());
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    n = rx.recv_many(&mut batch, room) => open = n > 0,
                }
                // Only the new jobs are looked at (a media-only batch grows by one per wake).
                fix = fix || batch[seen..].iter().any(Job::is_fix);
            }
            let started = tokio::time::Instant::now();
            self.commit(std::mem::take(&mut batch)).await;
            pace.committed(started);
            // Between commits: the writer's step of a checkpoint copies what was committed
            // while the copy beside it ran, and so completes it (see `storage::wal`).
            wal.run_if_due(&self.db).await;
        }
    }

    async fn commit(&mut self, jobs: Vec<Job>) {
        let now = crate::now_ms();
        // Bounded between batches (within one, a job may rely on an earlier one's place).
        if self.uploads.len() >= UPLOADS_CACHED {
            self.uploads.clear();
        }
        // In a cluster the transaction opens first: it checks (and locks) the ownership rows
        // before anything of an alert this node no longer owns is stored.
        let mut early_txn = None;
        let mut fenced = std::collections::HashSet::new();
        // Per alert, the newest fencing number among the jobs: a job with an older one comes
        // from a session this node replaced, and is fenced out like another node's.
        let mut claims: HashMap<String, i64> = HashMap::new();
        for s in jobs.iter().filter_map(Job::session) {
            if let Some(f) = s.fence() {
                let c = claims.entry(s.alert_id().to_owned()).or_insert(f);
                *c = (*c).max(f);
            }
        }
        for j in &jobs {
            if let Job::Upload(UploadBytes { alert_id, fence: Some(f), .. }, _) = j {
                let c = claims.entry(alert_id.clone()).or_insert(*f);
                *c = (*c).max(*f);
            }
        }
        let stale = |s: &Arc<dyn Committed>| {
            s.fence().is_some_and(|f| claims.get(s.alert_id()).is_some_and(|newest| f < *newest))
        };
        if let Some(node) = &self.node {
            let checked = async {
                let txn = crate::storage::write_txn(&self.db).await?;
                let out = super::owners::fenced_out(&txn, node, &claims).await?;
                Ok::<_, sea_orm::DbErr>((txn, out))
            }
            .await;
            match checked {
                Ok((txn, out)) => {
                    early_txn = Some(txn);
                    fenced.extend(out);
                }
                Err(e) => {
                    tracing::error!(error = %e, "ownership check failed; nothing in this batch is acknowledged");
                    metrics::counter!(crate::telemetry::WRITER_FAILURES).increment(1);
                    let mut custody_rows = Vec::new();
                    for j in jobs {
                        match j {
                            Job::Upload(_, reply) => {
                                let _ = reply.send(Err(UploadRefused::StorageFailed));
                            }
                            Job::Custody(row) => custody_rows.push(row),
                            j => {
                                if let Some(n) = j.notice() {
                                    let _ = n.try_send(Notice::StorageFailed);
                                }
                            }
                        }
                    }
                    self.custody_alone(custody_rows).await;
                    return;
                }
            }
        }
        let mut fix_rows = Vec::new();
        let mut refused_rows = Vec::new();
        let mut part_rows = Vec::new();
        let mut chunk_rows = Vec::new();
        let mut done = Vec::new();
        let mut notices = Vec::new();
        let mut touched = Vec::new();
        // Flushes are answered when these senders drop, at the end of this commit.
        let mut flushed = Vec::new();
        // When each stored job was queued (the ack latency it sees).
        let mut waited = Vec::new();
        // Fixes taken in this batch, so a fix resent within one batch is stored once.
        let mut fixes_in_batch = std::collections::HashSet::new();
        // Positions to drop once this batch is done: dropped at once, a later job of the same
        // alert in this batch would reload them from a database that lacks this batch's rows
        // (and number its chain items again).
        let mut forget = Vec::new();
        let mut upload_rows = UploadRows::default();
        let mut uploaded = Vec::new();
        let mut custody_rows = Vec::new();
        // Alerts of this batch whose position is not known yet (after the first batch, few).
        let wanted: HashMap<String, Option<i64>> = jobs
            .iter()
            .filter(|j| matches!(j, Job::Fixes { .. } | Job::Audio { .. }))
            .filter_map(Job::session)
            .filter(|s| !fenced.contains(s.alert_id()) && !stale(s))
            .filter(|s| self.positions.get(s.alert_id()).is_none_or(|o| o.fence != s.fence()))
            .map(|s| (s.alert_id().to_owned(), s.fence()))
            .collect();
        if let Err(e) = self.preload(wanted).await {
            tracing::warn!(error = %e, "loading new alerts' positions at once failed; one by one instead");
        }
        for job in jobs {
            if let Some(s) = job.session().filter(|s| fenced.contains(s.alert_id()) || stale(s)) {
                if fenced.contains(s.alert_id()) {
                    forget.push(s.alert_id().to_owned());
                }
                if let Some(n) = job.notice() {
                    let _ = n.try_send(Notice::Fenced);
                }
                continue;
            }
            match job {
                Job::Upload(up, reply) => {
                    if fenced.contains(&up.alert_id)
                        || up.fence.is_some_and(|f| claims.get(&up.alert_id).is_some_and(|n| f < *n))
                    {
                        let _ = reply.send(Err(UploadRefused::Fenced));
                        continue;
                    }
                    let id = up.alert_id.clone();
                    match self.upload_step(up, now, &mut part_rows, &mut chunk_rows, &mut upload_rows).await {
                        Ok(p) => {
                            touched.push(id);
                            uploaded.push((reply, p));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Job::Forget(id) => forget.push(id),
                Job::Custody(row) => custody_rows.push(row),
                Job::Flush(tx) => flushed.push(tx),
                Job::Fixes { session, fixes, notice, queued } => {
                    let id = session.alert_id().to_owned();
                    match self.new_fixes(&id, session.fence(), &fixes, &mut fixes_in_batch).await {
                        Ok(fresh) => {
                            let open = self.positions.get_mut(&id).expect("loaded by new_fixes");
                            for f in fresh {
                                let mut row = fix_row(&id, f, now);
                                (row.chain_n, row.chain_hash) =
                                    open.chain(&super::evidence::fix_record(&row));
                                open.fix_max = open.fix_max.max(row.seq);
                                fix_rows.push(fixes::ActiveModel::from(row));
                            }
                        }
                        Err(e) => {
                            tracing::error!(alert = %id, error = %e, "fix state unavailable");
                            let _ = notice.try_send(Notice::StorageFailed);
                            continue;
                        }
                    }
                    waited.push(queued);
                    touched.push(id);
                    notices.push(notice);
                    done.push(Done::Fixes(session, fixes));
                }
                Job::Refused { session, seq, reason, notice } => {
                    refused_rows.push(refused_fixes::ActiveModel {
                        alert_id: Set(session.alert_id().to_owned()),
                        seq: Set(seq as i64),
                        reason: Set(reason.chars().take(200).collect()),
                        received_at: Set(now),
                    });
                    notices.push(notice);
                    done.push(Done::Refused(session, seq));
                }
                Job::Audio { session, mime, seq, bytes, notice, queued } => {
                    let Some(mime) = mime.filter(|m| Container::from_mime(m).is_some()) else {
                        let _ = notice.try_send(Notice::NoAudioFormat);
                        continue;
                    };
                    let id = session.alert_id().to_owned();
                    let open = match self.position(&id, session.fence()).await {
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
                        None => true,
                        Some((_, _, len)) => {
                            open.stream_closed || (*len > 0 && container.starts_recording(&bytes))
                        }
                    };
                    if new_part {
                        let p = open.next_part;
                        part_rows.push(audio_parts::ActiveModel {
                            alert_id: Set(id.clone()),
                            part: Set(p as i32),
                            mime: Set(mime.clone()),
                            first_seq: Set(seq as i64),
                            created_at: Set(now),
                            uploaded_at: Set(None),
                        });
                        open.part = Some((p, mime.clone(), 0));
                        open.next_part = p + 1;
                        open.stream_closed = false;
                    }
                    let (p, _, len) = open.part.as_mut().expect("set above");
                    let mut row = audio_chunks::Model {
                        alert_id: id.clone(),
                        seq: seq as i64,
                        part: *p as i32,
                        offset: *len as i64,
                        len: bytes.len() as i32,
                        sha256: hex::encode(Sha256::digest(&bytes)),
                        received_at: now,
                        data: Some(bytes.to_vec()),
                        chain_n: None,
                        chain_hash: None,
                    };
                    *len += bytes.len() as u64;
                    let p = *p;
                    open.part_lens.entry(p).and_modify(|l| *l += bytes.len() as u64);
                    (row.chain_n, row.chain_hash) = open.chain(&super::evidence::chunk_record(&row));
                    chunk_rows.push(audio_chunks::ActiveModel::from(row));
                    open.next_seq += 1;
                    waited.push(queued);
                    touched.push(id);
                    notices.push(notice);
                    done.push(Done::Audio(session, seq, mime, bytes));
                }
            }
        }
        let rows_in_batch = fix_rows.len() + chunk_rows.len();
        let result = async {
            let t0 = std::time::Instant::now();
            let txn = match early_txn {
                Some(txn) => txn,
                None => crate::storage::write_txn(&self.db).await?,
            };
            for rows in in_groups(fix_rows) {
                // Resent fixes were left out above (each row here is a chain item): a conflict
                // would be a bug, and fails the batch rather than leave a hole in the chain.
                fixes::Entity::insert_many(rows).exec_without_returning(&txn).await?;
            }
            for rows in in_groups(refused_rows) {
                refused_fixes::Entity::insert_many(rows)
                    .on_conflict_do_nothing_on([refused_fixes::Column::AlertId, refused_fixes::Column::Seq])
                    .exec_without_returning(&txn)
                    .await?;
            }
            if !part_rows.is_empty() {
                audio_parts::Entity::insert_many(part_rows).exec_without_returning(&txn).await?;
            }
            for rows in in_groups(chunk_rows) {
                audio_chunks::Entity::insert_many(rows).exec_without_returning(&txn).await?;
            }
            upload_rows.write(&txn, now).await?;
            // Cloned: if the batch fails, they are written again on their own.
            for rows in in_groups(custody_rows.clone()) {
                custody::Entity::insert_many(rows).exec_without_returning(&txn).await?;
            }
            txn.commit().await?;
            // How long a batch takes (RUST_LOG=alertme_server::storage::writer=debug); counts and
            // durations only.
            tracing::debug!(
                rows = rows_in_batch,
                db_ms = t0.elapsed().as_secs_f64() * 1e3,
                "batch committed"
            );
            metrics::histogram!(crate::telemetry::WRITER_BATCH_ROWS).record(rows_in_batch as f64);
            metrics::histogram!(crate::telemetry::WRITER_COMMIT_SECONDS).record(t0.elapsed().as_secs_f64());
            anyhow::Ok(())
        }
        .await;
        for id in &forget {
            self.positions.remove(id);
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "commit failed; nothing in this batch is acknowledged");
            metrics::counter!(crate::telemetry::WRITER_FAILURES).increment(1);
            for id in touched {
                self.positions.remove(&id);
            }
            for id in upload_rows.places.keys() {
                self.uploads.remove(id);
            }
            for (reply, _) in uploaded {
                let _ = reply.send(Err(UploadRefused::StorageFailed));
            }
            for n in notices {
                let _ = n.try_send(Notice::StorageFailed);
            }
            self.custody_alone(custody_rows).await;
            return;
        }
        for (reply, p) in uploaded {
            let _ = reply.send(Ok(p));
        }
        let latency = metrics::histogram!(crate::telemetry::ACK_LATENCY_SECONDS);
        for q in waited {
            latency.record(q.elapsed().as_secs_f64());
        }
        for d in done {
            match d {
                Done::Fixes(s, fixes) => s.fixes_stored(&fixes),
                Done::Refused(s, seq) => s.fix_refused(seq),
                Done::Audio(s, seq, mime, bytes) if !bytes.is_empty() => s.audio_stored(seq, &mime, &bytes),
                Done::Audio(..) => {}
            }
        }
    }

    /// Writes custody entries of a batch that failed in a transaction of their own: phones
    /// resend their items, but nobody resends these (the batch may have failed for an item).
    async fn custody_alone(&self, rows: Vec<custody::ActiveModel>) {
        if rows.is_empty() {
            return;
        }
        let n = rows.len();
        let written = async {
            let txn = crate::storage::write_txn(&self.db).await?;
            for rows in in_groups(rows) {
                custody::Entity::insert_many(rows).exec_without_returning(&txn).await?;
            }
            txn.commit().await
        }
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, entries = n, "custody entries not recorded");
        }
    }

    /// Loads at once the positions of `wanted` alerts that have nothing stored yet (the
    /// others load one by one in [`Self::position`]).
    async fn preload(&mut self, wanted: HashMap<String, Option<i64>>) -> anyhow::Result<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = wanted.keys().cloned().collect();
        for a in super::evidence::fresh(&self.db, &missing).await? {
            let tip =
                super::evidence::Tip { n: 0, head: crate::chain::anchor(&super::evidence::start_record(&a)) };
            let fence = wanted.get(&a.id).copied().flatten();
            let open = OpenPart {
                next_seq: 1,
                part: None,
                fix_max: 0,
                tip,
                fence,
                next_part: 0,
                next_upload_seq: -1,
                stream_closed: false,
                part_lens: HashMap::new(),
            };
            self.positions.insert(a.id, open);
        }
        Ok(())
    }

    async fn position(&mut self, alert_id: &str, fence: Option<i64>) -> anyhow::Result<&mut OpenPart> {
        if self.positions.get(alert_id).is_none_or(|o| o.fence != fence) {
            let pos = super::recordings::audio_position(&self.db, alert_id).await?;
            let fix_max = super::evidence::max_fix_seq(&self.db, alert_id).await?;
            let tip = super::evidence::tip(&self.db, alert_id).await?;
            let open = OpenPart {
                next_seq: pos.acked + 1,
                part: pos.part,
                fix_max,
                tip,
                fence,
                next_part: pos.next_part,
                next_upload_seq: pos.next_upload_seq,
                stream_closed: pos.closed,
                part_lens: HashMap::new(),
            };
            self.positions.insert(alert_id.to_owned(), open);
        }
        Ok(self.positions.get_mut(alert_id).expect("inserted above"))
    }

    /// The fixes of a job not stored yet (resends skipped: they are in the chain already), in
    /// the order they came.
    async fn new_fixes<'f>(
        &mut self,
        alert_id: &str,
        fence: Option<i64>,
        fixes: &'f [Fix],
        in_batch: &mut std::collections::HashSet<(String, u64)>,
    ) -> anyhow::Result<Vec<&'f Fix>> {
        let fix_max = self.position(alert_id, fence).await?.fix_max;
        let maybe_stored: Vec<i64> = fixes.iter().map(|f| f.seq as i64).filter(|s| *s <= fix_max).collect();
        let stored = if maybe_stored.is_empty() {
            Default::default()
        } else {
            super::evidence::stored_fix_seqs(&self.db, alert_id, &maybe_stored).await?
        };
        Ok(fixes
            .iter()
            .filter(|f| !stored.contains(&(f.seq as i64)))
            .filter(|f| in_batch.insert((alert_id.to_owned(), f.seq)))
            .collect())
    }
}

impl Writer {
    /// Takes bytes of an upload into this batch's rows. An upload fills the part whose bytes
    /// it begins with (a recording the phone streamed, or an earlier try of the same upload):
    /// bytes that part already holds are compared, not stored again, and only what it lacks is
    /// appended. Where the upload differs from that part, it becomes a part of its own (its
    /// bytes so far, which were that part's, copied into it).
    async fn upload_step(
        &mut self,
        up: UploadBytes,
        now: i64,
        part_rows: &mut Vec<audio_parts::ActiveModel>,
        chunk_rows: &mut Vec<audio_chunks::ActiveModel>,
        rows: &mut UploadRows,
    ) -> Result<UploadProgress, UploadRefused> {
        let mut place = self.upload_place(&up.upload_id).await?;
        if place.alert_id != up.alert_id {
            return Err(UploadRefused::Unknown);
        }
        if up.offset != place.offset {
            return Err(UploadRefused::Offset(place.offset));
        }
        let end = place.offset + up.bytes.len() as u64;
        if place.length.is_some_and(|l| end > l) {
            return Err(UploadRefused::TooLong);
        }
        let failed = |e: anyhow::Error| {
            tracing::error!(alert = %up.alert_id, error = %e, "upload state unavailable");
            UploadRefused::StorageFailed
        };
        self.position(&up.alert_id, up.fence).await.map_err(failed)?;
        let db = &self.db;
        let open = self.positions.get_mut(&up.alert_id).expect("loaded above");
        let alert = up.alert_id.as_str();
        let mut target = match place.part {
            Some(p) => p,
            None => match matching_part(db, alert, open, &up.bytes).await? {
                Some(p) => p,
                None => new_upload_part(alert, &up.mime, now, open, part_rows),
            },
        };
        let mut rest = &up.bytes[..];
        let len = part_len(db, alert, target, open).await.map_err(failed)?;
        if place.offset < len {
            let n = std::cmp::min(len - place.offset, rest.len() as u64);
            let held = committed(db, alert, target, place.offset..place.offset + n).await?;
            if held == rest[..n as usize] {
                rest = &rest[n as usize..];
            } else {
                // It differs: the upload so far was `target`'s first bytes; copy them into a
                // part of its own and go on there.
                let prefix = committed(db, alert, target, 0..place.offset).await?;
                let from = target;
                target = new_upload_part(alert, &up.mime, now, open, part_rows);
                tracing::info!(
                    alert,
                    from,
                    part = target,
                    "an upload differs from the recording it began like"
                );
                append(alert, target, &prefix, now, open, chunk_rows);
            }
        }
        // Only an upload that writes past what the part held takes it over from the stream (one
        // that merely matched its first bytes may still turn out to be another recording).
        if !rest.is_empty() {
            mark(alert, target, open, rows);
        }
        let stored = rest.len() as u64;
        append(alert, target, rest, now, open, chunk_rows);
        place.offset = end;
        place.part = Some(target);
        rows.places.insert(up.upload_id.clone(), place.clone());
        self.uploads.insert(up.upload_id, place);
        Ok(UploadProgress { offset: end, part: target, stored })
    }

    /// An upload's place: as this writer left it, else as stored.
    async fn upload_place(&mut self, id: &str) -> Result<UploadPos, UploadRefused> {
        if let Some(p) = self.uploads.get(id) {
            return Ok(p.clone());
        }
        let row = uploads::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading an upload failed");
                UploadRefused::StorageFailed
            })?
            .ok_or(UploadRefused::Unknown)?;
        Ok(UploadPos {
            alert_id: row.alert_id,
            offset: row.offset as u64,
            length: row.length.map(|l| l as u64),
            part: row.part.map(|p| p as u16),
        })
    }
}

/// The first stored part of the alert whose bytes `first` (an upload's first bytes) begin
/// like, if any.
async fn matching_part(
    db: &DatabaseConnection,
    alert: &str,
    open: &mut OpenPart,
    first: &[u8],
) -> Result<Option<u16>, UploadRefused> {
    for p in 0..open.next_part {
        let len = part_len(db, alert, p, open).await.map_err(|e| {
            tracing::error!(alert, error = %e, "reading a part's length failed");
            UploadRefused::StorageFailed
        })?;
        if len == 0 {
            continue;
        }
        let n = std::cmp::min(len, first.len() as u64);
        // Busy (the stream wrote into it in this batch) is passed on: a wrong "no match"
        // would store the recording twice.
        if committed(db, alert, p, 0..n).await? == first[..n as usize] {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// A new part for an upload's bytes.
fn new_upload_part(
    alert: &str,
    mime: &str,
    now: i64,
    open: &mut OpenPart,
    part_rows: &mut Vec<audio_parts::ActiveModel>,
) -> u16 {
    let p = open.next_part;
    open.next_part += 1;
    open.part_lens.insert(p, 0);
    part_rows.push(audio_parts::ActiveModel {
        alert_id: Set(alert.to_owned()),
        part: Set(p as i32),
        mime: Set(mime.to_owned()),
        first_seq: Set(open.next_upload_seq),
        created_at: Set(now),
        uploaded_at: Set(Some(now)),
    });
    p
}

/// Notes that an upload writes into part `p`: the stream no longer continues it.
fn mark(alert: &str, p: u16, open: &mut OpenPart, rows: &mut UploadRows) {
    if open.part.as_ref().is_some_and(|(cur, _, _)| *cur == p) {
        open.stream_closed = true;
    }
    rows.marked.push((alert.to_owned(), p));
}

/// A part's length as stored plus this batch.
async fn part_len(db: &DatabaseConnection, alert: &str, p: u16, open: &mut OpenPart) -> anyhow::Result<u64> {
    if let Some(l) = open.part_lens.get(&p) {
        return Ok(*l);
    }
    let l = match &open.part {
        // The stream's own part, while only the stream writes it: its length as the stream
        // left it (this batch included).
        Some((cur, _, len)) if *cur == p && !open.stream_closed => *len,
        _ => super::recordings::part_end(db, alert, p).await?,
    };
    open.part_lens.insert(p, l);
    Ok(l)
}

/// Committed bytes `range` of a part; [`UploadRefused::Busy`] when the database does not
/// hold them all yet (this batch wrote them).
async fn committed(
    db: &DatabaseConnection,
    alert: &str,
    p: u16,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, UploadRefused> {
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let want = range.end - range.start;
    let bytes = super::recordings::read_part(db, alert, p, range).await.map_err(|e| {
        tracing::error!(alert, part = p, error = %e, "reading a part for an upload failed");
        UploadRefused::StorageFailed
    })?;
    if bytes.len() as u64 != want {
        return Err(UploadRefused::Busy);
    }
    Ok(bytes)
}

/// Appends `bytes` to part `p` (its length known to [`part_len`]) as uploaded chunk rows,
/// each extending the chain.
fn append(
    alert: &str,
    p: u16,
    bytes: &[u8],
    now: i64,
    open: &mut OpenPart,
    chunk_rows: &mut Vec<audio_chunks::ActiveModel>,
) {
    for piece in bytes.chunks(UPLOAD_CHUNK_BYTES) {
        let len = open.part_lens.entry(p).or_insert(0);
        let at = *len;
        *len += piece.len() as u64;
        let mut row = audio_chunks::Model {
            alert_id: alert.to_owned(),
            seq: open.next_upload_seq,
            part: p as i32,
            offset: at as i64,
            len: piece.len() as i32,
            sha256: hex::encode(Sha256::digest(piece)),
            received_at: now,
            data: Some(piece.to_vec()),
            chain_n: None,
            chain_hash: None,
        };
        open.next_upload_seq -= 1;
        (row.chain_n, row.chain_hash) = open.chain(&super::evidence::chunk_record(&row));
        chunk_rows.push(audio_chunks::ActiveModel::from(row));
    }
}

impl UploadRows {
    /// Writes the marks and the uploads' places (in the batch's transaction).
    async fn write<C: sea_orm::ConnectionTrait>(&self, txn: &C, now: i64) -> Result<(), sea_orm::DbErr> {
        use sea_orm::{ColumnTrait, QueryFilter};
        for (alert, p) in &self.marked {
            audio_parts::Entity::update_many()
                .col_expr(audio_parts::Column::UploadedAt, sea_orm::sea_query::Expr::value(now))
                .filter(audio_parts::Column::AlertId.eq(alert.as_str()))
                .filter(audio_parts::Column::Part.eq(*p as i32))
                .filter(audio_parts::Column::UploadedAt.is_null())
                .exec(txn)
                .await?;
        }
        for (id, place) in &self.places {
            let done = place.length.is_some_and(|l| l == place.offset);
            let mut update = uploads::Entity::update_many()
                .col_expr(uploads::Column::Offset, sea_orm::sea_query::Expr::value(place.offset as i64))
                .col_expr(uploads::Column::Part, sea_orm::sea_query::Expr::value(place.part.map(i32::from)));
            if done {
                update = update.col_expr(uploads::Column::CompletedAt, sea_orm::sea_query::Expr::value(now));
            }
            update.filter(uploads::Column::Id.eq(id.as_str())).exec(txn).await?;
        }
        Ok(())
    }
}

/// Rows in groups of at most [`ROWS_PER_INSERT`], moved rather than copied (chunk rows carry
/// their audio bytes).
fn in_groups<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || rows.peek().is_some().then(|| rows.by_ref().take(ROWS_PER_INSERT).collect()))
}

/// A fix's row (not yet chained).
pub fn fix_row(alert_id: &str, f: &Fix, now: i64) -> fixes::Model {
    fixes::Model {
        alert_id: alert_id.to_owned(),
        seq: f.seq as i64,
        lat: f.lat,
        lon: f.lon,
        accuracy_m: f.accuracy_m,
        device_time: f.time_ms,
        battery_pct: f.battery_pct.map(i16::from),
        speed_mps: f.speed_mps,
        heading_deg: f.heading_deg,
        altitude_m: f.altitude_m,
        received_at: now,
        chain_n: None,
        chain_hash: None,
    }
}

impl OpenPart {
    /// Extends the alert's chain by one item (canonical record `c`): its place and hash.
    fn chain(&mut self, c: &str) -> (Option<i64>, Option<String>) {
        self.tip.n += 1;
        self.tip.head = crate::chain::link(&self.tip.head, c);
        (Some(self.tip.n), Some(crate::chain::hex(&self.tip.head)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, PaginatorTrait, QueryOrder};

    use crate::storage::entity::{alerts, users};

    #[test]
    fn a_waiting_fix_shortens_the_beat_but_never_past_the_writers_own_time() {
        let ms = std::time::Duration::from_millis;
        let t0 = tokio::time::Instant::now();
        // A 2 ms commit: media waits for the beat, a fix only for the spacing.
        let quick = Pace { last: Some((t0, t0 + ms(2))) };
        assert_eq!(quick.due(false), t0 + COMMIT_EVERY);
        assert_eq!(quick.due(true), t0 + FIX_SPACING);
        // A 10 ms commit: the writer rests as long as it worked.
        let slow = Pace { last: Some((t0, t0 + ms(10))) };
        assert_eq!(slow.due(true), t0 + ms(20));
        // A commit as long as the beat (load): fixes change nothing.
        let loaded = Pace { last: Some((t0, t0 + ms(20))) };
        assert_eq!(loaded.due(true), t0 + COMMIT_EVERY);
    }

    /// A session that only counts what was stored.
    struct Probe(String);

    impl Committed for Probe {
        fn alert_id(&self) -> &str {
            &self.0
        }
        fn fixes_stored(&self, _: &[Fix]) {}
        fn fix_refused(&self, _: u64) {}
        fn audio_stored(&self, _: u64, _: &str, _: &[u8]) {}
        fn fence(&self) -> Option<i64> {
            None
        }
    }

    fn fix(seq: u64) -> Fix {
        Fix {
            seq,
            lat: 52.5,
            lon: 13.4,
            accuracy_m: 5.0,
            time_ms: seq as i64,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        }
    }

    /// A fresh SQLite database holding user "u" and their active alert "a".
    async fn with_alert() -> (std::path::PathBuf, String, DatabaseConnection) {
        let dir = std::env::temp_dir().join(format!("alertme-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let db = crate::storage::connect(&url).await.unwrap();
        users::ActiveModel {
            id: Set("u".into()),
            name: Set("U".into()),
            phone: Set("+4915112345678".into()),
            created_at: Set(0),
            language: Set("en".into()),
            erased_at: Set(None),
        }
        .insert(&db)
        .await
        .unwrap();
        alerts::ActiveModel {
            id: Set("a".into()),
            user_id: Set("u".into()),
            device_id: Set("d".into()),
            client_id: Set("c".into()),
            status: Set("active".into()),
            started_at: Set(0),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        (dir, url, db)
    }

    /// An alert's end (`forget`) queued between its items in one batch, as a phone socket that
    /// has not yet heard of the end keeps sending: the chain still numbers every item once, in
    /// order (the position is dropped after the batch, not reloaded in the middle of it).
    #[tokio::test]
    async fn an_end_inside_a_batch_numbers_the_chain_once() {
        let (dir, url, db) = with_alert().await;
        let store = Store::start(&url, None, None).await.unwrap();
        let probe: Arc<dyn Committed> = Arc::new(Probe("a".into()));
        let (notice, _notices) = mpsc::channel(16);
        store.fixes(probe.clone(), vec![fix(1)], notice.clone()).await;
        store.flush().await;
        // Queued while the writer waits for its next batch: one batch.
        store.fixes(probe.clone(), vec![fix(2)], notice.clone()).await;
        store.forget("a").await;
        store.fixes(probe.clone(), vec![fix(3)], notice.clone()).await;
        store.forget("a").await;
        store.fixes(probe.clone(), vec![fix(2), fix(4)], notice.clone()).await;
        store.flush().await;
        let rows = fixes::Entity::find().order_by_asc(fixes::Column::ChainN).all(&db).await.unwrap();
        let chain: Vec<(i64, Option<i64>)> = rows.iter().map(|r| (r.seq, r.chain_n)).collect();
        assert_eq!(chain, vec![(1, Some(1)), (2, Some(2)), (3, Some(3)), (4, Some(4))]);
        let mut h = crate::chain::anchor(&super::super::evidence::start_record(
            &alerts::Entity::find_by_id("a".to_owned()).one(&db).await.unwrap().unwrap(),
        ));
        for r in &rows {
            h = crate::chain::link(&h, &super::super::evidence::fix_record(r));
            assert_eq!(r.chain_hash.as_deref(), Some(crate::chain::hex(&h).as_str()), "fix {}", r.seq);
        }
        std::fs::remove_dir_all(dir).ok();
    }

    /// A custody entry of alert "a" (as `custody::record_soon` makes them).
    fn entry(action: &str, at: i64) -> custody::ActiveModel {
        custody::ActiveModel {
            id: Default::default(),
            alert_id: Set("a".into()),
            at: Set(at),
            action: Set(action.into()),
            who: Set("link:device".into()),
            addr_hash: Set(None),
            detail: Set(None),
        }
    }

    /// Custody entries queued faster than the writer takes them (more than its queue holds):
    /// the ones that find the queue full wait for room, and every one is committed.
    #[tokio::test]
    async fn custody_entries_beyond_the_queue_all_commit() {
        let (dir, url, db) = with_alert().await;
        let store = Store::start(&url, None, None).await.unwrap();
        // The database's write lock held elsewhere: the writer stops at its first commit, so
        // its queue fills (it holds at most one batch besides).
        let hold = crate::storage::write_txn(&db).await.unwrap();
        let n = QUEUE_CAPACITY + MAX_BATCH + 100;
        for i in 0..n {
            store.custody(entry("watch_opened", i as i64));
        }
        assert!(!store.spilled.is_empty(), "some entries found the queue full and waited for room");
        drop(hold);
        // A flush waits for the entries that waited for room, then for their commit.
        store.flush().await;
        assert_eq!(custody::Entity::find().count(&db).await.unwrap() as usize, n);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A batch that fails (here a fix the database already holds, which the writer did not
    /// know of) still records its custody entries, in a transaction of their own: phones
    /// resend their items, nobody resends those.
    #[tokio::test]
    async fn custody_entries_of_a_failed_batch_are_still_recorded() {
        let (dir, url, db) = with_alert().await;
        let store = Store::start(&url, None, None).await.unwrap();
        let probe: Arc<dyn Committed> = Arc::new(Probe("a".into()));
        let (notice, mut notices) = mpsc::channel(16);
        store.fixes(probe.clone(), vec![fix(1)], notice.clone()).await;
        store.flush().await;
        fixes::ActiveModel::from(fix_row("a", &fix(2), 0)).insert(&db).await.unwrap();
        // Queued while the writer waits for its next beat: one batch.
        store.custody(entry("watch_closed", 1));
        store.fixes(probe.clone(), vec![fix(2)], notice.clone()).await;
        store.flush().await;
        assert_eq!(notices.try_recv().ok(), Some(Notice::StorageFailed), "the batch failed");
        let logged = custody::Entity::find().all(&db).await.unwrap();
        assert_eq!(logged.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["watch_closed"]);
        std::fs::remove_dir_all(dir).ok();
    }

    /// The writer checkpoints SQLite's WAL itself, between its commits: while commits keep
    /// coming, the WAL starts over from its beginning (SQLite counts those restarts in the WAL's
    /// header). Nothing else checkpoints here, so without the writer's it would only grow.
    #[tokio::test]
    async fn the_wal_starts_over_while_commits_keep_coming() {
        let (dir, url, _db) = with_alert().await;
        let store = Store::start(&url, None, None).await.unwrap();
        let started = std::time::Instant::now();
        let mut at = 0;
        while started.elapsed()
            < super::super::wal::CHECKPOINT_EVERY * 2 + std::time::Duration::from_millis(200)
        {
            at += 1;
            store.custody(entry("watch_opened", at));
            store.flush().await;
        }
        let header = std::fs::read(dir.join("t.db-wal")).unwrap();
        // Bytes 12-15: the checkpoint sequence number, raised each time the WAL starts over.
        let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
        assert!(restarts >= 1, "the WAL never started over in {at} commits");
        std::fs::remove_dir_all(dir).ok();
    }

    /// A single server's writer thread and the SQLite threads it started run below the
    /// sockets' priority (`storage::priority` tests the mechanism itself).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_yields_to_the_sockets() {
        use super::super::priority::tests::{nice_of, this_thread};
        use super::super::priority::WRITER_NICE_STEP;
        let want = (nice_of(this_thread()).unwrap() + WRITER_NICE_STEP).min(19);
        let (dir, url, _db) = with_alert().await;
        let store = Store::start(&url, None, None).await.unwrap();
        store.custody(entry("watch_opened", 1));
        store.flush().await;
        // Other tests' writers start and end beside this one: count the threads that run
        // lowered, by name (one just started may not have lowered itself yet).
        let (mut writers, mut sqlite) = (0, 0);
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if nice_of(tid) != Some(want) {
                continue;
            }
            match comm.trim_end() {
                "alertme-writer" => writers += 1,
                c if c.starts_with("sqlx-sqlite") => sqlite += 1,
                _ => {}
            }
        }
        assert!(writers >= 1, "no writer thread runs at nice {want}");
        assert!(sqlite >= 1, "no SQLite thread of the writer's runs at nice {want}");
        std::fs::remove_dir_all(dir).ok();
    }
}
