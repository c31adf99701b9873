//! How live events, console updates and snapshots travel between nodes: NATS headers and bytes.

use async_nats::HeaderMap;
use bytes::{BufMut, Bytes, BytesMut};

use crate::live::{Frame, Published};

/// Header: the node that sent a message (nodes skip their own broadcasts).
pub const NODE: &str = "Am-Node";
const EPOCH: &str = "Am-Epoch";
const FENCE: &str = "Am-Fence";
const EV: &str = "Am-Ev";
const UNIT: &str = "Am-Unit";
const KIND: &str = "Am-Kind";
/// Header: the person a phone message is for.
pub const USER: &str = "Am-User";

/// An owner's event as a NATS message: headers and the frame's bytes, unchanged.
pub fn event_headers(node: &str, p: &Published) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(NODE, node);
    h.insert(EPOCH, p.epoch.as_str());
    h.insert(FENCE, p.fence.to_string().as_str());
    h.insert(EV, p.ev.to_string().as_str());
    h.insert(KIND, kind(&p.frame));
    if let Some(u) = p.unit {
        h.insert(UNIT, u.to_string().as_str());
    }
    h
}

/// An event back from its NATS message; `None` for anything malformed.
pub fn event(alert_id: &str, headers: Option<&HeaderMap>, payload: Bytes) -> Option<Published> {
    let h = headers?;
    let get = |k: &str| h.get(k).map(|v| v.as_str().to_owned());
    Some(Published {
        alert_id: alert_id.to_owned(),
        epoch: get(EPOCH)?,
        fence: get(FENCE)?.parse().ok()?,
        ev: get(EV)?.parse().ok()?,
        frame: frame(&get(KIND)?, payload)?,
        unit: match get(UNIT) {
            Some(u) => Some(u.parse().ok()?),
            None => None,
        },
    })
}

/// A snapshot reply's header: the fence of the owner that took it.
pub fn fence_header(fence: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(FENCE, fence.to_string().as_str());
    h
}

/// The fence of a snapshot reply (0 when missing).
pub fn fence_of(headers: Option<&HeaderMap>) -> i64 {
    headers.and_then(|h| h.get(FENCE)).and_then(|v| v.as_str().parse().ok()).unwrap_or(0)
}

/// A position as a handing-over owner states it: `EPOCH EV`.
pub fn position_text(payload: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (epoch, ev) = text.split_once(' ')?;
    Some((epoch.to_owned(), ev.parse().ok()?))
}

/// The epoch and number of an event from its headers (what a new owner continues from).
pub fn position(headers: &HeaderMap) -> Option<(String, u64)> {
    let epoch = headers.get(EPOCH)?.as_str().to_owned();
    let ev = headers.get(EV)?.as_str().parse().ok()?;
    Some((epoch, ev))
}

fn kind(f: &Frame) -> &'static str {
    match f {
        Frame::Text(_) => "t",
        Frame::Binary(_) => "b",
    }
}

/// A frame from its kind and bytes. Text must be UTF-8: it goes to browsers as a text frame.
pub fn frame(kind: &str, payload: Bytes) -> Option<Frame> {
    match kind {
        "t" if std::str::from_utf8(&payload).is_ok() => Some(Frame::Text(payload)),
        "b" => Some(Frame::Binary(payload)),
        _ => None,
    }
}

/// Snapshot frames in one message: for each, its kind (`t`/`b`), its length (u32, big-endian)
/// and its bytes.
pub fn frames_to_bytes(frames: &[Frame]) -> Bytes {
    let mut out = BytesMut::with_capacity(frames.iter().map(|f| f.len() + 5).sum());
    for f in frames {
        out.put_u8(kind(f).as_bytes()[0]);
        out.put_u32(f.len() as u32);
        out.put_slice(f.bytes());
    }
    out.freeze()
}

/// The frames of [`frames_to_bytes`]; `None` if the bytes are not such a list.
pub fn frames_from_bytes(mut b: Bytes) -> Option<Vec<Frame>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 5 {
            return None;
        }
        let kind = char::from(b[0]).to_string();
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let _ = b.split_to(5);
        if b.len() < len {
            return None;
        }
        out.push(frame(&kind, b.split_to(len))?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_frame_lists_round_trip() {
        let p = Published {
            alert_id: "a".into(),
            epoch: "e1".into(),
            fence: 3,
            ev: 42,
            frame: Frame::Binary(Bytes::from_static(b"\x01\x02")),
            unit: Some(7),
        };
        let h = event_headers("n1", &p);
        assert_eq!(event("a", Some(&h), p.frame.bytes().clone()), Some(p.clone()));
        assert_eq!(position(&h), Some(("e1".into(), 42)));
        let frames = vec![Frame::Text(Bytes::from_static(b"{}")), p.frame.clone()];
        assert_eq!(frames_from_bytes(frames_to_bytes(&frames)), Some(frames));
        assert_eq!(frames_from_bytes(Bytes::from_static(b"t\0\0\0\x09{}")), None, "cut short");
        assert_eq!(frame("t", Bytes::from_static(b"\xff")), None, "text must be UTF-8");
    }
}
