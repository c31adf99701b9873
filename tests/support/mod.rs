//! Test harness: spawns the real `alertme` binary on 127.0.0.1, on SQLite or PostgreSQL, and
//! drives it over real sockets like phones, watchers and responders do.
#![allow(dead_code)]

pub mod app;
pub mod browser;

pub use app::TestApp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use alertme_protocol::audio::WatchHeader;
use alertme_protocol::WatchMsg;
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_alertme");

/// Where fixtures live.
pub fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(p)
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares one async test per backend: `both!(name, body_fn)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(support::Backend::Postgres).await
            }
        }
    };
}

/// A scratch database and data directory, removed on drop.
pub struct Env {
    pub backend: Backend,
    pub url: String,
    pub data_dir: PathBuf,
    pg_name: Option<String>,
}

fn pg_admin_url() -> String {
    std::env::var("ALERTME_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Env {
    pub async fn new(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("alertme-test-{id}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let (url, pg_name) = match backend {
            Backend::Sqlite => (format!("sqlite://{}?mode=rwc", data_dir.join("alertme.db").display()), None),
            Backend::Postgres => {
                let name = format!("alertme_t_{}", &id[..16]);
                let admin = Database::connect(pg_admin_url())
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (see README)");
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
                admin.close().await.ok();
                let base = pg_admin_url();
                let base = base.rsplit_once('/').unwrap().0;
                (format!("{base}/{name}"), Some(name))
            }
        };
        Self { backend, url, data_dir, pg_name }
    }

    /// Runs `alertme ARGS --database-url … --data-dir …` and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .args(["--database-url", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Creates a user and returns a device token.
    pub fn user(&self, name: &str, phone: &str) -> String {
        self.cli(&["user", "add", "--name", name, "--phone", phone])
    }

    /// Creates a responder and returns its token.
    pub fn responder(&self, name: &str) -> String {
        self.cli(&["responder", "add", "--name", name])
    }

    /// A direct database connection for checking what was stored.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.url).await.unwrap()
    }

    /// One integer from SQL.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let db = self.db().await;
        let backend = db.get_database_backend();
        let row = db.query_one_raw(Statement::from_string(backend, sql.to_owned())).await.unwrap().unwrap();
        let v: i64 = row.try_get_by_index(0).unwrap();
        db.close().await.ok();
        v
    }

    /// The SQL placeholder style of this backend is irrelevant for our literal queries; this
    /// just tells which backend the checks ran on.
    pub fn db_backend(&self) -> DbBackend {
        match self.backend {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a fresh runtime since we may be inside one that is shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(pg_admin_url()).await {
                        let _ = admin
                            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Waits (at most 30 s) for a child to print a line starting with `prefix`; returns the rest.
/// Keeps draining its stdout afterwards (the last 2,000 lines are kept in `log`), so it never
/// blocks on a full pipe.
fn announced(child: &mut Child, prefix: &'static str, log: Log) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in lines_of(stdout) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
            }
            keep(&log, line);
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no {prefix:?} line within 30 s"))
}

/// Adds a line to `log`, which keeps the last 2,000.
fn keep(log: &Log, line: String) {
    let mut l = log.lock().unwrap();
    if l.len() >= 2000 {
        l.remove(0);
    }
    l.push(line);
}

/// A child's output, line by line, until it closes. Read as bytes, not with `lines()`: a line
/// that is not UTF-8 must not stop the reading (the child would then block on a full pipe).
fn lines_of(out: impl std::io::Read) -> impl Iterator<Item = String> {
    BufReader::new(out).split(b'\n').map_while(Result::ok).map(|l| String::from_utf8_lossy(&l).into_owned())
}

/// Keeps what a child logs on stderr in `log`, unless `TEST_LOG` shows it on the terminal.
fn kept_stderr(child: &mut Child) -> Log {
    let log = Log::default();
    if let Some(stderr) = child.stderr.take() {
        let sink = log.clone();
        std::thread::spawn(move || lines_of(stderr).for_each(|line| keep(&sink, line)));
    }
    log
}

/// Waits at most `within` for `child` to exit; `None` if it still runs.
pub fn exited(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lines a child printed.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A running server process.
/// Where a server (in-process or a child process) answers.
pub trait Base {
    fn http(&self, path: &str) -> String;
    fn ws(&self, path: &str) -> String;

    /// GETs `path` with a bearer token and parses the JSON answer (panics on a non-2xx).
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        let r = reqwest::Client::new().get(self.http(path)).bearer_auth(token).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }
}

impl Base for Server {
    fn http(&self, path: &str) -> String {
        Server::http(self, path)
    }
    fn ws(&self, path: &str) -> String {
        Server::ws(self, path)
    }
}

impl Base for TestApp {
    fn http(&self, path: &str) -> String {
        TestApp::http(self, path)
    }
    fn ws(&self, path: &str) -> String {
        TestApp::ws(self, path)
    }
}

pub struct Server {
    child: Child,
    pub addr: String,
    stdout: Log,
    stderr: Log,
}

impl Server {
    /// Starts the server on `bind` (use "127.0.0.1:0" for any port) with extra flags.
    pub fn start(env: &Env, bind: &str, extra: &[&str]) -> Self {
        Self::start_in(env, &env.data_dir, bind, extra)
    }

    /// Like `start`, with its own data directory (a second server on the same database).
    pub fn start_in(env: &Env, data_dir: &Path, bind: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", bind, "--database-url", &env.url, "--data-dir"])
            .arg(data_dir)
            .args(["--static-dir"])
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../static"))
            .args(extra)
            .env("RUST_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::piped() })
            .spawn()
            .unwrap();
        let stderr = kept_stderr(&mut child);
        let stdout = Log::default();
        let addr = announced(&mut child, "AlertMe is running on http://", stdout.clone());
        Self { child, addr, stdout, stderr }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// What the server printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// What the server logged so far (warnings and errors; nothing when `TEST_LOG` shows the
    /// log on the terminal instead).
    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits (at most `within`) for the process to exit; returns its exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = exited(&mut self.child, within);
        status.unwrap_or_else(|| panic!("still running {within:?} after SIGTERM")).code()
    }

    /// SIGKILL: no graceful anything, like a power cut of the process.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running phone simulator.
pub struct Phone {
    pub child: Child,
    lines: std_mpsc::Receiver<String>,
    pub alert_id: String,
    pub watch_url: String,
    stdout: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Phone {
    /// Starts `alertme phone` and waits for it to print the alert id and watch link.
    pub fn start(server: &impl Base, token: &str, args: &[&str]) -> Self {
        Self::start_via(&server.http(""), token, args)
    }

    /// Like `start`, through `base` (e.g. a proxy in front of the server).
    pub fn start_via(base: &str, token: &str, args: &[&str]) -> Self {
        let mut child = tools()
            .args(["phone", "--server", base, "--token", token])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std_mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in lines_of(stdout) {
                let _ = tx.send(line);
            }
        });
        let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stderr_lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in lines_of(stderr) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut p = Self {
            child,
            lines,
            alert_id: String::new(),
            watch_url: String::new(),
            stdout: Vec::new(),
            stderr: stderr_lines,
        };
        while p.alert_id.is_empty() || p.watch_url.is_empty() {
            let Ok(line) = p.lines.recv_timeout(Duration::from_secs(30)) else {
                panic!("phone printed no alert/watch line; its stderr:\n{}", p.stderr())
            };
            if let Some(a) = line.strip_prefix("alert: ") {
                p.alert_id = a.to_owned();
            } else if let Some(w) = line.strip_prefix("watch: ") {
                p.watch_url = w.to_owned();
            }
            p.stdout.push(line);
        }
        p
    }

    /// The watch token from the printed link.
    pub fn watch_token(&self) -> String {
        self.watch_url.rsplit('/').next().unwrap().to_owned()
    }

    /// Waits for the simulator to exit; returns (success, stdout, stderr).
    pub fn wait(mut self, within: Duration) -> (bool, String, String) {
        let status = exited(&mut self.child, within)
            .unwrap_or_else(|| panic!("phone did not finish within {within:?}"));
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.stdout.push(l);
        }
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().join("\n");
        (status.success(), self.stdout.join("\n"), err)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket with an optional bearer token and Origin.
pub async fn connect(
    url: &str,
    bearer: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// Receives the next data message within 10 s (pings are answered by the library).
pub async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no message within 10 s")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// The next phone-socket message, skipping the unsolicited `deliveries` and `audience` updates
/// (they may come at any time after `started`).
pub async fn phone_msg(ws: &mut Ws) -> alertme_protocol::PhoneServerMsg {
    loop {
        match next(ws).await {
            Some(Message::Text(t)) => match serde_json::from_str(t.as_str()).unwrap() {
                alertme_protocol::PhoneServerMsg::Deliveries { .. }
                | alertme_protocol::PhoneServerMsg::Audience { .. } => continue,
                m => return m,
            },
            Some(_) => continue,
            None => panic!("phone socket closed"),
        }
    }
}

/// Sends a JSON text message.
pub async fn send_json<T: serde::Serialize>(ws: &mut Ws, m: &T) {
    ws.send(Message::Text(serde_json::to_string(m).unwrap().into())).await.unwrap();
}

/// Everything one watcher saw, in order.
#[derive(Default, Debug)]
pub struct Watched {
    pub msgs: Vec<WatchMsg>,
    /// (header, payload) of every binary frame.
    pub audio: Vec<(WatchHeader, Vec<u8>)>,
    /// Close code, when the server closed with one.
    pub close: Option<u16>,
}

impl Watched {
    /// Fix seqs in the order first seen (snapshot trail, then live fixes).
    pub fn fix_seqs(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for m in &self.msgs {
            match m {
                WatchMsg::Snapshot { trail, .. } => v.extend(trail.iter().map(|f| f.seq)),
                WatchMsg::Fix { fix, .. } => v.push(fix.seq),
                _ => {}
            }
        }
        v
    }

    /// Concatenated payloads of init segments and units of `part`.
    pub fn audio_bytes(&self, part: u16) -> Vec<u8> {
        self.audio.iter().filter(|(h, _)| h.part == part).flat_map(|(_, b)| b.clone()).collect()
    }
}

/// Reads a watch socket until the server closes it (or `limit` passes).
pub async fn watch_until_close(mut ws: Ws, limit: Duration) -> Watched {
    let mut w = Watched::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let m = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("watcher still open after {limit:?}"),
            Ok(None) | Ok(Some(Err(_))) => return w,
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Text(t) => w.msgs.push(serde_json::from_str(t.as_str()).expect("valid WatchMsg")),
            Message::Binary(b) => {
                let (h, payload) = WatchHeader::parse(&b).expect("valid watch frame header");
                w.audio.push((h, payload.to_vec()));
            }
            Message::Close(c) => {
                w.close = c.map(|c| u16::from(c.code));
                return w;
            }
            _ => {}
        }
    }
}

/// sha256 hex of bytes.
pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// True when ffmpeg decodes the file without a single error.
pub fn decodes_cleanly(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| format!("ffmpeg not runnable (install ffmpeg): {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() && err.trim().is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Audio packets ffprobe reads from a file (20-23 ms each for Opus and AAC).
pub fn probe_packets(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').parse().unwrap_or(0)
}

/// `alertme-tools` (phone simulator, load generator, fake Twilio), built next to `alertme` by
/// `cargo xtask test` (another package's binary has no `CARGO_BIN_EXE_` here).
pub fn tools() -> Command {
    let bin = Path::new(BIN).with_file_name("alertme-tools");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo xtask test` (or `cargo build -p alertme-tools` first)",
        bin.display()
    );
    Command::new(bin)
}
/// Credentials the fake expects and the server is given.
pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Auth token shared by the fake and the server.
pub const TWILIO_TOKEN: &str = "test-auth-token";
/// Sender number (Twilio's magic "succeeds" number).
pub const TWILIO_FROM: &str = "+15005550006";

/// A running fake Twilio on loopback.
pub struct FakeTwilio {
    child: Child,
    pub base: String,
    http: reqwest::Client,
}

impl FakeTwilio {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = tools()
            .args([
                "fake-twilio",
                "--bind",
                "127.0.0.1:0",
                "--account-sid",
                TWILIO_SID,
                "--auth-token",
                TWILIO_TOKEN,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = announced(&mut child, "fake twilio listening on ", Log::default());
        Self { child, base, http: reqwest::Client::new() }
    }

    /// Server flags that point the Twilio provider at this fake.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--sms-provider",
            "twilio",
            "--twilio-account-sid",
            TWILIO_SID,
            "--twilio-auth-token",
            TWILIO_TOKEN,
            "--twilio-from",
            TWILIO_FROM,
            "--twilio-api-base",
            &self.base,
            "--sms-timeout-ms",
            "1000",
            "--sms-retry-ms",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Messages the fake accepted, oldest first.
    pub async fn messages(&self) -> Vec<serde_json::Value> {
        self.http.get(format!("{}/_fake/messages", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// Every request to the Messages endpoint, with the scripted behaviour it got.
    pub async fn attempts(&self) -> Vec<serde_json::Value> {
        self.http.get(format!("{}/_fake/attempts", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// Scripts the next answers.
    pub async fn plan(&self, responses: &[&str]) {
        let r = self
            .http
            .post(format!("{}/_fake/plan", self.base))
            .json(&serde_json::json!({ "responses": responses }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Has the fake post callbacks; returns the HTTP statuses our server answered.
    pub async fn callback(&self, sid: &str, statuses: &[&str], tamper: bool, unsigned: bool) -> Vec<u16> {
        self.http
            .post(format!("{}/_fake/callback", self.base))
            .json(&serde_json::json!({ "sid": sid, "statuses": statuses, "tamper": tamper, "unsigned": unsigned }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Has the fake post a signed inbound message (a reply) to `url`.
    pub async fn inbound(&self, url: &str, from: &str, body: &str) -> u16 {
        self.http
            .post(format!("{}/_fake/inbound", self.base))
            .json(&serde_json::json!({ "url": url, "from": from, "body": body }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Messages to `to`.
    pub async fn to(&self, to: &str) -> Vec<serde_json::Value> {
        self.messages().await.into_iter().filter(|m| m["to"] == to).collect()
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A phone's socket with an SOS started on it (nothing sent yet): the socket, the alert's id and
/// its watch link.
pub async fn sos_socket(server: &impl Base, token: &str, client_id: &str) -> (Ws, String, String) {
    use alertme_protocol::{PhoneMsg, PhoneServerMsg};
    let mut ws = connect(&server.ws("/v1/phone"), Some(token), None).await.unwrap();
    let start = PhoneMsg::Start { client_id: client_id.into(), audio_mime: None, pressed_at_ms: None };
    send_json(&mut ws, &start).await;
    loop {
        if let PhoneServerMsg::Started { alert_id, watch_url, .. } = phone_msg(&mut ws).await {
            return (ws, alert_id, watch_url);
        }
    }
}

/// The first `secs` seconds of the 10-minute walk as a CSV track in `env`'s data directory
/// (a walk as long as a recording, or over before a page opens); returns its path.
pub fn short_walk(env: &Env, secs: usize) -> String {
    let csv = std::fs::read_to_string(fixture("gps/gps_walk_10min.csv")).unwrap();
    let path = env.data_dir.join(format!("walk_{secs}s.csv"));
    std::fs::write(&path, csv.lines().take(secs + 2).collect::<Vec<_>>().join("\n")).unwrap();
    path.display().to_string()
}

/// A loopback TCP proxy whose connections can be cut, like a phone losing its network while the
/// server stays up. While cut, new connections are accepted and closed at once. Its uplink
/// (client to server) can be slowed to a phone link's rate.
pub struct CutProxy {
    pub addr: String,
    /// Uplink bytes per second; 0 for no limit.
    rate: std::sync::Arc<std::sync::atomic::AtomicU64>,
    target: std::sync::Arc<std::sync::Mutex<String>>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on 127.0.0.1; forwards nowhere until `set_target`.
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rate = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (t, u, c, r) = (target.clone(), up.clone(), conns.clone(), rate.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let to = t.lock().unwrap().clone();
                let (r, conns) = (r.clone(), c.clone());
                let task = tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(outbound) = tokio::net::TcpStream::connect(&to).await else { return };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    let (mut in_r, mut in_w) = inbound.into_split();
                    let (mut out_r, mut out_w) = outbound.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
                    });
                    conns.lock().unwrap().push(down.abort_handle());
                    // Uplink paced in 1 KiB steps (a slow link's serialisation delay; an idle
                    // link earns no credit for a later burst).
                    let mut next = tokio::time::Instant::now();
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = in_r.read(&mut buf).await {
                        if n == 0 || out_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let rate = r.load(Ordering::Relaxed);
                        if rate > 0 {
                            next = next.max(tokio::time::Instant::now())
                                + Duration::from_secs_f64(n as f64 / rate as f64);
                            tokio::time::sleep_until(next).await;
                        }
                    }
                    let _ = out_w.shutdown().await;
                    let _ = down.await;
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, rate, target, up, conns, accept }
    }

    /// Slows every connection's uplink to `bytes_per_sec` from now on (0: no limit).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, std::sync::atomic::Ordering::SeqCst);
    }

    /// Where connections go (the server's address).
    pub fn set_target(&self, addr: &str) {
        *self.target.lock().unwrap() = addr.to_owned();
    }

    /// Drops every connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A loopback WebSocket proxy that forwards every message both ways, except the first `stop`
/// a phone sends: it is swallowed, as a flaky network might lose it.
pub struct DropFirstStop {
    pub addr: String,
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl DropFirstStop {
    pub async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dropped.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (target, flag) = (target.clone(), flag.clone());
                tokio::spawn(async move {
                    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
                    let keep = seen.clone();
                    let callback = move |req: &Request, res: Response| {
                        let auth = req.headers().get("authorization").cloned();
                        *keep.lock().unwrap() = Some((req.uri().to_string(), auth));
                        Ok(res)
                    };
                    let Ok(inbound) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                        return;
                    };
                    let (path, auth) = seen.lock().unwrap().take().unwrap();
                    let mut req = format!("ws://{target}{path}").into_client_request().unwrap();
                    if let Some(a) = auth {
                        req.headers_mut().insert("authorization", a);
                    }
                    let Ok((outbound, _)) = tokio_tungstenite::connect_async(req).await else { return };
                    let (mut in_tx, mut in_rx) = inbound.split();
                    let (mut out_tx, mut out_rx) = outbound.split();
                    let up = async {
                        while let Some(Ok(m)) = in_rx.next().await {
                            let is_stop = matches!(&m, Message::Text(t) if t.contains("\"type\":\"stop\""));
                            if is_stop && !flag.swap(true, Ordering::SeqCst) {
                                continue;
                            }
                            if out_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async {
                        while let Some(Ok(m)) = out_rx.next().await {
                            if in_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        Self { addr, dropped, accept }
    }
}

impl Drop for DropFirstStop {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// HAProxy (the Debian package) in front of some servers: health-checked on `/healthz`, a
/// connection to a dead server retried on another.
pub struct Haproxy {
    child: Child,
    pub addr: String,
    _dir: PathBuf,
}

impl Haproxy {
    pub fn start(backends: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("alertme-haproxy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let servers: String =
            backends.iter().enumerate().map(|(i, b)| format!("    server n{i} {b} check\n")).collect();
        let cfg = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 500ms\n    timeout client 60s\n    timeout server 60s\n    \
             timeout tunnel 1h\n    retries 3\n    option redispatch 1\n\
             frontend f\n    bind 127.0.0.1:{port}\n    default_backend b\n\
             backend b\n    balance roundrobin\n    option httpchk GET /healthz\n    \
             default-server inter 300ms fall 2 rise 2\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-q", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (apt install haproxy; .ci/run installs it)");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, _dir: dir }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Base for Haproxy {
    fn http(&self, path: &str) -> String {
        Haproxy::http(self, path)
    }
    fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Where `track` confirms leaving `zone`, by the server's own rules (its index).
pub fn zone_exit(track: &[alertme_protocol::Fix], zone: &alertme_server::domain::geozones::Shape) -> usize {
    let mut st = alertme_server::domain::geozones::ZoneState::default();
    track
        .iter()
        .position(|f| {
            let d = zone.signed_distance(f.lat, f.lon);
            alertme_server::domain::geozones::observe(&mut st, d, f.accuracy_m, f.time_ms).is_some()
        })
        .expect("the walk leaves the zone")
}

/// Runs `alertme-tools bench ARGS` to the end; its output (panics with it when it fails).
pub fn bench(args: &[&str]) -> String {
    let out = tools().arg("bench").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
