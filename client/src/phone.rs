//! A phone that streams a real track and recording as an SOS (`alertme-tools phone`, the demo).
//!
//! It behaves as a real phone must: everything it records is kept until the server acknowledges
//! it, across dropped connections; on reconnect it resumes the same alert, sends the newest fix
//! first, then the fix backlog, then the audio. It exits non-zero if anything stayed unacknowledged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::track;
use alertme_protocol::audio::encode_phone_chunk;
use alertme_protocol::{Acks, Fix, PhoneMsg, PhoneServerMsg, StopReason, MAX_FIXES_PER_MESSAGE};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the simulated SOS ends once everything is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Finish {
    /// Send `stop` with reason resolve.
    Resolve,
    /// Send `stop` with reason cancel.
    Cancel,
    /// Leave the alert active and exit.
    Keep,
}

/// Options of `alertme-tools phone` (and of the demo's phone).
#[derive(Debug, Clone, Args)]
pub struct PhoneArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080. Repeat it to name several nodes of a
    /// cluster: the phone stays on one while it answers and tries the next when it does not.
    #[arg(long, default_value = "http://127.0.0.1:8080", action = clap::ArgAction::Append)]
    pub server: Vec<String>,
    /// Device token (from `alertme user add`).
    #[arg(long, env = "ALERTME_DEVICE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Track to replay: GPX 1.1 (or CSV with unix_ms,lat,lon,accuracy_m columns).
    #[arg(long)]
    pub gpx: PathBuf,
    /// Recording to stream: an ADTS .aac, .webm or .mp4 file (cut into chunks here), or a
    /// directory of NNNN.bin chunks as a recorder emitted them.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// MIME type of the audio (default: from the file extension or the first chunk).
    #[arg(long)]
    pub audio_mime: Option<String>,
    /// A recording with video to stream instead of `--audio`: WebM (VP8/VP9 + Opus) or
    /// fragmented MP4 (H.264 + AAC), cut as a recorder at `--video-kbps` would emit it.
    #[arg(long, conflicts_with = "audio")]
    pub video: Option<PathBuf>,
    /// Bit rate the `--video` file was recorded at, for cutting it into timeslices.
    #[arg(long, default_value_t = 190)]
    pub video_kbps: u64,
    /// Playback speed: 1 is real time, 60 streams a minute per second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Recorder timeslice in ms of audio per chunk (file input).
    #[arg(long, default_value_t = 250)]
    pub chunk_ms: u64,
    /// Force a connection drop every this many (wall-clock) seconds; every other one mid-frame.
    #[arg(long)]
    pub drop_every: Option<f64>,
    /// What to do once everything is acknowledged.
    #[arg(long, value_enum, default_value_t = Finish::Resolve)]
    pub finish: Finish,
    /// Client id of the alert (default: random); reuse it to resume an alert.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Repeat the (ADTS) recording until the track ends, as a phone that keeps recording does.
    #[arg(long)]
    pub loop_audio: bool,
    /// Give up (exit 1) when data stays unacknowledged this many seconds after the last was recorded.
    #[arg(long, default_value_t = 60.0)]
    pub ack_timeout: f64,
}

/// Something the phone records, due at an offset from the start.
enum Item {
    Fix(Fix),
    Audio(u64, Vec<u8>),
}

/// Runs the simulator to completion.
pub async fn run(args: PhoneArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.speed > 0.0 && args.speed.is_finite(), "--speed must be > 0");
    let fixes = track::load(&args.gpx)?;
    let (mime, chunks) = match (&args.audio, &args.video) {
        (Some(p), _) => {
            let (m, c) = load_audio(p, args.audio_mime.clone(), args.chunk_ms)?;
            (Some(m), c)
        }
        (None, Some(p)) => {
            let (m, c) = load_video(p, args.audio_mime.clone(), args.chunk_ms, args.video_kbps)?;
            (Some(m), c)
        }
        (None, None) => (None, Vec::new()),
    };
    let t0_track = fixes[0].time_ms;
    let chunks = if args.loop_audio && !chunks.is_empty() {
        anyhow::ensure!(mime.as_deref() == Some("audio/aac"), "--loop-audio needs ADTS audio (audio/aac)");
        let track_ms = (fixes[fixes.len() - 1].time_ms - t0_track).max(0) as u64;
        let needed = (track_ms / args.chunk_ms.max(1)) as usize + 1;
        chunks.iter().cycle().take(needed.max(chunks.len())).cloned().collect()
    } else {
        chunks
    };
    let mut schedule: Vec<(Duration, Item)> = Vec::new();
    // A phone stamps a fix when it takes it: the track's times are moved to now (and sped up with
    // it), so watchers see fresh positions, not a walk recorded long ago.
    let t0_now = crate::now_ms();
    for mut f in fixes {
        let at = Duration::from_secs_f64((f.time_ms - t0_track).max(0) as f64 / 1000.0 / args.speed);
        f.time_ms = t0_now + at.as_millis() as i64;
        schedule.push((at, Item::Fix(f)));
    }
    for (i, c) in chunks.into_iter().enumerate() {
        let at = Duration::from_secs_f64(i as f64 * args.chunk_ms as f64 / 1000.0 / args.speed);
        schedule.push((at, Item::Audio(i as u64 + 1, c)));
    }
    schedule.sort_by_key(|(at, _)| *at);
    let client_id = args.client_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut phone = Phone {
        urls: args.server.iter().map(|s| ws_url(s)).collect::<anyhow::Result<_>>()?,
        at: 0,
        token: args.token.clone(),
        client_id,
        mime,
        fixes: BTreeMap::new(),
        audio: BTreeMap::new(),
        acks: Acks::default(),
        sent: (0, 0),
        reconnects: 0,
        drops: 0,
        announced: false,
    };
    phone.stream(schedule, &args).await
}

fn ws_url(server: &str) -> anyhow::Result<String> {
    Ok(format!("{}/v1/phone", crate::backoff::ws_base(server)?))
}

/// Reads the recording as the chunks a recorder would emit.
fn load_audio(
    path: &std::path::Path,
    mime: Option<String>,
    chunk_ms: u64,
) -> anyhow::Result<(String, Vec<Vec<u8>>)> {
    if path.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        names.sort();
        let chunks: Vec<Vec<u8>> = names.iter().map(std::fs::read).collect::<Result<_, _>>()?;
        let first = chunks.first().context("audio directory holds no .bin chunks")?;
        let mime = mime.unwrap_or_else(|| sniff_mime(first).to_owned());
        return Ok((mime, chunks));
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mime = mime.unwrap_or_else(|| sniff_mime(&bytes).to_owned());
    // Cut like a recorder flushing every chunk_ms: the byte rate is taken from the ADTS frame
    // count where possible, else assumed to be 32 kbit/s speech.
    let secs = alertme_protocol::adts::duration_secs(&bytes).filter(|_| mime == "audio/aac");
    let per_chunk = match secs {
        Some(s) if s > 0.0 => (bytes.len() as f64 * chunk_ms as f64 / 1000.0 / s).ceil() as usize,
        _ => (32_000 / 8 * chunk_ms as usize / 1000).max(1),
    }
    .clamp(1, 60 * 1024);
    Ok((mime, bytes.chunks(per_chunk).map(<[u8]>::to_vec).collect()))
}

/// Reads a recording with video as the chunks a recorder at `kbps` would emit.
fn load_video(
    path: &std::path::Path,
    mime: Option<String>,
    chunk_ms: u64,
    kbps: u64,
) -> anyhow::Result<(String, Vec<Vec<u8>>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mime = match mime {
        Some(m) => m,
        None if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) => "video/webm;codecs=vp8,opus".to_owned(),
        None if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" => {
            "video/mp4;codecs=avc1.42c00c,mp4a.40.2".to_owned()
        }
        None => anyhow::bail!("{}: not a WebM or MP4 recording", path.display()),
    };
    let per_chunk = ((kbps * 1000 / 8 * chunk_ms / 1000) as usize).clamp(1, 60 * 1024);
    Ok((mime, bytes.chunks(per_chunk).map(<[u8]>::to_vec).collect()))
}

fn sniff_mime(b: &[u8]) -> &'static str {
    if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "audio/webm;codecs=opus"
    } else if b.len() >= 8 && &b[4..8] == b"ftyp" {
        "audio/mp4"
    } else {
        "audio/aac"
    }
}

struct Phone {
    /// Phone socket URLs of every server given, and the one in use.
    urls: Vec<String>,
    at: usize,
    token: String,
    client_id: String,
    mime: Option<String>,
    /// Recorded but not yet acknowledged.
    fixes: BTreeMap<u64, Fix>,
    audio: BTreeMap<u64, Vec<u8>>,
    acks: Acks,
    /// Counts recorded (fixes, audio chunks).
    sent: (u64, u64),
    reconnects: u32,
    drops: u32,
    announced: bool,
}

/// A `stop` not answered with `stopped` within this long is sent again.
const STOP_AGAIN: Duration = Duration::from_secs(3);

impl Phone {
    async fn stream(&mut self, schedule: Vec<(Duration, Item)>, args: &PhoneArgs) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut items = schedule.into_iter().peekable();
        let mut ws: Option<Ws> = None;
        let mut retry_at = Instant::now();
        let mut backoff = Backoff::default();
        // Connections made so far, and the one `stop` was last sent on (and when): `stop` goes
        // again on every new connection, and every few seconds, until `stopped` arrives.
        let mut conn_no = 0u64;
        let mut stop_sent: Option<(u64, Instant)> = None;
        let drop_every = args.drop_every.map(Duration::from_secs_f64);
        let mut next_drop = drop_every.map(|d| Instant::now() + d);
        let mut ping = tokio::time::interval(Duration::from_secs(5));
        let mut last_recorded = Instant::now();
        loop {
            if ws.is_none() && backoff.is_connected() {
                retry_at = backoff.lost();
            }
            let done_recording = items.peek().is_none();
            if done_recording && self.fixes.is_empty() && self.audio.is_empty() && ws.is_some() {
                if args.finish == Finish::Keep {
                    break;
                }
                let again = stop_sent.is_none_or(|(conn, at)| conn != conn_no || at.elapsed() >= STOP_AGAIN);
                if again {
                    let reason =
                        if args.finish == Finish::Cancel { StopReason::Cancel } else { StopReason::Resolve };
                    if send_json(ws.as_mut().expect("connected"), &PhoneMsg::Stop { reason }).await.is_err() {
                        ws = None;
                        continue;
                    }
                    stop_sent = Some((conn_no, Instant::now()));
                }
            }
            if done_recording && last_recorded.elapsed() > Duration::from_secs_f64(args.ack_timeout) {
                bail!(
                    "gave up: {} fixes and {} audio chunks unacknowledged after {:.0} s",
                    self.fixes.len(),
                    self.audio.len(),
                    args.ack_timeout
                );
            }
            if ws.is_none() && Instant::now() >= retry_at {
                match self.connect().await {
                    Ok(mut s) => {
                        conn_no += 1;
                        backoff.connected();
                        if self.resend(&mut s).await.is_ok() {
                            ws = Some(s);
                        }
                    }
                    Err(e) => {
                        retry_at = backoff.lost();
                        eprintln!(
                            "connect to {} failed: {e:#}; retrying in {:?}",
                            self.urls[self.at],
                            retry_at - Instant::now()
                        );
                        self.at = (self.at + 1) % self.urls.len();
                    }
                }
            }
            // Wake to send `stop` again only while it would be sent (connected, all acked).
            let stop_due = stop_sent.is_some()
                && ws.is_some()
                && items.peek().is_none()
                && self.fixes.is_empty()
                && self.audio.is_empty();
            let due = items.peek().map(|(at, _)| start + *at);
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = sleep_until(due.unwrap_or(far)), if due.is_some() => {
                    while let Some((at, _)) = items.peek() {
                        if start + *at > Instant::now() {
                            break;
                        }
                        let (_, item) = items.next().expect("peeked");
                        last_recorded = Instant::now();
                        let frame = self.record(item);
                        if let Some(s) = ws.as_mut() {
                            if s.send(frame).await.is_err() {
                                ws = None;
                            }
                        }
                    }
                }
                m = next_msg(&mut ws) => match m {
                    Some(Ok(msg)) => {
                        let before = self.acks;
                        let done = self.on_message(msg, &mut ws).await?;
                        if self.acks != before {
                            backoff.healthy();
                        }
                        if let Some(done) = done {
                            println!("finished: alert {done}");
                            break;
                        }
                    }
                    _ => ws = None,
                },
                _ = sleep_until(next_drop.unwrap_or(far)), if next_drop.is_some() && ws.is_some() => {
                    self.drops += 1;
                    let mid_frame = self.drops % 2 == 1;
                    if let Some(s) = ws.take() {
                        force_drop(s, mid_frame, &self.audio).await;
                    }
                    next_drop = drop_every.map(|d| Instant::now() + d);
                }
                _ = sleep_until(retry_at), if ws.is_none() => {}
                _ = sleep_until(stop_sent.map_or(far, |(_, at)| at + STOP_AGAIN)), if stop_due => {}
                _ = ping.tick() => {
                    if let Some(s) = ws.as_mut() {
                        if send_json(s, &PhoneMsg::Ping { t: Some(crate::now_ms()) }).await.is_err() {
                            ws = None;
                        }
                    }
                }
            }
        }
        println!(
            "recorded {} fixes and {} audio chunks; all acknowledged (fix {}, audio {}); reconnects {}, forced drops {}",
            self.sent.0, self.sent.1, self.acks.fix, self.acks.audio, self.reconnects, self.drops
        );
        Ok(())
    }

    /// Keeps a recorded item until acked and returns its frame.
    fn record(&mut self, item: Item) -> Message {
        match item {
            Item::Fix(f) => {
                self.sent.0 += 1;
                let m = PhoneMsg::Fix { fixes: vec![f.clone()] };
                self.fixes.insert(f.seq, f);
                Message::Text(serde_json::to_string(&m).expect("serializes").into())
            }
            Item::Audio(seq, bytes) => {
                self.sent.1 += 1;
                let frame = encode_phone_chunk(seq, &bytes);
                self.audio.insert(seq, bytes);
                Message::Binary(frame.into())
            }
        }
    }

    async fn connect(&mut self) -> anyhow::Result<Ws> {
        let mut req = self.urls[self.at].as_str().into_client_request()?;
        req.headers_mut().insert("authorization", format!("Bearer {}", self.token).parse()?);
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async_with_config(req, Some(crate::socket_config()), true),
        )
        .await
        .context("connect timed out")??;
        let start = PhoneMsg::Start {
            client_id: self.client_id.clone(),
            audio_mime: self.mime.clone(),
            pressed_at_ms: None,
        };
        send_json(&mut ws, &start).await?;
        let started = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = ws.next().await {
                if let Message::Text(t) = m? {
                    match serde_json::from_str::<PhoneServerMsg>(t.as_str())? {
                        PhoneServerMsg::Started { alert_id, watch_url, acks, created, .. } => {
                            return anyhow::Ok((alert_id, watch_url, acks, created));
                        }
                        PhoneServerMsg::Error { code, detail, .. } => eprintln!("server: {code}: {detail}"),
                        _ => {}
                    }
                }
            }
            bail!("socket closed before `started`")
        })
        .await
        .context("no `started` within 10 s")??;
        let (alert_id, watch_url, acks, created) = started;
        if !self.announced {
            println!("alert: {alert_id}");
            println!("watch: {watch_url}");
            self.announced = true;
        } else {
            self.reconnects += 1;
        }
        if !created {
            eprintln!(
                "resumed alert {alert_id}: server holds fixes ≤ {} and audio ≤ {}",
                acks.fix, acks.audio
            );
        }
        self.apply(acks);
        Ok(ws)
    }

    /// After (re)connecting: newest fix first, then the fix backlog, then the audio in order.
    async fn resend(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let mut fixes: Vec<Fix> = self.fixes.values().cloned().collect();
        if let Some(newest) = fixes.iter().max_by_key(|f| f.time_ms).cloned() {
            send_json(ws, &PhoneMsg::Fix { fixes: vec![newest.clone()] }).await?;
            fixes.retain(|f| f.seq != newest.seq);
        }
        for batch in fixes.chunks(MAX_FIXES_PER_MESSAGE) {
            send_json(ws, &PhoneMsg::Fix { fixes: batch.to_vec() }).await?;
        }
        for (seq, bytes) in &self.audio {
            ws.send(Message::Binary(encode_phone_chunk(*seq, bytes).into())).await?;
        }
        Ok(())
    }

    fn apply(&mut self, acks: Acks) {
        self.acks.fix = self.acks.fix.max(acks.fix);
        self.acks.audio = self.acks.audio.max(acks.audio);
        self.fixes.retain(|&s, _| s > self.acks.fix);
        self.audio.retain(|&s, _| s > self.acks.audio);
    }

    /// Handles a server message; returns the final status once the alert ended.
    async fn on_message(&mut self, msg: Message, ws: &mut Option<Ws>) -> anyhow::Result<Option<String>> {
        let Message::Text(t) = msg else { return Ok(None) };
        match serde_json::from_str::<PhoneServerMsg>(t.as_str()) {
            Ok(PhoneServerMsg::Ack { acks }) => self.apply(acks),
            Ok(PhoneServerMsg::Stopped { status }) => return Ok(Some(status.as_str().to_owned())),
            Ok(PhoneServerMsg::Error { code, detail, expected }) => {
                eprintln!("server: {code}: {detail}");
                if let (Some(from), Some(s)) = (expected, ws.as_mut()) {
                    for (seq, bytes) in self.audio.range(from..) {
                        if s.send(Message::Binary(encode_phone_chunk(*seq, bytes).into())).await.is_err() {
                            *ws = None;
                            break;
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("unexpected server message: {e}"),
        }
        Ok(None)
    }
}

async fn send_json(ws: &mut Ws, m: &PhoneMsg) -> anyhow::Result<()> {
    ws.send(Message::Text(serde_json::to_string(m)?.into())).await?;
    Ok(())
}

async fn next_msg(ws: &mut Option<Ws>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Cuts the connection the way a phone losing signal does: either abruptly between frames, or
/// in the middle of a frame (half of a masked binary frame written straight to the TCP socket).
async fn force_drop(mut ws: Ws, mid_frame: bool, audio: &BTreeMap<u64, Vec<u8>>) {
    let _ = ws.flush().await;
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        return;
    };
    if mid_frame {
        let payload = audio.iter().next().map_or_else(|| vec![0u8; 600], |(s, b)| encode_phone_chunk(*s, b));
        let mut frame = vec![0x82u8];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]); // zero mask: payload bytes go out as they are
        frame.extend_from_slice(&payload);
        let half = frame.len() / 2;
        let _ = tcp.write_all(&frame[..half]).await;
        let _ = tcp.flush().await;
    }
    let _ = tcp.shutdown().await;
}
