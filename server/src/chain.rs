//! The evidence hash chain: the canonical bytes of each stored fix and media chunk, and how they link.
//!
//! An alert's chain starts at its start record: `h_0 = SHA-256(c_0)`. Every fix and media chunk
//! stored for it adds `h_n = SHA-256(h_{n-1} ‖ c_n)`, in the order they were committed. `c_n` is
//! compact JSON with its fields in a fixed order (docs/evidence.md lists them); an export carries
//! each `c_n` verbatim, so a verifier in any language hashes bytes and never re-encodes numbers.
//! Floats are written by `serde_json` (shortest round-trip form), with -0.0 written as 0.0: SQLite
//! stores whole-valued reals as integers and would hand back 0.0.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A chain hash.
pub type Hash = [u8; 32];

/// The record an alert's chain is anchored at.
#[derive(Debug, Clone, Serialize)]
pub struct Start<'a> {
    /// Always "start".
    pub kind: &'static str,
    /// Format version of the canonical records.
    pub v: u32,
    /// Alert id.
    pub alert: &'a str,
    /// The person's id.
    pub user: &'a str,
    /// The device that raised it.
    pub device: &'a str,
    /// The phone's id for the alert (or the server's, for timer and geozone alerts).
    pub client_id: &'a str,
    /// Server time the alert started, ms since the epoch.
    pub started_at: i64,
}

impl<'a> Start<'a> {
    /// The start record of an alert.
    pub fn new(alert: &'a str, user: &'a str, device: &'a str, client_id: &'a str, started_at: i64) -> Self {
        Self { kind: "start", v: 1, alert, user, device, client_id, started_at }
    }
}

/// A stored fix, as it is hashed.
#[derive(Debug, Clone, Serialize)]
pub struct FixRecord {
    /// Always "fix".
    pub kind: &'static str,
    /// The phone's fix number.
    pub seq: i64,
    /// Degrees.
    pub lat: f64,
    /// Degrees.
    pub lon: f64,
    /// Metres.
    pub accuracy_m: f64,
    /// When the phone took it (device clock), ms.
    pub device_time: i64,
    /// Percent.
    pub battery_pct: Option<i64>,
    /// m/s.
    pub speed_mps: Option<f64>,
    /// Degrees from north.
    pub heading_deg: Option<f64>,
    /// Metres.
    pub altitude_m: Option<f64>,
    /// When the server stored it, ms.
    pub received_at: i64,
}

/// A stored media chunk, as it is hashed (its bytes enter through their SHA-256).
#[derive(Debug, Clone, Serialize)]
pub struct MediaRecord<'a> {
    /// The track: "audio".
    pub kind: &'a str,
    /// Recording part the chunk belongs to.
    pub part: i64,
    /// The phone's chunk number.
    pub seq: i64,
    /// Where it starts in its part, bytes.
    pub offset: i64,
    /// Its length, bytes.
    pub len: i64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: &'a str,
    /// When the server stored it, ms.
    pub received_at: i64,
}

/// -0.0 as 0.0 (see the module note).
fn pos0(x: f64) -> f64 {
    x + 0.0
}

impl FixRecord {
    /// The record of a fix row's values.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seq: i64,
        lat: f64,
        lon: f64,
        accuracy_m: f64,
        device_time: i64,
        battery_pct: Option<i64>,
        speed_mps: Option<f64>,
        heading_deg: Option<f64>,
        altitude_m: Option<f64>,
        received_at: i64,
    ) -> Self {
        Self {
            kind: "fix",
            seq,
            lat: pos0(lat),
            lon: pos0(lon),
            accuracy_m: pos0(accuracy_m),
            device_time,
            battery_pct,
            speed_mps: speed_mps.map(pos0),
            heading_deg: heading_deg.map(pos0),
            altitude_m: altitude_m.map(pos0),
            received_at,
        }
    }
}

/// Canonical bytes of a record.
pub fn canonical<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).expect("plain records serialize")
}

/// `h_0` of a start record's canonical bytes.
pub fn anchor(c0: &str) -> Hash {
    Sha256::digest(c0.as_bytes()).into()
}

/// `h_n` from `h_{n-1}` and item n's canonical bytes.
pub fn link(prev: &Hash, c: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(c.as_bytes());
    h.finalize().into()
}

/// A hash as lowercase hex (how it is stored and exported).
pub fn hex(h: &Hash) -> String {
    ::hex::encode(h)
}

/// A stored hash back from hex.
pub fn parse(s: &str) -> Option<Hash> {
    ::hex::decode(s).ok()?.try_into().ok()
}

/// The message a seal signs: the alert, how many items the chain had and its head then.
pub fn seal_message(alert: &str, items: i64, head: &str, signed_at: i64) -> String {
    format!("alertme-seal-v1\n{alert}\n{items}\n{head}\n{signed_at}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_stable_and_minus_zero_is_zero() {
        let f = FixRecord::new(3, 52.5, -0.0, 5.0, 1_700_000_000_000, Some(80), None, Some(-0.0), None, 7);
        assert_eq!(
            canonical(&f),
            r#"{"kind":"fix","seq":3,"lat":52.5,"lon":0.0,"accuracy_m":5.0,"device_time":1700000000000,"battery_pct":80,"speed_mps":null,"heading_deg":0.0,"altitude_m":null,"received_at":7}"#
        );
        let s = Start::new("a1", "u1", "d1", "c1", 9);
        assert_eq!(
            canonical(&s),
            r#"{"kind":"start","v":1,"alert":"a1","user":"u1","device":"d1","client_id":"c1","started_at":9}"#
        );
        // Changing any byte changes the link.
        let h0 = anchor(&canonical(&s));
        assert_ne!(link(&h0, &canonical(&f)), link(&h0, &canonical(&f).replace("52.5", "52.6")));
        assert_eq!(parse(&hex(&h0)), Some(h0));
    }
}
