//! Cluster mode: several real `alertme serve` nodes on one PostgreSQL database and the local
//! NATS (JetStream), each run under a prefix of its own.

use crate::support;

use std::time::Duration;

use alertme_protocol::audio::WatchHeader;
use alertme_protocol::{PhoneMsg, PhoneServerMsg, ResponderMsg, WatchMsg};
use futures_util::StreamExt;
use sea_orm::ConnectionTrait;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn nats_url() -> String {
    std::env::var("ALERTME_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// One test cluster at a time: three nodes hold up to ~55 PostgreSQL connections under load
/// (16 + 2 each), and two clusters with the other tests would pass PostgreSQL's default limit
/// of 100.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Nodes of one test cluster: a database of their own and a NATS prefix of their own.
struct Nodes {
    env: Env,
    prefix: String,
    nodes: Vec<Server>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Nodes {
    async fn start(names: &[&str]) -> Self {
        let mut c = Self::empty().await;
        for name in names {
            let node = c.node(name, &[]);
            c.nodes.push(node);
        }
        c
    }

    /// A database and prefix, no node yet.
    async fn empty() -> Self {
        let turn = ONE_CLUSTER.lock().await;
        let env = Env::new(Backend::Postgres).await;
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Self { env, prefix, nodes: Vec::new(), _turn: turn }
    }

    /// One node (started one after another: the first applies the migrations).
    fn node(&self, name: &str, extra: &[String]) -> Server {
        self.node_at(name, "127.0.0.1:0", extra)
    }

    /// A node on a given address (a restarted one keeps its place behind the balancer).
    fn node_at(&self, name: &str, bind: &str, extra: &[String]) -> Server {
        let dir = self.env.data_dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let url = nats_url();
        let args = [
            "--nats-url",
            &url,
            "--nats-prefix",
            &self.prefix,
            "--node-id",
            name,
            "--secret",
            "cluster-test-secret-shared-by-all-nodes",
            "--signing-key",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--phone-silence-ms",
            "1500",
        ];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(extra.iter().map(String::as_str));
        Server::start_in(&self.env, &dir, bind, &args)
    }

    /// SIGTERM (a graceful drain), then the same node again on the same address.
    fn restart(&mut self, i: usize, name: &str) {
        let code = self.nodes[i].terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0), "node {name} stopped cleanly");
        let addr = self.nodes[i].addr.clone();
        self.nodes[i] = self.node_at(name, &addr, &[]);
    }
}

/// The test's stream goes with it (its events expire anyway; the stream itself would not).
impl Drop for Nodes {
    fn drop(&mut self) {
        self.nodes.clear();
        let (url, stream) = (nats_url(), format!("{}_events", self.prefix));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(url).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(stream).await;
                }
            })
        })
        .join();
    }
}

/// What one watcher saw, in arrival order: every event's number and its bytes.
#[derive(Debug, Default)]
struct Seen {
    snapshot_ev: Option<u64>,
    epoch: String,
    resumed_from: Option<u64>,
    /// (ev, frame bytes) of every event after the snapshot (text events and audio units).
    events: Vec<(u64, Vec<u8>)>,
    fixes: Vec<u64>,
    audio: Vec<u8>,
    close: Option<u16>,
    resyncs: usize,
}

fn ev_of(m: &WatchMsg) -> Option<u64> {
    match m {
        WatchMsg::Fix { ev, .. }
        | WatchMsg::Alert { ev, .. }
        | WatchMsg::Phone { ev, .. }
        | WatchMsg::Deliveries { ev, .. }
        | WatchMsg::AudioPart { ev, .. } => Some(*ev),
        _ => None,
    }
}

/// Reads a watch socket until it closes, or until `stop_after` events when given.
async fn follow(ws: &mut Ws, seen: &mut Seen, stop_after: Option<usize>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if stop_after.is_some_and(|n| seen.events.len() >= n) {
            return;
        }
        let m = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!(
                "watcher still open after {limit:?}: snapshot at {:?}, last event {:?}, {} fixes, {} resyncs",
                seen.snapshot_ev,
                seen.events.last().map(|e| e.0),
                seen.fixes.len(),
                seen.resyncs
            ),
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Text(t) => {
                let msg: WatchMsg = serde_json::from_str(t.as_str()).expect("valid WatchMsg");
                match &msg {
                    WatchMsg::Snapshot { epoch, ev, trail, resync, .. } => {
                        seen.resyncs += usize::from(*resync);
                        seen.snapshot_ev.get_or_insert(*ev);
                        seen.epoch = epoch.clone();
                        seen.fixes.extend(trail.iter().map(|f| f.seq));
                    }
                    WatchMsg::Resumed { epoch, from_ev } => {
                        seen.epoch = epoch.clone();
                        seen.resumed_from = Some(*from_ev);
                    }
                    WatchMsg::Fix { fix, .. } => seen.fixes.push(fix.seq),
                    _ => {}
                }
                if let Some(ev) = ev_of(&msg) {
                    seen.events.push((ev, t.as_bytes().to_vec()));
                }
            }
            Message::Binary(b) => {
                let (h, payload) = WatchHeader::parse(&b).expect("watch frame header");
                seen.audio.extend_from_slice(payload);
                // Snapshot audio frames carry numbers at or below the snapshot's.
                if seen.snapshot_ev.is_none_or(|s| h.ev > s) || seen.resumed_from.is_some() {
                    seen.events.push((h.ev, b.to_vec()));
                }
            }
            Message::Close(c) => {
                seen.close = c.map(|c| u16::from(c.code));
                return;
            }
            _ => {}
        }
    }
}

/// Every event number once, one after another.
/// Whether `needle` occurs in `hay` as one contiguous stretch.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let k = needle.len().min(32);
    needle.is_empty()
        || (0..=hay.len().saturating_sub(needle.len()))
            .filter(|&i| hay[i..i + k] == needle[..k])
            .any(|i| hay[i..i + needle.len()] == *needle)
}

fn assert_consecutive(what: &str, events: &[(u64, Vec<u8>)]) {
    for w in events.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{what}: event {} followed by {} (a gap or a repeat)", w[0].0, w[1].0);
    }
}

/// Events both watchers saw must be the same bytes under the same number.
fn assert_same_events(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)]) -> usize {
    let by_ev: std::collections::HashMap<u64, &Vec<u8>> = a.iter().map(|(e, f)| (*e, f)).collect();
    let mut common = 0;
    for (ev, frame) in b {
        if let Some(f) = by_ev.get(ev) {
            assert_eq!(*f, frame, "event {ev} differs between nodes");
            common += 1;
        }
    }
    common
}

/// Cluster mode needs PostgreSQL: with SQLite the server refuses to start, and says why.
#[tokio::test]
async fn cluster_mode_needs_postgres() {
    let env = Env::new(Backend::Sqlite).await;
    let out = std::process::Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &env.url, "--nats-url", &nats_url()])
        .arg("--data-dir")
        .arg(&env.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a shared PostgreSQL database"), "{err}");
}

/// A phone on node a, watchers on b and c: every watcher sees every fix once, in order, with
/// the same event numbers and bytes as the others; a late joiner on c gets a snapshot with
/// decodable audio; a watcher that leaves b resumes on c without a resync; the phone hears
/// how many watch (on all nodes); a console on c lists the alert and claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_every_node_see_the_same_events() {
    let c = Nodes::start(&["a", "b", "c"]).await;
    let (a, b, cn) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    for (node, name) in [(a, "a"), (b, "b"), (cn, "c")] {
        let h: serde_json::Value = reqwest::get(node.http("/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(h["node"], name);
        assert_eq!(h["cluster"], true);
    }
    let token = c.env.user("Ana", "+4915112345678");
    let responder = c.env.responder("Rita");
    let walk = fixture("gps/gps_walk_10min.gpx").display().to_string();
    let adts = fixture("audio/speech_aac32k.aac").display().to_string();
    let phone =
        Phone::start(a, &token, &["--gpx", &walk, "--audio", &adts, "--speed", "30", "--finish", "resolve"]);
    let path = format!("/v1/watch?token={}", phone.watch_token());

    let mut on_b = connect(&b.ws(&path), None, None).await.unwrap();
    let on_c = connect(&cn.ws(&path), None, None).await.unwrap();
    let whole_c = tokio::spawn(async move {
        let mut ws = on_c;
        let mut seen = Seen::default();
        follow(&mut ws, &mut seen, None, Duration::from_secs(90)).await;
        seen
    });

    // A console on c lists the alert of a phone on a, and claims it.
    let mut console = connect(&cn.ws("/v1/responder"), Some(&responder), None).await.unwrap();
    let listed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Message::Text(t)) = next(&mut console).await else { panic!("console closed") };
            match serde_json::from_str(t.as_str()).unwrap() {
                ResponderMsg::Overview { alerts, .. }
                    if alerts.iter().any(|s| s.alert.id == phone.alert_id) =>
                {
                    return
                }
                ResponderMsg::Update { alert } if alert.alert.id == phone.alert_id => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(listed.is_ok(), "the console on c never listed the alert owned by a");
    send_json(&mut console, &alertme_protocol::ResponderCmd::Claim { alert_id: phone.alert_id.clone() })
        .await;

    // Another watcher on b leaves and resumes on a, which has no mirror of the alert yet (its
    // owner serves no watcher itself): the new mirror reads back the stream, so it resumes too.
    let mut to_a = connect(&b.ws(&path), None, None).await.unwrap();
    let mut left = Seen::default();
    follow(&mut to_a, &mut left, Some(60), Duration::from_secs(60)).await;
    drop(to_a);
    let (left_at, left_epoch) = (left.events.last().unwrap().0, left.epoch.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut on_a =
        connect(&a.ws(&format!("{path}&epoch={left_epoch}&ev={left_at}")), None, None).await.unwrap();
    let mut back = Seen { epoch: left_epoch, snapshot_ev: left.snapshot_ev, ..Default::default() };
    follow(&mut on_a, &mut back, Some(20), Duration::from_secs(30)).await;
    assert_eq!(back.resumed_from, Some(left_at + 1), "resumed on a fresh mirror, not resynced");
    let mut moved = left.events.clone();
    moved.extend(back.events.clone());
    assert_consecutive("watcher that moved from b to a", &moved);
    drop(on_a);

    // The watcher on b leaves after some events and resumes on c.
    let mut first = Seen::default();
    follow(&mut on_b, &mut first, Some(120), Duration::from_secs(60)).await;
    drop(on_b);
    let (last_ev, epoch) = (first.events.last().unwrap().0, first.epoch.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut resumed =
        connect(&cn.ws(&format!("{path}&epoch={epoch}&ev={last_ev}")), None, None).await.unwrap();
    let mut second = Seen { epoch: epoch.clone(), snapshot_ev: first.snapshot_ev, ..Default::default() };
    follow(&mut resumed, &mut second, None, Duration::from_secs(90)).await;
    assert_eq!(
        second.resumed_from,
        Some(last_ev + 1),
        "resumed on c, not resynced ({} snapshots)",
        second.resyncs
    );
    assert_eq!(second.resyncs, 0);

    // A late joiner on c, while the phone still streams, gets audio that decodes.
    let (ok, out, err) = phone.wait(Duration::from_secs(90));
    assert!(ok, "phone failed:\n{out}\n{err}");
    assert!(out.contains("all acknowledged (fix 600, audio 168)"), "{out}");
    let whole = whole_c.await.unwrap();

    for (name, s) in [("b then c", &second), ("c", &whole)] {
        assert_eq!(s.close, Some(1000), "{name}: closed normally at the end");
    }
    let mut across = first.events.clone();
    across.extend(second.events.clone());
    assert_consecutive("watcher that moved from b to c", &across);
    assert_consecutive("watcher on c", &whole.events);
    let common = assert_same_events(&whole.events, &across);
    assert!(common > 600, "only {common} events in common");
    let mut fixes = first.fixes.clone();
    fixes.extend(second.fixes.clone());
    for (name, f) in [("b then c", &fixes), ("c", &whole.fixes)] {
        let mut sorted = f.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), f.len(), "{name}: a fix arrived twice");
        assert_eq!(sorted, (1..=600).collect::<Vec<_>>(), "{name}: fixes missing");
    }
    let source = std::fs::read(fixture("audio/speech_aac32k.aac")).unwrap();
    assert!(source.ends_with(&whole.audio), "audio on c is not the recording's tail");
    let claimed = whole.events.iter().any(|(_, f)| {
        serde_json::from_slice::<WatchMsg>(f).is_ok_and(
            |m| matches!(m, WatchMsg::Alert { alert, .. } if alert.claimed_by.as_deref() == Some("Rita")),
        )
    });
    assert!(claimed, "the claim on c reached the watchers through the owner on a");
    let owner = c.env.scalar("SELECT COUNT(*) FROM alert_owners").await;
    assert_eq!(owner, 0, "an ended alert's ownership row is gone");
}

/// A late joiner on another node gets the owner's snapshot: trail, and audio from a sync
/// point that decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_on_another_node() {
    let c = Nodes::start(&["a", "b"]).await;
    let token = c.env.user("Ana", "+4915112345678");
    let walk = fixture("gps/gps_walk_10min.gpx").display().to_string();
    let adts = fixture("audio/speech_aac32k.aac").display().to_string();
    let phone = Phone::start(
        &c.nodes[0],
        &token,
        &["--gpx", &walk, "--audio", &adts, "--speed", "4", "--chunk-ms", "300", "--finish", "keep"],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ws = connect(&c.nodes[1].ws(&format!("/v1/watch?token={}", phone.watch_token())), None, None)
        .await
        .unwrap();
    let Some(Message::Text(t)) = next(&mut ws).await else { panic!() };
    let WatchMsg::Snapshot { audio: Some(a), trail, .. } = serde_json::from_str(t.as_str()).unwrap() else {
        panic!("snapshot without audio: {t}")
    };
    assert!(!trail.is_empty());
    assert!(a.first_unit > 0, "a late joiner starts mid-stream");
    let mut bytes = Vec::new();
    for _ in 0..a.units {
        let Some(Message::Binary(b)) = next(&mut ws).await else { panic!("expected audio frame") };
        bytes.extend_from_slice(WatchHeader::parse(&b).unwrap().1);
    }
    let path = c.env.data_dir.join("late.aac");
    std::fs::write(&path, &bytes).unwrap();
    decodes_cleanly(&path).unwrap_or_else(|e| panic!("late-join audio does not decode: {e}"));
    assert!(probe_packets(&path) >= 40, "less than ~1 s of audio for a late joiner");
}

/// True once the phone's fix ack reaches `seq` (within 10 s).
async fn acked(ws: &mut Ws, seq: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let PhoneServerMsg::Ack { acks } = phone_msg(ws).await {
                if acks.fix >= seq {
                    return;
                }
            }
        }
    })
    .await
    .is_ok()
}

async fn closed_with(ws: &mut Ws, limit: Duration) -> Option<u16> {
    tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("socket still open")
}

/// Fencing: a node that lost the alert can never acknowledge. A phone that resumes on b takes
/// the alert over; a's phone socket closes with 4409. A takeover a never heard of (its notice
/// lost) still stops a's writes: the next fix on a is refused by the fence, never acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_the_alert_never_acks() {
    let c = Nodes::start(&["a", "b"]).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let token = c.env.user("Ana", "+4915112345678");
    let fix = |seq: u64| json!({"type": "fix", "fixes": [{"seq": seq, "lat": 52.5, "lon": 13.4, "accuracy_m": 5.0, "time_ms": 1_700_000_000_000i64 + seq as i64}]});
    let start = PhoneMsg::Start { client_id: "c1".into(), audio_mime: None, pressed_at_ms: None };
    let open = |node: &Server| {
        let url = node.ws("/v1/phone");
        let token = token.clone();
        let start = start.clone();
        async move {
            let mut ws = connect(&url, Some(&token), None).await.unwrap();
            let _welcome = phone_msg(&mut ws).await;
            send_json(&mut ws, &start).await;
            let PhoneServerMsg::Started { alert_id, acks, .. } = phone_msg(&mut ws).await else { panic!() };
            (ws, alert_id, acks)
        }
    };
    // On a: fix 1 acked. Then the phone resumes on b: a's socket is told it was superseded.
    let (mut on_a, alert, _) = open(a).await;
    send_json(&mut on_a, &fix(1)).await;
    assert!(acked(&mut on_a, 1).await);
    let (mut on_b, same, acks) = open(b).await;
    assert_eq!(same, alert);
    assert_eq!(acks.fix, 1);
    assert_eq!(closed_with(&mut on_a, Duration::from_secs(5)).await, Some(4409));
    let owner = |sql: &'static str| c.env.scalar(sql);
    assert_eq!(owner("SELECT fence FROM alert_owners").await, 2);

    // b owns it: fix 2 acked there.
    send_json(&mut on_b, &fix(2)).await;
    assert!(acked(&mut on_b, 2).await);

    // Another node takes it over behind b's back (as if its notice were lost): b's next fix is
    // not stored and not acked, and b closes the phone with 4409.
    let db = c.env.db().await;
    db.execute_unprepared("UPDATE alert_owners SET node_id = 'elsewhere', fence = fence + 1").await.unwrap();
    send_json(&mut on_b, &fix(3)).await;
    let mut acked_3 = false;
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match on_b.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(PhoneServerMsg::Ack { acks }) = serde_json::from_str(t.as_str()) {
                        acked_3 |= acks.fix >= 3;
                    }
                }
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("b closes the phone");
    assert_eq!(code, Some(4409));
    assert!(!acked_3, "a fenced-out node acked");
    let stored =
        c.env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}' AND seq = 3")).await;
    assert_eq!(stored, 0, "a fenced-out node stored a fix");
    db.close().await.ok();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The alerts a node owns (by its id; rows name its instance, `ID~…`).
async fn alerts_of(env: &Env, node: &str) -> Vec<String> {
    let db = env.db().await;
    let sql = format!("SELECT alert_id FROM alert_owners WHERE node_id LIKE '{node}~%'");
    let rows =
        db.query_all_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await.unwrap();
    db.close().await.ok();
    rows.iter().map(|r| r.try_get("", "alert_id").unwrap()).collect()
}

/// A shorter trip for many phones at once: the walk's first `fixes` fixes (CSV) and the
/// recording's first `fixes` seconds (whole ADTS frames).
fn short_trip(dir: &std::path::Path, fixes: usize) -> (String, String, Vec<u8>) {
    let csv = std::fs::read_to_string(fixture("gps/gps_walk_10min.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().take(fixes + 1).collect();
    let csv_path = dir.join("trip.csv");
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();
    let aac = std::fs::read(fixture("audio/speech_aac32k.aac")).unwrap();
    let total = alertme_protocol::adts::duration_secs(&aac).unwrap();
    let want = aac.len() as f64 * (fixes as f64 / total);
    let mut end = 0;
    while end < aac.len() && (end as f64) < want {
        end += alertme_protocol::adts::header(&aac[end..]).expect("ADTS frame").len;
    }
    let aac_path = dir.join("trip.aac");
    std::fs::write(&aac_path, &aac[..end]).unwrap();
    (csv_path.display().to_string(), aac_path.display().to_string(), aac[..end].to_vec())
}

/// What a watcher that may reconnect (through the balancer) saw.
#[derive(Debug, Default)]
struct Followed {
    fixes: Vec<u64>,
    resumed: usize,
    resyncs: usize,
    reconnects: usize,
    duplicates: usize,
}

async fn follow_anywhere(base: String, token: String, limit: Duration) -> Followed {
    use alertme_client::{Seen as S, Watcher};
    let mut w = Watcher::new(&base, &token).unwrap();
    let mut f = Followed::default();
    let mut seen = std::collections::HashSet::new();
    let all = async {
        while let Some(s) = w.next().await {
            match s {
                S::Msg(WatchMsg::Snapshot { trail, resync, .. }) => {
                    f.resyncs += usize::from(resync);
                    // A snapshot (first, or after a resync) restates the trail: not a repeat.
                    for fix in trail {
                        if seen.insert(fix.seq) {
                            f.fixes.push(fix.seq);
                        }
                    }
                }
                S::Msg(WatchMsg::Resumed { .. }) => f.resumed += 1,
                S::Msg(WatchMsg::Fix { fix, .. }) => {
                    if seen.insert(fix.seq) {
                        f.fixes.push(fix.seq);
                    } else {
                        f.duplicates += 1;
                    }
                }
                S::Reconnecting { .. } => f.reconnects += 1,
                _ => {}
            }
        }
    };
    let ended = tokio::time::timeout(limit, all).await.is_ok();
    assert!(ended, "watcher still following after {limit:?}: {} fixes, {f:?}", f.fixes.len());
    f
}

/// How the streaming scenario below is disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disruption {
    /// SIGKILL of the node that owns the most alerts.
    Kill,
    /// SIGTERM and restart of every node, one after another.
    RollingRestart,
}

/// 20 phones, half through HAProxy in front of 3 nodes and half given every node's address,
/// watchers on the nodes and through the balancer, while nodes go away. Every phone gets everything acked, every recording is stored
/// byte-identical and every fix once; every watcher sees every fix, none twice; watchers on
/// nodes that stay up see every event once, in order, with no gap and no resync.
async fn stream_while(disruption: Disruption) {
    const PHONES: usize = 20;
    const FIXES: usize = 90;
    let mut c = Nodes::start(&["a", "b", "c"]).await;
    let names = ["a", "b", "c"];
    let nodes = c.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>();
    let lb = Haproxy::start(&nodes.iter().map(String::as_str).collect::<Vec<_>>());
    let (csv, aac, audio) = short_trip(&c.env.data_dir, FIXES);
    let mut phones = Vec::new();
    for i in 0..PHONES {
        let token = c.env.user(&format!("P{i}"), &format!("+49151{:08}", 10_000_000 + i));
        let mut args = vec![
            "--gpx",
            &csv,
            "--audio",
            &aac,
            "--speed",
            "4",
            "--finish",
            "resolve",
            "--ack-timeout",
            "120",
        ];
        if i % 2 == 0 {
            phones.push(Phone::start(&lb, &token, &args));
        } else {
            // The other half know every node themselves (no balancer): each starts on a
            // different one and moves to the next when its node stops answering.
            let first = c.nodes[i % 3].http("");
            let (n1, n2) = (c.nodes[(i + 1) % 3].http(""), c.nodes[(i + 2) % 3].http(""));
            args.extend(["--server", n1.as_str(), "--server", n2.as_str()]);
            phones.push(Phone::start_via(&first, &token, &args));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let owners: Vec<(String, i64)> = {
        let db = c.env.db().await;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                // Rows name a node's instance: its id, `~` and a random suffix.
                "SELECT split_part(node_id, '~', 1) AS node_id, COUNT(*) AS n FROM alert_owners \
                 GROUP BY 1 ORDER BY n DESC",
            ))
            .await
            .unwrap();
        rows.iter().map(|r| (r.try_get("", "node_id").unwrap(), r.try_get("", "n").unwrap())).collect()
    };
    // Watchers that stay on one node: on the nodes that stay up (none stays up in a rolling
    // restart); and one per phone through the balancer, reconnecting wherever it lands.
    let victim = names.iter().position(|n| *n == owners[0].0).unwrap();
    let steady: Vec<usize> = match disruption {
        Disruption::Kill => (0..3).filter(|i| *i != victim).collect(),
        Disruption::RollingRestart => Vec::new(),
    };
    let mut direct = Vec::new();
    let mut anywhere = Vec::new();
    for p in &phones {
        for &s in &steady {
            let url = format!("{}/v1/watch?token={}", c.nodes[s].ws(""), p.watch_token());
            let ws = connect(&url, None, None).await.unwrap();
            direct.push(tokio::spawn(async move {
                let mut ws = ws;
                let mut seen = Seen::default();
                follow(&mut ws, &mut seen, None, Duration::from_secs(180)).await;
                seen
            }));
        }
        anywhere.push(tokio::spawn(follow_anywhere(lb.http(""), p.watch_token(), Duration::from_secs(180))));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Kill: the alerts the killed node owned, and when it died.
    let (mut moved, mut killed_ms) = (Vec::new(), 0);
    match disruption {
        Disruption::Kill => {
            let gone = names[victim];
            moved = alerts_of(&c.env, gone).await;
            killed_ms = now_ms();
            let killed_at = std::time::Instant::now();
            c.nodes[victim].kill();
            let taken_over = eventually(Duration::from_secs(30), "alerts taken over", || async {
                let left = c
                    .env
                    .scalar(&format!("SELECT COUNT(*) FROM alert_owners WHERE node_id LIKE '{gone}~%'"))
                    .await;
                (left == 0).then(|| killed_at.elapsed())
            })
            .await;
            println!("killed node {gone} owning {} alerts; all taken over after {taken_over:?}", owners[0].1);
        }
        Disruption::RollingRestart => {
            for (i, name) in names.iter().enumerate() {
                let t = std::time::Instant::now();
                c.restart(i, name);
                println!("node {name} drained and back in {:?}", t.elapsed());
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    for (i, p) in phones.into_iter().enumerate() {
        let alert = p.alert_id.clone();
        let (ok, out, err) = p.wait(Duration::from_secs(180));
        assert!(ok, "phone {i} failed:\n{out}\n{err}");
        assert!(out.contains(&format!("all acknowledged (fix {FIXES},")), "phone {i}: {out}");
        let stored = c.env.scalar(&format!("SELECT COUNT(*) FROM fixes WHERE alert_id = '{alert}'")).await;
        assert_eq!(stored, FIXES as i64, "phone {i}: every fix stored once");
        let db = c.env.db().await;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT data FROM audio_chunks WHERE alert_id = '{alert}' ORDER BY seq"),
            ))
            .await
            .unwrap();
        let bytes: Vec<u8> =
            rows.iter().flat_map(|r| r.try_get::<Option<Vec<u8>>>("", "data").unwrap().unwrap()).collect();
        assert!(
            bytes == audio,
            "phone {i}: recording not byte-identical ({} of {} bytes)",
            bytes.len(),
            audio.len()
        );
        db.close().await.ok();
    }
    if !moved.is_empty() {
        // Failover as a phone sees it: from the kill to the first item its new owner stored
        // (its ack follows that commit at once). Measured, not a target (docs/benchmarks.md).
        let mut waits = Vec::new();
        for alert in &moved {
            let first = c
                .env
                .scalar(&format!(
                    "SELECT MIN(t) FROM (SELECT received_at AS t FROM fixes WHERE alert_id = '{alert}' AND \
                     received_at > {killed_ms} UNION ALL SELECT received_at FROM audio_chunks WHERE \
                     alert_id = '{alert}' AND received_at > {killed_ms}) x"
                ))
                .await;
            waits.push(first - killed_ms);
        }
        waits.sort_unstable();
        println!(
            "failover, kill to first item stored by the new owner, {} alerts: min {} ms, median {} ms, max {} ms",
            waits.len(),
            waits[0],
            waits[waits.len() / 2],
            waits[waits.len() - 1]
        );
        assert!(waits.iter().all(|w| *w < 30_000), "an alert never went on after the kill: {waits:?}");
    }
    let expected: Vec<u64> = (1..=FIXES as u64).collect();
    for (i, w) in direct.into_iter().enumerate() {
        let s = w.await.unwrap();
        assert_eq!(s.close, Some(1000), "watcher {i} on a node that stayed up closed normally");
        assert_eq!(s.resyncs, 0, "watcher {i} on a node that stayed up had to resync");
        assert_consecutive(&format!("watcher {i} on a node that stayed up"), &s.events);
        // What it heard is one stretch of the recording: no unit lost on the way (a new owner
        // publishes what its predecessor stored but never published).
        assert!(
            !s.audio.is_empty() && contains(&audio, &s.audio),
            "watcher {i} on a node that stayed up: a hole in its audio ({} bytes heard of {}; {} events, snapshot at {:?}, last {:?})",
            s.audio.len(),
            audio.len(),
            s.events.len(),
            s.snapshot_ev,
            s.events.last().map(|e| e.0)
        );
        let mut f = s.fixes.clone();
        f.sort_unstable();
        assert_eq!(f, expected, "watcher {i} on a node that stayed up: every fix once");
    }
    let (mut resumed, mut resyncs, mut reconnects) = (0, 0, 0);
    for (i, w) in anywhere.into_iter().enumerate() {
        let f = w.await.unwrap();
        let mut sorted = f.fixes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected, "watcher {i} through the balancer: every fix");
        assert_eq!(f.duplicates, 0, "watcher {i} through the balancer: a fix twice");
        resumed += f.resumed;
        resyncs += f.resyncs;
        reconnects += f.reconnects;
    }
    println!("watchers through the balancer: {reconnects} reconnects, {resumed} resumed, {resyncs} resynced");
    // A watcher that had to start over got a whole snapshot (every fix above was checked): no
    // gap, but more to download. Most resume; a few may start over, e.g. one that reconnects
    // just as its alert ends gets the ended alert's final snapshot. Counted, not failed.
    assert!(resumed > 0, "no watcher that moved resumed");
}

/// Losing a node: the busiest one is SIGKILLed mid-stream; its phones reconnect through the
/// balancer and go on elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_loses_nothing() {
    stream_while(Disruption::Kill).await;
}

/// A rolling restart: each node drained with SIGTERM and started again, one after another,
/// while 20 phones stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_loses_nothing() {
    stream_while(Disruption::RollingRestart).await;
}

/// Exactly once with three nodes: a check-in timer that all three see fall due at the same
/// moment raises one alert, and each text (the contacts' alert texts included) is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fire_a_timer_once_and_text_once() {
    let mut c = Nodes::empty().await;
    let twilio = FakeTwilio::start(&[]);
    c.env.user("Ana", "+4915112345678");
    for (name, phone) in [("Ben", "+4915112345679"), ("Cleo", "+4915112345670")] {
        c.env.cli(&["contact", "add", "--user", "+4915112345678", "--name", name, "--phone", phone]);
    }
    let db = c.env.db().await;
    let one = |sql: &str| sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql.to_owned());
    let row = db
        .query_one_raw(one("SELECT u.id AS u, d.id AS d FROM users u JOIN devices d ON d.user_id = u.id"))
        .await
        .unwrap()
        .unwrap();
    let (user, device): (String, String) = (row.try_get("", "u").unwrap(), row.try_get("", "d").unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Due a few seconds after the three nodes are up, no grace: each node's scheduler wakes for it.
    db.execute_unprepared(&format!(
        "INSERT INTO timers (id, user_id, device_id, note, destination, deadline_at, grace_ms, status, alert_id, \
         created_at, updated_at) VALUES ('t1', '{user}', '{device}', NULL, NULL, {}, 0, 'active', NULL, {now}, {now})",
        now + 6_000
    ))
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        let node = c.node(name, &twilio.server_args());
        c.nodes.push(node);
    }
    let alerts = eventually(Duration::from_secs(30), "the timer fired", || async {
        let n = c.env.scalar("SELECT COUNT(*) FROM alerts WHERE source = 'timer'").await;
        (n > 0).then_some(n)
    })
    .await;
    // Every node had its chance: the deadline passed for all three.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.env.scalar("SELECT COUNT(*) FROM alerts WHERE source = 'timer'").await, alerts);
    assert_eq!(alerts, 1, "one alert for one missed timer");
    let rows = c.env.scalar("SELECT COUNT(*) FROM sms_outbox").await;
    let sent = eventually(Duration::from_secs(30), "every text sent", || async {
        let m = twilio.messages().await;
        (m.len() as i64 >= rows).then_some(m)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_again = twilio.messages().await;
    assert_eq!(sent_again.len(), sent.len(), "a text was sent again");
    assert_eq!(sent.len() as i64, rows, "each outbox row sent once");
    for to in ["+4915112345679", "+4915112345670"] {
        let alert_texts = sent
            .iter()
            .filter(|m| m["to"] == to && m["body"].as_str().is_some_and(|b| b.contains("/w/")))
            .count();
        assert_eq!(alert_texts, 1, "{to} got the alert text once");
    }
    db.close().await.ok();
}

/// Three nodes started at the same moment on a fresh database: they race on the migrations,
/// and all three come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_together_on_a_fresh_database() {
    let c = Nodes::empty().await;
    let nodes: Vec<Server> = std::thread::scope(|s| {
        let started: Vec<_> = ["a", "b", "c"].iter().map(|n| s.spawn(|| c.node(n, &[]))).collect();
        started.into_iter().map(|h| h.join().expect("node started")).collect()
    });
    for n in &nodes {
        let h: serde_json::Value = reqwest::get(n.http("/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(h["status"], "ok");
    }
}

/// A phone's SOS on a node: started, one fix stored.
async fn sos_with_one_fix(node: &Server, token: &str) -> Ws {
    let mut ws = connect(&node.ws("/v1/phone"), Some(token), None).await.unwrap();
    let start = PhoneMsg::Start { client_id: "sos".into(), audio_mime: None, pressed_at_ms: None };
    send_json(&mut ws, &start).await;
    let fix = alertme_protocol::Fix {
        seq: 1,
        lat: 52.51234,
        lon: 13.41234,
        accuracy_m: 6.0,
        time_ms: now_ms(),
        battery_pct: Some(9),
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
    };
    send_json(&mut ws, &PhoneMsg::Fix { fixes: vec![fix] }).await;
    assert!(acked(&mut ws, 1).await, "the fix was acked");
    ws
}

/// Phones gone silent on 3 nodes: one whose owner stays up is texted about once, by its owner
/// (the others and, after the owner dies, its adopter do not repeat it); one whose owner dies
/// before its silence is due is texted once by the node that adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_text_a_silent_phone_once() {
    let mut c = Nodes::empty().await;
    let twilio = FakeTwilio::start(&[]);
    let ana = c.env.user("Ana", "+4915112345678");
    let bo = c.env.user("Bo", "+4915112345677");
    c.env.cli(&["contact", "add", "--user", "+4915112345678", "--name", "Ben", "--phone", "+4915112345679"]);
    c.env.cli(&["contact", "add", "--user", "+4915112345677", "--name", "Cleo", "--phone", "+4915112345670"]);
    let mut args = twilio.server_args();
    args.extend(["--phone-silent-text-ms".to_owned(), "3000".to_owned()]);
    for name in ["a", "b", "c"] {
        let node = c.node(name, &args);
        c.nodes.push(node);
    }
    let silent_texts = |to: &'static str| {
        let twilio = &twilio;
        async move {
            twilio
                .to(to)
                .await
                .into_iter()
                .filter(|m| m["body"].as_str().is_some_and(|b| b.contains("went silent")))
                .count()
        }
    };
    // Ana's phone on a says one thing and falls silent; a texts Ben.
    let ana_phone = sos_with_one_fix(&c.nodes[0], &ana).await;
    eventually(Duration::from_secs(20), "Ben told Ana's phone went silent", || async {
        (silent_texts("+4915112345679").await > 0).then_some(())
    })
    .await;
    // Bo's phone on a says one thing; a dies before Bo's silence is due.
    let bo_phone = sos_with_one_fix(&c.nodes[0], &bo).await;
    c.nodes[0].kill();
    drop((ana_phone, bo_phone));
    eventually(Duration::from_secs(30), "a's alerts adopted", || async {
        let left = c.env.scalar("SELECT COUNT(*) FROM alert_owners WHERE node_id LIKE 'a~%'").await;
        (left == 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "Cleo told Bo's phone went silent", || async {
        (silent_texts("+4915112345670").await > 0).then_some(())
    })
    .await;
    // Every node had time to repeat a text (3 s of silence, checked each 750 ms).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(silent_texts("+4915112345679").await, 1, "Ben: one silent-phone text");
    assert_eq!(silent_texts("+4915112345670").await, 1, "Cleo: one silent-phone text");
    assert_eq!(c.env.scalar("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'phone_silent'").await, 2);
}

/// A person's safe zone, with the same walk sent to all 3 nodes at once (a phone resending
/// across reconnects, at its worst): the exit raises one alert and one text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_raise_one_alert_for_one_zone_exit() {
    let mut c = Nodes::empty().await;
    let twilio = FakeTwilio::start(&[]);
    let token = c.env.user("Ana", "+4915112345678");
    c.env.cli(&["contact", "add", "--user", "+4915112345678", "--name", "Ben", "--phone", "+4915112345679"]);
    for name in ["a", "b", "c"] {
        let node = c.node(name, &twilio.server_args());
        c.nodes.push(node);
    }
    let track = alertme_client::track::load(&fixture("gps/gps_walk_10min.gpx")).unwrap();
    let start = &track[0];
    let zone = alertme_protocol::Zone {
        id: None,
        name: "Home".into(),
        kind: "safe".into(),
        geometry: json!({"type": "Point", "coordinates": [start.lon, start.lat]}),
        radius_m: Some(150.0),
        inside: None,
    };
    let api = alertme_client::Api::new(&c.nodes[1].http("")).with_token(&token);
    api.add_zone(&zone).await.unwrap();
    // The walk up to a little after it leaves the zone (by the server's own rules): every node
    // gets the crossing, none the long rest of the walk (three nodes checking 600 fixes each
    // took over 10 s on a busy CI machine).
    let shape =
        alertme_server::domain::geozones::Shape::Circle { lat: start.lat, lon: start.lon, radius_m: 150.0 };
    let k = zone_exit(&track, &shape);
    let track: Vec<_> = track[..(k + 10).min(track.len())].to_vec();
    let sends = c.nodes.iter().map(|n| {
        let (url, token, track) = (n.ws("/v1/phone"), token.clone(), track.clone());
        async move {
            let mut phone = connect(&url, Some(&token), None).await.unwrap();
            for f in &track {
                send_json(&mut phone, &PhoneMsg::Track { fix: f.clone() }).await;
            }
            // The pong comes after every track message before it was handled.
            send_json(&mut phone, &PhoneMsg::Ping { t: Some(1) }).await;
            let ponged = tokio::time::timeout(Duration::from_secs(90), async {
                while let Some(Ok(m)) = phone.next().await {
                    if let Message::Text(t) = m {
                        if let Ok(PhoneServerMsg::Pong { .. }) = serde_json::from_str(t.as_str()) {
                            return;
                        }
                    }
                }
                panic!("the phone socket closed before the pong");
            })
            .await;
            assert!(ponged.is_ok(), "no pong within 90 s");
        }
    });
    futures_util::future::join_all(sends).await;
    assert_eq!(c.env.scalar("SELECT COUNT(*) FROM alerts WHERE source = 'geozone'").await, 1, "one alert");
    let alert_texts = || async {
        let m = twilio.to("+4915112345679").await;
        m.into_iter().filter(|m| m["body"].as_str().is_some_and(|b| b.contains("/w/"))).collect::<Vec<_>>()
    };
    let texts = eventually(Duration::from_secs(20), "Ben texted", || async {
        let m = alert_texts().await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alert_texts().await.len(), texts.len(), "texted again");
    assert_eq!(texts.len(), 1, "Ben texted once: {texts:?}");
}

/// `alertme-tools bench … --nodes 3` runs (fan-out, and the storm that kills node n0): a short
/// run so the cluster benchmarks never rot. Numbers go to docs/benchmarks.md, not here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_benchmarks_run() {
    let c = Nodes::empty().await;
    // Each run makes its bench users: a database for each.
    let other = Env::new(Backend::Postgres).await;
    let nats = nats_url();
    let bench = |args: &[&str], env: &Env| {
        let cluster = ["--nodes", "3", "--database-url", &env.url, "--nats-url", &nats, "--no-pin"];
        support::bench(&[args, &cluster[..]].concat())
    };
    let out = bench(&["fanout", "--sessions", "6", "--watchers", "2", "--seconds", "2"], &c.env);
    assert!(out.contains("3 nodes: cpu µs/fr above is all nodes together"), "{out}");
    let out = bench(&["storm", "--sessions", "6", "--watchers", "2", "--seconds", "6"], &other);
    // Phones 0 and 3 were on n0, and the watchers of sessions 1, 2, 4 and 5 whose turn it was.
    assert!(out.contains("after node n0 was killed: its 2 phones resumed in"), "{out}");
    assert!(out.contains("its 4 watchers back in"), "{out}");
    assert!(!out.contains("not within"), "everyone must come back: {out}");
}
