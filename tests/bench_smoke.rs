//! A short run of each benchmark scenario (seconds, small counts), so `alertme-tools bench` never
//! rots.
//! The numbers are not checked here: targets live in docs/benchmarks.md, not in timed tests.

use crate::support::bench;

#[test]
fn fanout_smoke_with_peer() {
    let out = bench(&["fanout", "--sessions", "5", "--watchers", "2", "--seconds", "2", "--peer"]);
    assert!(out.contains("alertme") && out.contains("node-ws") && out.contains("alertme ÷ node-ws"), "{out}");
}

#[test]
fn wide_and_ingest_smoke() {
    let json = std::env::temp_dir().join(format!("alertme-bench-{}.json", std::process::id()));
    let out = bench(&[
        "wide",
        "--sessions",
        "2",
        "--watchers",
        "10",
        "--seconds",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.contains("frames/s"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["reports"][0]["delivered_per_s"].as_f64().unwrap() > 0.0, "{v}");
    let _ = std::fs::remove_file(json);
    let out = bench(&["ingest", "--sessions", "10", "--seconds", "2"]);
    assert!(out.contains("ack latency"), "{out}");
}

#[test]
fn idle_smoke_with_peer() {
    let out = bench(&["idle", "--sockets", "200", "--peer"]);
    assert!(out.contains("idle B/sk"), "{out}");
}

#[test]
fn storm_smoke() {
    let out = bench(&["storm", "--sessions", "5", "--watchers", "2", "--seconds", "6"]);
    assert!(out.contains("after a restart: its 5 phones resumed in"), "{out}");
    assert!(!out.contains("not within"), "everyone must come back: {out}");
}
