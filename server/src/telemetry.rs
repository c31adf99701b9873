//! Prometheus metrics: the recorder, the names recorded across the server, and what `/metrics`
//! answers. Labels are fixed sets (socket kinds, close codes, error codes, outbox statuses):
//! never a token, a phone number, an alert id or a position.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open sockets by kind (`phone`, `watch`, `responder`).
pub const SOCKETS: &str = "alertme_sockets";
/// Active alerts held live by this server.
pub const LIVE_ALERTS: &str = "alertme_live_alerts";
/// Frames written to watchers (events and audio units).
pub const FRAMES_RELAYED: &str = "alertme_frames_relayed_total";
/// Rows per durable-writer commit.
pub const WRITER_BATCH_ROWS: &str = "alertme_writer_batch_rows";
/// Durable-writer commit time.
pub const WRITER_COMMIT_SECONDS: &str = "alertme_writer_commit_seconds";
/// From a phone's fix or audio chunk reaching the writer's queue to its commit (its ack follows).
pub const ACK_LATENCY_SECONDS: &str = "alertme_ack_latency_seconds";
/// SQLite: time the durable writer spent copying its WAL into the database (it commits
/// nothing meanwhile, so acks wait this long once a second).
pub const WAL_CHECKPOINT_SECONDS: &str = "alertme_wal_checkpoint_seconds";
/// SQLite: checkpoints that could not copy the whole WAL (a reader held older pages, or the
/// database was busy); while they keep failing, the WAL grows.
pub const WAL_CHECKPOINTS_INCOMPLETE: &str = "alertme_wal_checkpoints_incomplete_total";
/// Writer commits that failed (phones are told 4503 and resend).
pub const WRITER_FAILURES: &str = "alertme_writer_failures_total";
/// Texts in the outbox by status.
pub const OUTBOX: &str = "alertme_sms_outbox";
/// HTTP answers with an error, by error code.
pub const HTTP_ERRORS: &str = "alertme_http_errors_total";
/// Sockets closed by the server, by close code.
pub const SOCKET_CLOSES: &str = "alertme_socket_closes_total";
/// Always 1, labelled with this server's node id (`node`) and mode (`mode`: single, cluster).
pub const NODE_INFO: &str = "alertme_node_info";
/// Cluster: events and updates not handed to NATS because its queue was full (other nodes'
/// mirrors resync).
pub const CLUSTER_DROPPED: &str = "alertme_cluster_dropped_total";
/// Cluster: mirrors started over from a new snapshot after a gap in their feed.
pub const CLUSTER_RESYNCS: &str = "alertme_cluster_mirror_resyncs_total";
/// Cluster: alerts this node took over (from a phone that moved here, or an owner gone silent).
pub const CLUSTER_TAKEOVERS: &str = "alertme_cluster_takeovers_total";

/// Installs the process-wide recorder and returns the handle that renders it. Installing twice
/// (two servers in one process) keeps the first recorder; both handles render.
pub fn install() -> PrometheusHandle {
    // One recorder per process: servers started in-process (tests) share it.
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(build).clone()
}

fn build() -> PrometheusHandle {
    let seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let rows = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WRITER_BATCH_ROWS.into()), &rows))
        .expect("bucket lists are not empty")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder was installed already");
    }
    handle
}

/// How often histogram samples are folded into their buckets: until then the exporter keeps
/// every recorded sample, so without this its memory would grow with every ack.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded samples, every [`UPKEEP_EVERY`], for as long as the server runs.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// [`FRAMES_RELAYED`], looked up once: it is counted on every write to every watcher.
pub fn frames_relayed() -> &'static metrics::Counter {
    static COUNTER: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    COUNTER.get_or_init(|| metrics::counter!(FRAMES_RELAYED))
}

/// Counts an open socket of one kind for as long as it lives.
pub struct OpenSocket(&'static str);

impl OpenSocket {
    /// A socket of `kind` opened.
    pub fn open(kind: &'static str) -> Self {
        metrics::gauge!(SOCKETS, "kind" => kind).increment(1.0);
        Self(kind)
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        metrics::gauge!(SOCKETS, "kind" => self.0).decrement(1.0);
    }
}
