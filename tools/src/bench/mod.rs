//! `alertme-tools bench SCENARIO`: a load generator that drives real phones and watchers over the real
//! protocol against a server it starts on loopback (and, for comparison, a Node.js `ws`
//! broadcast hub doing the same fan-out), and reports throughput, latency, CPU and memory.
//!
//! Latency is measured from timestamps in the payload: a fix's `time_ms` and the first bytes
//! after an audio frame's ADTS header carry microseconds since the run started.

mod pin;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertme_protocol::audio::{encode_phone_chunk, WatchHeader, PHONE_HEADER_LEN};
use alertme_protocol::{Fix, PhoneMsg, PhoneServerMsg, WatchMsg};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use pin::Pinning;
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// SOS sessions × watchers: each phone 1 fix/s and 24 kbit/s audio in 200 ms chunks.
    Fanout,
    /// Few sessions with many watchers each (defaults 200 × 50).
    Wide,
    /// Many idle watcher sockets: memory per socket.
    Idle,
    /// Many phones streaming with durable acks: ack latency.
    Ingest,
    /// Phones and watchers streaming; the server is SIGKILLed and restarted: everyone reconnects
    /// at once and resumes. With `--nodes`, node n0 is SIGKILLed and stays down: its phones and
    /// watchers move to the other nodes (failover). Time to resume, and nothing acknowledged lost.
    Storm,
}

/// Options of `alertme-tools bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// SOS sessions (phones).
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Watchers per session.
    #[arg(long)]
    pub watchers: Option<usize>,
    /// Idle sockets (idle scenario).
    #[arg(long, default_value_t = 2000)]
    pub sockets: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Also drive the Node.js `ws` peer (bench/peers/ws-hub.js) and report ratios.
    #[arg(long)]
    pub peer: bool,
    /// Database for the server under test (default: a fresh SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Do not pin the server and the generator to different cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Run this `alertme` binary as the server under test (default: the `alertme` next to this
    /// program), e.g. a build of the previous commit, to compare before and after with the same
    /// generator.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Run AlertMe as a cluster of this many nodes (on `--database-url postgres://…` and NATS):
    /// phone i connects to node i mod N, its watchers to the nodes after it in turn, so most
    /// frames cross NATS. Server CPU is the nodes' together; NATS's own is reported apart.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// NATS server of the cluster (`--nodes` above 1).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Log filter for the server under test, its log going to this command's stderr (default:
    /// errors only, discarded), e.g. `alertme_server::storage::writer=debug` for the writer's batch timing.
    #[arg(long)]
    pub server_log: Option<String>,
}

/// Results of one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `alertme` or `node-ws`.
    pub target: String,
    /// Frames delivered to watchers per second.
    pub delivered_per_s: f64,
    /// End-to-end latency percentiles, µs.
    pub latency_us: Percentiles,
    /// Server CPU time per delivered frame, µs.
    pub cpu_us_per_frame: f64,
    /// Server CPU time in the measured window, % of one core (with `--watchers 0` it is what
    /// taking in the phones costs alone, so the fan-out's own share can be told apart).
    pub cpu_pct: f64,
    /// Server resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Extra resident memory per idle socket, bytes (idle scenario).
    pub idle_bytes_per_socket: Option<f64>,
    /// Phone → ack latency percentiles, µs (ingest).
    pub ack_us: Option<Percentiles>,
    /// Fixes a watcher never got.
    pub lost: u64,
    /// Fixes a watcher got twice.
    pub duplicates: u64,
    /// Machine load average (1 min) at the end; > cores means a noisy run.
    pub load_avg: f64,
    /// Where the server and the generator ran (`None`: not pinned).
    pub pinned: Option<String>,
    /// Storm: ms from the restarted server listening (a cluster: from the kill of one node)
    /// until every phone that lost its socket resumed its alert.
    pub phones_resumed_ms: Option<u64>,
    /// Storm: ms until every watcher that lost its socket had its alert again (resumed, or a
    /// fresh snapshot).
    pub watchers_back_ms: Option<u64>,
    /// Storm: watchers that came back resumed from their event / started over with a snapshot.
    pub watchers_resumed: u64,
    pub watchers_resynced: u64,
    /// Storm: phones and watchers whose socket was cut (all on one node; n0's in a cluster).
    pub phones_hit: u64,
    pub watchers_hit: u64,
    /// Cluster runs: nodes.
    pub nodes: usize,
    /// Cluster runs: the NATS server's CPU per delivered frame, µs (not in `cpu_us_per_frame`).
    pub nats_cpu_us_per_frame: Option<f64>,
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// Samples.
    pub n: usize,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), n: v.len() }
}

/// Raises the open-files limit to the hard limit: the idle scenario opens thousands of sockets.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// CPU time (user + system) of a process, µs, from /proc.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000 / hz
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Which of `nodes` nodes session `i` (or its watcher `j`) uses: phones in turn, each one's
/// watchers on the nodes after it, so that most frames cross nodes.
fn node_for(nodes: usize, i: usize, watcher: Option<usize>) -> usize {
    let n = nodes.max(1);
    match watcher {
        None => i % n,
        Some(j) => (i + 1 + j) % n,
    }
}

/// A process under test, killed on drop.
struct Target {
    child: Child,
    /// Further cluster nodes (the first is `child`), and every node's socket base.
    others: Vec<Child>,
    bases: Vec<String>,
    /// How to start it again on the same port (storm).
    restart: Option<Command>,
    base: String,
    name: &'static str,
    /// Device tokens (alertme) or room names (peer), one per session.
    phones: Vec<String>,
    dir: Option<PathBuf>,
    /// A cluster's NATS server and stream, deleted at the end (the nodes would leave it behind).
    stream: Option<(String, String)>,
}

impl Target {
    /// Socket base of the node that session `i` (or its watcher `j`) uses.
    fn base_for(&self, i: usize, watcher: Option<usize>) -> &str {
        self.bases.get(node_for(self.bases.len(), i, watcher)).map_or(self.base.as_str(), String::as_str)
    }

    /// CPU µs and resident KiB of every node together.
    fn usage(&self) -> (u64, u64) {
        let pids = std::iter::once(self.child.id()).chain(self.others.iter().map(Child::id));
        pids.fold((0, 0), |(c, r), pid| (c + cpu_us(pid), r + rss_kib(pid)))
    }
}

/// The local NATS server's pid, for its share of the CPU.
fn nats_pid() -> Option<u32> {
    let out = Command::new("pgrep").args(["-x", "nats-server"]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.lines().next()?.trim().parse().ok()
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some((url, stream)) = self.stream.take() {
            // Its own thread and runtime: this may run inside the bench's runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    let client = async_nats::connect(url).await.ok()?;
                    async_nats::jetstream::new(client).delete_stream(stream).await.ok()
                })
            })
            .join();
        }
    }
}

fn wait_line(child: &mut Child, prefix: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let prefix = prefix.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = l.strip_prefix(&prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).context("process did not start")
}

fn start_alertme(args: &BenchArgs, sessions: usize, pin: Option<&Pinning>) -> anyhow::Result<Target> {
    let exe = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("alertme"),
    };
    let dir = std::env::temp_dir().join(format!("alertme-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()));
    // Accounts first, through the same code as `alertme user add`.
    let mut phones = Vec::new();
    let rt_phones = sessions;
    let out = Command::new(&exe)
        .args(["bench-users", "--count", &rt_phones.to_string(), "--database-url", &url, "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "error")
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("creating bench users failed");
    }
    phones.extend(String::from_utf8(out.stdout)?.lines().map(str::to_owned));
    if args.nodes > 1 && !url.starts_with("postgres") {
        bail!("--nodes {} needs --database-url postgres://… (a cluster shares one PostgreSQL)", args.nodes);
    }
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // A cluster's nodes sign evidence with one key.
    let signing_key = hex_key();
    let serve_node = |bind: &str, node: usize| {
        let mut c = Command::new(&exe);
        c.args(["serve", "--bind", bind, "--database-url", &url, "--data-dir"])
            .arg(&dir)
            .args(["--heartbeat-ms", "60000", "--phone-silence-ms", "600000", "--static-dir", "/nonexistent"])
            .env("RUST_LOG", args.server_log.as_deref().unwrap_or("error"))
            // Every simulated client comes from 127.0.0.1 (an environment variable, so that
            // `--server-bin` can run builds that predate the setting).
            .env("ALERTME_MAX_CONNS_PER_ADDRESS", "0")
            // Idle watchers pinged as rarely as the 60 s heartbeat, as before the stall rule.
            .env("ALERTME_WATCHER_STALL_MS", "180000")
            .stdout(Stdio::piped())
            .stderr(if args.server_log.is_some() { Stdio::inherit() } else { Stdio::null() });
        if args.nodes > 1 {
            c.args([
                "--nats-url",
                &args.nats_url,
                "--nats-prefix",
                &prefix,
                "--node-id",
                &format!("n{node}"),
            ]);
            c.env("ALERTME_SIGNING_KEY", &signing_key);
        }
        if let Some(p) = pin {
            pin::pin_command(&mut c, &p.server);
        }
        c
    };
    let mut child = serve_node("127.0.0.1:0", 0).spawn()?;
    let addr = wait_line(&mut child, "AlertMe is running on http://")?;
    // For attaching a profiler: `perf record -g -p PID`.
    println!("server under test: pid {} on {addr}", child.id());
    let restart = Some(serve_node(&addr, 0));
    let mut bases = vec![format!("ws://{addr}")];
    let mut others = Vec::new();
    for node in 1..args.nodes.max(1) {
        let mut c = serve_node("127.0.0.1:0", node).spawn()?;
        let a = wait_line(&mut c, "AlertMe is running on http://")?;
        println!("cluster node n{node}: pid {} on {a}", c.id());
        bases.push(format!("ws://{a}"));
        others.push(c);
    }
    Ok(Target {
        child,
        others,
        base: bases[0].clone(),
        bases,
        restart,
        name: "alertme",
        phones,
        dir: Some(dir),
        stream: (args.nodes > 1).then(|| (args.nats_url.clone(), format!("{prefix}_events"))),
    })
}

fn start_peer(sessions: usize, pin: Option<&Pinning>) -> anyhow::Result<Target> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/peers/ws-hub.js");
    let mut cmd = Command::new("node");
    if let Some(p) = pin {
        pin::pin_command(&mut cmd, &p.server);
    }
    let mut child = cmd
        .arg(&script)
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running node (install Node.js, then `npm install` in bench/peers)")?;
    let port = wait_line(&mut child, "peer listening on ")?;
    Ok(Target {
        child,
        others: Vec::new(),
        bases: Vec::new(),
        restart: None,
        base: format!("ws://127.0.0.1:{port}"),
        name: "node-ws",
        phones: (0..sessions).map(|i| format!("room{i}")).collect(),
        dir: None,
        stream: None,
    })
}

/// A random 32-byte key, hex (for the nodes' ALERTME_SIGNING_KEY).
fn hex_key() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

/// Time for watchers to join after every phone started, before anyone streams.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Phones start streaming spread evenly over this span (one fix period), each at its own phase.
const PHASES: Duration = Duration::from_secs(1);

/// And this long after the last phone sent its first chunk: a stream's first ADTS frame is
/// relayed only once the next one confirms the sync (one chunk later), a start-up cost, not
/// steady streaming.
const SETTLE: Duration = Duration::from_millis(300);

/// Microseconds since the run's epoch.
fn us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// One synthetic ADTS frame carrying a timestamp (valid header, so the hub relays it whole).
fn adts_frame(t_us: u64, len: usize) -> Vec<u8> {
    let len = len.clamp(16, 8191);
    let mut f = vec![0u8; len];
    f[0] = 0xFF;
    f[1] = 0xF1; // MPEG-4, layer 0, no CRC
    f[2] = (1 << 6) | (4 << 2); // AAC LC, 44.1 kHz
    f[3] = (1 << 6) | ((len >> 11) & 0x03) as u8; // mono
    f[4] = ((len >> 3) & 0xFF) as u8;
    f[5] = (((len & 0x07) << 5) | 0x1F) as u8;
    f[6] = 0xFC;
    f[7..15].copy_from_slice(&t_us.to_be_bytes());
    f
}

struct Shared {
    epoch: Instant,
    latencies: Mutex<Vec<u64>>,
    acks: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    measuring: std::sync::atomic::AtomicBool,
    /// Per session: each watcher's set of fixes seen, and fixes it got twice as live events.
    seen: Mutex<Vec<Vec<(std::collections::HashSet<u32>, u64)>>>,
    /// Highest fix seq each phone sent.
    sent: Mutex<Vec<u64>>,
    /// Phones that sent their first chunk or ended before it: the measured window opens only
    /// after all of them.
    started: AtomicU64,
}

/// Counts a phone in [`Shared::started`] once: when it sent its first chunk, or when it ends
/// without having sent one (so the window never waits for a phone that failed).
struct StartMark {
    shared: Arc<Shared>,
    counted: bool,
}

impl StartMark {
    fn count(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.shared.started.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for StartMark {
    fn drop(&mut self) {
        self.count();
    }
}

async fn connect(
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut req = url.into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse()?);
    }
    Ok(tokio_tungstenite::connect_async_with_config(req, Some(alertme_client::socket_config()), true)
        .await?
        .0)
}

/// When the measured run ends: sent once every phone started and every watcher joined, so the
/// start-up burst (1,000 alerts created at once) is not measured as streaming.
type Go = tokio::sync::watch::Receiver<Option<Instant>>;

async fn go_time(mut go: Go) -> Instant {
    loop {
        if let Some(t) = *go.borrow_and_update() {
            return t;
        }
        if go.changed().await.is_err() {
            return Instant::now();
        }
    }
}

/// A phone: starts its alert (alertme) and streams fixes and audio until the run's end.
async fn phone(
    target_base: String,
    alertme: bool,
    id: String,
    session: usize,
    shared: Arc<Shared>,
    go: Go,
    phase: Duration,
    watch_tx: tokio::sync::oneshot::Sender<String>,
) -> anyhow::Result<()> {
    let url =
        if alertme { format!("{target_base}/v1/phone") } else { format!("{target_base}/v1/phone?room={id}") };
    let mut mark = StartMark { shared: shared.clone(), counted: false };
    let mut ws = connect(&url, alertme.then_some(id.as_str())).await?;
    let mut sent_at = std::collections::HashMap::new();
    if alertme {
        ws.next().await; // welcome
        let start = PhoneMsg::Start {
            client_id: format!("bench-{session}"),
            audio_mime: Some("audio/aac".into()),
            pressed_at_ms: None,
        };
        ws.send(Message::Text(serde_json::to_string(&start)?.into())).await?;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { bail!("no started") };
            if let Ok(PhoneServerMsg::Started { watch_url, .. }) = serde_json::from_str(t.as_str()) {
                let _ = watch_tx.send(watch_url.rsplit('/').next().unwrap_or_default().to_owned());
                break;
            }
        }
    } else {
        let _ = watch_tx.send(id.clone());
    }
    let stop = go_time(go).await;
    // Give watchers time to join, then start at this phone's own phase: real phones are not
    // in lockstep, and 1,000 phones sending in the same millisecond would measure the burst,
    // not the hub.
    tokio::time::sleep(WARM_UP + phase).await;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let (mut fix_seq, mut audio_seq, mut n) = (0u64, 0u64, 0u64);
    while Instant::now() < stop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                audio_seq += 1;
                // 24 kbit/s in 200 ms chunks: 600 bytes.
                let chunk = encode_phone_chunk(audio_seq, &adts_frame(us(shared.epoch), 600));
                ws.send(Message::Binary(chunk.into())).await?;
                mark.count();
                if n % 5 == 0 {
                    fix_seq += 1;
                    shared.sent.lock().unwrap()[session] = fix_seq;
                    let t = us(shared.epoch);
                    sent_at.insert(fix_seq, t);
                    let fix = Fix { seq: fix_seq, lat: 52.5, lon: 13.4, accuracy_m: 5.0, time_ms: t as i64, battery_pct: None, speed_mps: None, heading_deg: None, altitude_m: None };
                    ws.send(Message::Text(serde_json::to_string(&PhoneMsg::Fix { fixes: vec![fix] })?.into())).await?;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => on_ack(t.as_str(), &mut sent_at, &shared),
                Some(Ok(_)) => {}
                _ => bail!("the server closed the phone's socket"),
            }
        }
    }
    // Like a real phone, keep the socket until every fix sent is acknowledged (at most 10 s),
    // then close it properly: dropping it with acks unread would make the kernel reset the
    // connection and discard what the server had not read yet.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while alertme && !sent_at.is_empty() {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => on_ack(t.as_str(), &mut sent_at, &shared),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let _ = ws.close(None).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, ws.next()).await {}
    Ok(())
}

/// Records the latency of every fix a cumulative ack newly covers.
fn on_ack(text: &str, sent_at: &mut std::collections::HashMap<u64, u64>, shared: &Shared) {
    if let Ok(PhoneServerMsg::Ack { acks }) = serde_json::from_str(text) {
        let now = us(shared.epoch);
        let mut a = shared.acks.lock().unwrap();
        sent_at.retain(|s, at| {
            if *s <= acks.fix {
                a.push(now - *at);
                false
            } else {
                true
            }
        });
    }
}

/// A watcher: counts what arrives and measures latency from the payload timestamps.
async fn watcher(
    url: String,
    session: usize,
    shared: Arc<Shared>,
    go: Go,
    joined: tokio::sync::mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut ws = connect(&url, None).await?;
    let _ = joined.send(());
    let stop = go_time(go).await;
    // Read until the phone's every fix arrived, at least 2 s after the phones stop and at most
    // 10 s: a fix that comes late is slow, not lost (its latency is counted).
    let soft = tokio::time::Instant::from_std(stop + Duration::from_secs(2));
    let hard = tokio::time::Instant::from_std(stop + Duration::from_secs(10));
    // A watcher resynced after falling behind gets the trail in a snapshot: that is delivery
    // too. A fix counts as duplicated only when a live event repeats one.
    let mut seen = std::collections::HashSet::new();
    let mut dups = 0u64;
    loop {
        let now = tokio::time::Instant::now();
        if now >= soft && (1..=shared.sent.lock().unwrap()[session] as u32).all(|s| seen.contains(&s)) {
            break;
        }
        let m = match tokio::time::timeout_at(if now < soft { soft } else { hard }, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Err(_) if now < soft => continue,
            _ => break,
        };
        let now = us(shared.epoch);
        let t = match &m {
            Message::Text(t) => match serde_json::from_str::<WatchMsg>(t.as_str()) {
                Ok(WatchMsg::Fix { fix, .. }) => {
                    dups += u64::from(!seen.insert(fix.seq as u32));
                    Some(fix.time_ms as u64)
                }
                Ok(WatchMsg::Snapshot { trail, .. }) => {
                    seen.extend(trail.iter().map(|f| f.seq as u32));
                    None
                }
                Ok(_) => None,
                // The peer relays the phone's own messages.
                Err(_) => match serde_json::from_str::<PhoneMsg>(t.as_str()) {
                    Ok(PhoneMsg::Fix { fixes }) => fixes.first().map(|f| {
                        dups += u64::from(!seen.insert(f.seq as u32));
                        f.time_ms as u64
                    }),
                    _ => None,
                },
            },
            Message::Binary(b) => {
                let payload = match WatchHeader::parse(b) {
                    Some((h, p)) if h.kind == alertme_protocol::audio::KIND_UNIT => Some(p),
                    _ if b.first() == Some(&alertme_protocol::audio::KIND_PHONE_AUDIO) => {
                        b.get(PHONE_HEADER_LEN..)
                    }
                    _ => None,
                };
                payload
                    .and_then(|p| p.get(7..15))
                    .map(|ts| u64::from_be_bytes(ts.try_into().expect("8 bytes")))
            }
            _ => None,
        };
        if let Some(t) = t {
            if shared.measuring.load(Ordering::Relaxed) {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                shared.latencies.lock().unwrap().push(now.saturating_sub(t));
            }
        }
    }
    shared.seen.lock().unwrap()[session].push((seen, dups));
    Ok(())
}

async fn run_stream(
    target: &Target,
    sessions: usize,
    watchers: usize,
    seconds: f64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Report> {
    let alertme = target.name == "alertme";
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        latencies: Mutex::new(Vec::new()),
        acks: Mutex::new(Vec::new()),
        delivered: AtomicU64::new(0),
        measuring: Default::default(),
        seen: Mutex::new(vec![Vec::new(); sessions]),
        sent: Mutex::new(vec![0; sessions]),
        started: AtomicU64::new(0),
    });
    let (go_tx, go) = tokio::sync::watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    let mut rooms = Vec::new();
    for (i, id) in target.phones.iter().take(sessions).enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let phase = PHASES.mul_f64(i as f64 / sessions as f64);
        tasks.spawn(phone(
            target.base_for(i, None).to_owned(),
            alertme,
            id.clone(),
            i,
            shared.clone(),
            go.clone(),
            phase,
            tx,
        ));
        rooms.push(rx);
    }
    let (joined_tx, mut joined) = tokio::sync::mpsc::unbounded_channel();
    for (i, rx) in rooms.into_iter().enumerate() {
        let key = rx.await.context("a phone did not start")?;
        for j in 0..watchers {
            let base = target.base_for(i, Some(j));
            let url = if alertme {
                format!("{base}/v1/watch?token={key}")
            } else {
                format!("{base}/v1/watch?room={key}")
            };
            tasks.spawn(watcher(url, i, shared.clone(), go.clone(), joined_tx.clone()));
        }
    }
    // Streams start only once every watcher is connected (the peer has no snapshot for late
    // joiners); a watcher that cannot connect within 30 s is reported as failed.
    drop(joined_tx);
    let all_joined = async {
        for _ in 0..sessions * watchers {
            if joined.recv().await.is_none() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), all_joined).await;
    let stop = Instant::now() + WARM_UP + PHASES + SETTLE + Duration::from_secs_f64(seconds);
    let _ = go_tx.send(Some(stop));
    let nats = (target.bases.len() > 1).then(nats_pid).flatten();
    // Measure once every phone streams: SETTLE after the last one actually started (a busy
    // generator starts some late), or a second before the end at the latest (said below).
    tokio::time::sleep(WARM_UP + PHASES).await;
    while shared.started.load(Ordering::Relaxed) < sessions as u64
        && Instant::now() + SETTLE + Duration::from_secs(1) < stop
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiting = sessions as u64 - shared.started.load(Ordering::Relaxed);
    if waiting > 0 {
        bar.suspend(|| {
            eprintln!("note: {waiting} phones had not started when the window opened (it opened late and is shorter)")
        });
    }
    tokio::time::sleep(SETTLE).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let cpu0 = target.usage().0;
    let nats0 = nats.map(cpu_us);
    let d0 = shared.delivered.load(Ordering::Relaxed);
    let t0 = Instant::now();
    while Instant::now() < stop {
        bar.set_message(format!(
            "{}: {} frames delivered",
            target.name,
            shared.delivered.load(Ordering::Relaxed)
        ));
        bar.tick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let frames = shared.delivered.load(Ordering::Relaxed) - d0;
    let (cpu, rss) = target.usage();
    let cpu = cpu - cpu0;
    let nats_cpu = nats.zip(nats0).map(|(pid, c0)| cpu_us(pid) - c0);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "bench client failed");
        }
    }
    // Loss: every watcher must have seen every fix its phone sent; duplicates as counted above.
    let (mut lost, mut dups) = (0u64, 0u64);
    let sent = shared.sent.lock().unwrap().clone();
    for (session, watchers) in shared.seen.lock().unwrap().iter().enumerate() {
        for (seen, d) in watchers {
            lost += (1..=sent[session] as u32).filter(|s| !seen.contains(s)).count() as u64;
            dups += d;
        }
    }
    let lat = std::mem::take(&mut *shared.latencies.lock().unwrap());
    let acks = std::mem::take(&mut *shared.acks.lock().unwrap());
    Ok(Report {
        target: target.name.into(),
        delivered_per_s: frames as f64 / secs,
        latency_us: percentiles(lat),
        cpu_us_per_frame: if frames > 0 { cpu as f64 / frames as f64 } else { 0.0 },
        cpu_pct: cpu as f64 / secs / 1e4,
        rss_kib: rss,
        idle_bytes_per_socket: None,
        ack_us: (!acks.is_empty()).then(|| percentiles(acks)),
        lost,
        duplicates: dups,
        load_avg: load_avg(),
        pinned: None,
        nodes: target.bases.len().max(1),
        nats_cpu_us_per_frame: nats_cpu.filter(|_| frames > 0).map(|c| c as f64 / frames as f64),
        ..Default::default()
    })
}

async fn run_idle(target: &Target, sockets: usize, bar: &indicatif::ProgressBar) -> anyhow::Result<Report> {
    let alertme = target.name == "alertme";
    let key = if alertme {
        // One alert to watch.
        let mut ws = connect(&format!("{}/v1/phone", target.base), Some(&target.phones[0])).await?;
        ws.next().await;
        let start = PhoneMsg::Start { client_id: "bench-idle".into(), audio_mime: None, pressed_at_ms: None };
        ws.send(Message::Text(serde_json::to_string(&start)?.into())).await?;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { bail!("no started") };
            if let Ok(PhoneServerMsg::Started { watch_url, .. }) = serde_json::from_str(t.as_str()) {
                tokio::spawn(async move {
                    let _keep = ws;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                });
                break watch_url.rsplit('/').next().unwrap_or_default().to_owned();
            }
        }
    } else {
        "room0".to_owned()
    };
    let url = if alertme {
        format!("{}/v1/watch?token={key}", target.base)
    } else {
        format!("{}/v1/watch?room={key}", target.base)
    };
    let pid = target.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss_kib(pid);
    let mut open = Vec::with_capacity(sockets);
    let port: u16 = target.base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
    for i in 0..sockets {
        // Spread over 127.0.0.x sources: one source address has ~28k ephemeral ports.
        let src = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i / 10_000) as u8);
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind((src, 0).into())?;
        let stream = sock.connect((std::net::Ipv4Addr::LOCALHOST, port).into()).await?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url.as_str(),
            stream,
            Some(alertme_client::socket_config()),
        )
        .await?;
        open.push(ws);
        if i % 500 == 0 {
            bar.set_message(format!("{}: {i} idle sockets", target.name));
            bar.tick();
        }
    }
    // Let snapshots drain and the server settle.
    for ws in open.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_millis(2), ws.next()).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(pid);
    let per = (rss1.saturating_sub(rss0) * 1024) as f64 / sockets as f64;
    Ok(Report {
        target: target.name.into(),
        rss_kib: rss1,
        idle_bytes_per_socket: Some(per),
        load_avg: load_avg(),
        pinned: None,
        ..Default::default()
    })
}

/// Storm counters.
#[derive(Default)]
struct StormState {
    /// Watchers that got their first snapshot (the storm waits for all of them).
    joined: AtomicU64,
    resumed: AtomicU64,
    /// Watchers back after a lost socket: resumed from their event, or a fresh snapshot.
    rewatched: AtomicU64,
    resynced: AtomicU64,
    lost: AtomicU64,
}

/// A phone that keeps its unacknowledged fixes and resumes its alert after any disconnect, on
/// the next node in `bases` when its own stops answering.
async fn storm_phone(
    bases: Vec<String>,
    mut at: usize,
    token: String,
    session: usize,
    st: Arc<StormState>,
    stop: Instant,
) -> anyhow::Result<()> {
    let mut unacked = std::collections::BTreeMap::<u64, Fix>::new();
    let (mut seq, mut connections) = (0u64, 0u32);
    let mut next_fix = Instant::now();
    while Instant::now() < stop + Duration::from_secs(5) {
        let Ok(mut ws) = connect(&format!("{}/v1/phone", bases[at]), Some(&token)).await else {
            at = (at + 1) % bases.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let start =
            PhoneMsg::Start { client_id: format!("storm-{session}"), audio_mime: None, pressed_at_ms: None };
        if ws.send(Message::Text(serde_json::to_string(&start)?.into())).await.is_err() {
            continue;
        }
        let acked = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(PhoneServerMsg::Started { acks, .. }) = serde_json::from_str(t.as_str()) {
                        break Some(acks.fix);
                    }
                }
                Some(Ok(_)) => {}
                _ => break None,
            }
        };
        let Some(acked) = acked else { continue };
        connections += 1;
        if connections > 1 {
            st.resumed.fetch_add(1, Ordering::Relaxed);
        }
        unacked.retain(|s, _| *s > acked);
        let backlog: Vec<Fix> = unacked.values().cloned().collect();
        if !backlog.is_empty()
            && ws
                .send(Message::Text(serde_json::to_string(&PhoneMsg::Fix { fixes: backlog })?.into()))
                .await
                .is_err()
        {
            continue;
        }
        loop {
            if Instant::now() >= stop && unacked.is_empty() {
                return Ok(());
            }
            if Instant::now() >= stop + Duration::from_secs(5) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next_fix)), if Instant::now() < stop => {
                    next_fix += Duration::from_secs(1);
                    seq += 1;
                    let fix = Fix { seq, lat: 52.5, lon: 13.4, accuracy_m: 5.0, time_ms: seq as i64, battery_pct: None, speed_mps: None, heading_deg: None, altitude_m: None };
                    unacked.insert(seq, fix.clone());
                    if ws.send(Message::Text(serde_json::to_string(&PhoneMsg::Fix { fixes: vec![fix] })?.into())).await.is_err() {
                        break;
                    }
                }
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(PhoneServerMsg::Ack { acks }) = serde_json::from_str(t.as_str()) {
                            unacked.retain(|s, _| *s > acks.fix);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(200)), if Instant::now() >= stop => {}
            }
        }
    }
    st.lost.fetch_add(unacked.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// A watcher that reconnects with its epoch and last event, as the dashboard does (to the next
/// of `urls` when its node stops answering).
async fn storm_watcher(urls: Vec<String>, mut at: usize, st: Arc<StormState>, stop: Instant) {
    let mut resume: Option<(String, u64)> = None;
    let mut connections = 0;
    while Instant::now() < stop {
        let url = &urls[at];
        let u = match &resume {
            Some((e, ev)) => format!("{url}&epoch={e}&ev={ev}"),
            None => url.clone(),
        };
        let Ok(mut ws) = connect(&u, None).await else {
            at = (at + 1) % urls.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        connections += 1;
        let deadline = tokio::time::Instant::from_std(stop);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
            let Message::Text(t) = m else { continue };
            match serde_json::from_str::<WatchMsg>(t.as_str()) {
                Ok(WatchMsg::Snapshot { epoch, ev, .. }) => {
                    if connections > 1 {
                        st.resynced.fetch_add(1, Ordering::Relaxed);
                        st.rewatched.fetch_add(1, Ordering::Relaxed);
                    } else {
                        st.joined.fetch_add(1, Ordering::Relaxed);
                    }
                    resume = Some((epoch, ev));
                }
                Ok(WatchMsg::Resumed { .. }) => {
                    st.rewatched.fetch_add(1, Ordering::Relaxed);
                }
                Ok(
                    WatchMsg::Fix { ev, .. }
                    | WatchMsg::Phone { ev, .. }
                    | WatchMsg::Alert { ev, .. }
                    | WatchMsg::Deliveries { ev, .. },
                ) => {
                    if let Some(r) = resume.as_mut() {
                        r.1 = ev;
                    }
                }
                _ => {}
            }
        }
    }
}

async fn run_storm(
    target: &mut Target,
    sessions: usize,
    watchers: usize,
    seconds: f64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Report> {
    let st = Arc::new(StormState::default());
    // Setup takes a few seconds, then the storm; leave room to resume and stream after it.
    let stop = Instant::now() + Duration::from_secs_f64(seconds.max(6.0) + 15.0);
    let bases = if target.bases.is_empty() { vec![target.base.clone()] } else { target.bases.clone() };
    let n = bases.len();
    let home = |i: usize, watcher: Option<usize>| node_for(n, i, watcher);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in target.phones.iter().take(sessions).enumerate() {
        tasks.spawn(storm_phone(bases.clone(), home(i, None), token.clone(), i, st.clone(), stop));
    }
    // Watchers need each alert's watch token: the phone-side `started` gave none here, so ask the
    // server like the dashboard does, through the device's own link (derived, stable).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut watch_tokens = Vec::new();
    for (i, token) in target.phones.iter().take(sessions).enumerate() {
        let mut ws = connect(&format!("{}/v1/phone", bases[home(i, None)]), Some(token)).await?;
        let start =
            PhoneMsg::Start { client_id: format!("storm-{i}"), audio_mime: None, pressed_at_ms: None };
        ws.send(Message::Text(serde_json::to_string(&start)?.into())).await?;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else { bail!("no started") };
            if let Ok(PhoneServerMsg::Started { watch_url, .. }) = serde_json::from_str(t.as_str()) {
                watch_tokens.push(watch_url.rsplit('/').next().unwrap_or_default().to_owned());
                break;
            }
        }
        // This second connection took the alert over; the phone task reconnects and resumes.
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    st.resumed.store(0, Ordering::Relaxed);
    for (i, token) in watch_tokens.iter().enumerate() {
        let urls: Vec<String> = bases.iter().map(|b| format!("{b}/v1/watch?token={token}")).collect();
        for j in 0..watchers {
            tasks.spawn({
                let (urls, st) = (urls.clone(), st.clone());
                let at = home(i, Some(j));
                async move {
                    storm_watcher(urls, at, st, stop).await;
                    Ok(())
                }
            });
        }
    }
    let all = (sessions * watchers) as u64;
    let t = Instant::now();
    while st.joined.load(Ordering::Relaxed) < all && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    st.resumed.store(0, Ordering::Relaxed);
    st.resynced.store(0, Ordering::Relaxed);
    st.rewatched.store(0, Ordering::Relaxed);
    // The storm: a power cut of the server process (of node n0 in a cluster). One node comes
    // back on the same port; a cluster goes on without n0, its sockets move to the others.
    let t0 = if n == 1 {
        bar.set_message("restarting the server");
        let _ = target.child.kill();
        let _ = target.child.wait();
        st.resumed.store(0, Ordering::Relaxed);
        st.resynced.store(0, Ordering::Relaxed);
        st.rewatched.store(0, Ordering::Relaxed);
        let mut cmd = target.restart.take().context("this target cannot be restarted")?;
        let mut child = cmd.spawn()?;
        wait_line(&mut child, "AlertMe is running on http://")?;
        target.child = child;
        Instant::now()
    } else {
        bar.set_message("killing node n0");
        let t0 = Instant::now();
        let _ = target.child.kill();
        let _ = target.child.wait();
        t0
    };
    // Who lost a socket: everyone on one node; in a cluster, those that were on n0.
    let phones_hit = (0..sessions).filter(|i| home(*i, None) == 0).count() as u64;
    let watchers_hit = (0..sessions)
        .flat_map(|i| (0..watchers).map(move |j| (i, j)))
        .filter(|(i, j)| home(*i, Some(*j)) == 0);
    let watchers_hit = watchers_hit.count() as u64;
    let (mut phones_ms, mut watchers_ms) = (None, None);
    while t0.elapsed() < Duration::from_secs(30) && (phones_ms.is_none() || watchers_ms.is_none()) {
        if phones_ms.is_none() && st.resumed.load(Ordering::Relaxed) >= phones_hit {
            phones_ms = Some(t0.elapsed().as_millis() as u64);
        }
        if watchers_ms.is_none() && st.rewatched.load(Ordering::Relaxed) >= watchers_hit {
            watchers_ms = Some(t0.elapsed().as_millis() as u64);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "storm client failed");
        }
    }
    let rewatched = st.rewatched.load(Ordering::Relaxed);
    let resynced = st.resynced.load(Ordering::Relaxed);
    Ok(Report {
        target: target.name.into(),
        rss_kib: target.usage().1,
        lost: st.lost.load(Ordering::Relaxed),
        load_avg: load_avg(),
        pinned: None,
        phones_resumed_ms: phones_ms,
        watchers_back_ms: watchers_ms,
        watchers_resumed: rewatched.saturating_sub(resynced),
        watchers_resynced: resynced,
        phones_hit,
        watchers_hit,
        nodes: n,
        nats_cpu_us_per_frame: None,
        ..Default::default()
    })
}

/// Runs a scenario and prints a table (and JSON when asked).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let (sessions, watchers) = match args.scenario {
        Scenario::Fanout => (args.sessions.unwrap_or(1000), args.watchers.unwrap_or(5)),
        Scenario::Wide => (args.sessions.unwrap_or(200), args.watchers.unwrap_or(50)),
        Scenario::Ingest => (args.sessions.unwrap_or(1000), args.watchers.unwrap_or(0)),
        Scenario::Idle => (1, 0),
        Scenario::Storm => (args.sessions.unwrap_or(500), args.watchers.unwrap_or(2)),
    };
    if args.nodes > 1 && args.scenario == Scenario::Idle {
        bail!("--nodes runs fanout, wide, ingest and storm; idle measures one node");
    }
    let pin = if args.no_pin { None } else { pin::plan() };
    if let Some(p) = &pin {
        if !pin::pin_self(&p.generator) {
            println!("note: could not pin the generator; running unpinned");
        }
        println!("pinning: {}", p.describe());
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let mut reports = Vec::new();
    let mut targets = vec![start_alertme(&args, sessions, pin.as_ref())?];
    if args.peer && !matches!(args.scenario, Scenario::Ingest | Scenario::Storm) {
        targets.push(start_peer(sessions, pin.as_ref())?);
    }
    for t in &mut targets {
        let mut r = match args.scenario {
            Scenario::Idle => run_idle(t, args.sockets, &bar).await?,
            Scenario::Storm => run_storm(t, sessions, watchers, args.seconds, &bar).await?,
            _ => run_stream(t, sessions, watchers, args.seconds, &bar).await?,
        };
        r.pinned = pin.as_ref().map(Pinning::describe);
        reports.push(r);
    }
    bar.finish_and_clear();
    println!("scenario {:?}: {sessions} sessions × {watchers} watchers, {} s", args.scenario, args.seconds);
    println!(
        "{:<8} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9} {:>10} {:>6} {:>5}",
        "target",
        "frames/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "cpu µs/fr",
        "cpu %",
        "rss KiB",
        "idle B/sk",
        "lost",
        "dups"
    );
    for r in &reports {
        println!(
            "{:<8} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>10.2} {:>6.1} {:>9} {:>10} {:>6} {:>5}",
            r.target,
            r.delivered_per_s,
            r.latency_us.p50,
            r.latency_us.p90,
            r.latency_us.p99,
            r.latency_us.p999,
            r.cpu_us_per_frame,
            r.cpu_pct,
            r.rss_kib,
            r.idle_bytes_per_socket.map_or("-".into(), |b| format!("{b:.0}")),
            r.lost,
            r.duplicates
        );
        if args.scenario == Scenario::Storm {
            let show = |v: Option<u64>| v.map_or("not within 30 s".to_owned(), |ms| format!("{ms} ms"));
            let what = if r.nodes > 1 { "after node n0 was killed" } else { "after a restart" };
            println!(
                "         {what}: its {} phones resumed in {}; its {} watchers back in {} ({} resumed, {} resynced)",
                r.phones_hit,
                show(r.phones_resumed_ms),
                r.watchers_hit,
                show(r.watchers_back_ms),
                r.watchers_resumed,
                r.watchers_resynced
            );
        }
        if let Some(n) = r.nats_cpu_us_per_frame {
            println!(
                "         {} nodes: cpu µs/fr above is all nodes together; NATS server {n:.2} µs/fr besides",
                r.nodes
            );
        }
        if let Some(a) = &r.ack_us {
            println!(
                "         ack latency µs: p50 {} p90 {} p99 {} p99.9 {} (n {})",
                a.p50, a.p90, a.p99, a.p999, a.n
            );
        }
    }
    if let [a, p] = &reports[..] {
        let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
        println!(
            "alertme ÷ node-ws: cpu/frame {:.2}, p99 {:.2}, idle bytes/socket {:.2}",
            ratio(a.cpu_us_per_frame, p.cpu_us_per_frame),
            ratio(a.latency_us.p99 as f64, p.latency_us.p99 as f64),
            ratio(a.idle_bytes_per_socket.unwrap_or(f64::NAN), p.idle_bytes_per_socket.unwrap_or(f64::NAN)),
        );
    }
    let load = load_avg();
    if load > 2.0 {
        println!("note: load average {load:.1} on this machine during the run: a noisy run, trust the ratios over the absolutes");
    }
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(
                &serde_json::json!({ "scenario": args.scenario, "sessions": sessions, "watchers": watchers, "seconds": args.seconds, "reports": reports }),
            )?,
        )?;
    }
    let bad: u64 = reports.iter().filter(|r| r.target == "alertme").map(|r| r.lost + r.duplicates).sum();
    if bad > 0 {
        bail!("{bad} fixes lost or duplicated");
    }
    Ok(())
}
