//! Finds whole playable units in recorder byte streams (ADTS, WebM, fragmented MP4) without transcoding.
//!
//! Phones send audio cut at arbitrary byte offsets. Watchers must only ever get whole units (a lost
//! half ADTS frame is fatal to a browser's decoder), and a late joiner must start at a point where
//! playback can begin, after the recorder's init segment. The [`Demuxer`] parses just enough of each
//! container to find those boundaries; the stored file always keeps the bytes exactly as received.

use alertme_protocol::adts::Params as AdtsParams;
use bytes::Bytes;

pub use crate::media::Container;

use crate::media::MAX_ELEMENT_BYTES;

/// Longest init segment (WebM header up to the first Cluster, MP4 `ftyp`+`moov`) we collect;
/// a recorder's is a few KiB.
const MAX_INIT_BYTES: usize = 1024 * 1024;

/// A run of whole units, ready to relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The bytes, exactly as the phone sent them.
    pub bytes: Bytes,
    /// Playback may start at the first byte (after the init segment).
    pub sync: bool,
}

/// Incremental unit finder for one stored part.
#[derive(Debug)]
pub struct Demuxer {
    container: Container,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    /// Bytes consumed and dropped from the front of `buf` so far.
    drained: u64,
    init: Option<Bytes>,
    cur: Vec<u8>,
    cur_sync: bool,
    broken: bool,
    adts_lock: Option<AdtsParams>,
    webm: WebmState,
    mp4_after_styp: bool,
    /// A recording with video: its track (WebM track number, MP4 track id and default sample
    /// flags), read from the init segment. Only a unit that begins with a video keyframe is
    /// a point where a late joiner may start.
    video: Option<VideoTrack>,
    /// A unit began (a Cluster) whose first video block was not seen yet: whether it may be
    /// a start is still open, so it is not handed out yet.
    key_pending: bool,
    /// Blocks seen while `key_pending`.
    pending_blocks: u32,
}

/// The video track of a recording, as its init segment names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VideoTrack {
    id: u64,
    /// MP4 `trex` default sample flags.
    default_flags: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebmState {
    /// Before or inside the header, collecting the init segment.
    Header,
    /// Inside the Segment, between top-level children.
    Segment,
    /// Inside a Cluster; `end` is its absolute end when its size is known.
    Cluster { end: Option<u64> },
}

impl Demuxer {
    /// A demuxer at the start of a part.
    pub fn new(container: Container) -> Self {
        Self {
            container,
            buf: Vec::new(),
            pos: 0,
            drained: 0,
            init: None,
            cur: Vec::new(),
            cur_sync: false,
            broken: false,
            adts_lock: None,
            webm: WebmState::Header,
            mp4_after_styp: false,
            video: None,
            key_pending: false,
            pending_blocks: 0,
        }
    }

    /// The container this demuxer parses.
    pub fn container(&self) -> Container {
        self.container
    }

    /// The recorder's init segment (WebM header up to the first Cluster, MP4 `ftyp`+`moov`), once seen.
    pub fn init(&self) -> Option<&Bytes> {
        self.init.as_ref()
    }

    /// False once the stream could not be parsed; bytes are still stored but no longer relayed live.
    pub fn is_healthy(&self) -> bool {
        !self.broken
    }

    /// Feeds the next bytes of the stream and returns the whole units they completed.
    pub fn push(&mut self, data: &[u8]) -> Vec<Unit> {
        if self.broken {
            return Vec::new();
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        match self.container {
            Container::Adts => self.parse_adts(),
            Container::WebM => self.parse_webm(&mut out),
            Container::Mp4 => self.parse_mp4(&mut out),
            // Never streamed (see `Container::is_live`): nothing to relay.
            Container::Ogg => {
                self.broken = true;
                return Vec::new();
            }
        }
        // While the init segment is still being collected, `cur` holds it, not a unit.
        if (self.container == Container::Adts || self.init.is_some()) && !self.key_pending {
            self.flush(&mut out);
        }
        if self.pos > 0 {
            self.drained += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // Bounded whatever a phone sends: an element or unit bigger than any recorder makes, or
        // a "header" that never reaches its first cluster or fragment, ends the live relay.
        let building = if self.init.is_none() && self.container != Container::Adts {
            MAX_INIT_BYTES
        } else {
            MAX_ELEMENT_BYTES
        };
        if self.buf.len() > MAX_ELEMENT_BYTES || self.cur.len() > building {
            tracing::warn!(container = ?self.container, "audio stream unparseable; live relay stops, storage continues");
            self.broken = true;
            self.buf = Vec::new();
            self.cur = Vec::new();
        }
        out
    }

    fn flush(&mut self, out: &mut Vec<Unit>) {
        if !self.cur.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.cur));
            out.push(Unit { bytes, sync: self.cur_sync });
        }
        self.cur_sync = false;
    }

    /// Moves the next `n` bytes into the unit (or init segment) being built.
    fn keep(&mut self, n: usize) {
        self.cur.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
    }

    /// Appends consumed bytes `[pos, pos+n)` to the unit being built; `sync` starts a new unit.
    fn take(&mut self, n: usize, sync: bool, out: &mut Vec<Unit>) {
        if sync {
            self.flush(out);
            self.cur_sync = true;
        }
        self.cur.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
    }

    // --- ADTS ---------------------------------------------------------------------------------

    fn parse_adts(&mut self) {
        loop {
            let rest = &self.buf[self.pos..];
            match self.adts_lock {
                Some(params) => match adts_header(rest) {
                    Some((len, p)) if p == params => {
                        if rest.len() < len {
                            return;
                        }
                        // Every ADTS frame is a valid start, so a unit is as many whole frames as arrived.
                        self.cur_sync |= self.cur.is_empty();
                        self.cur.extend_from_slice(&rest[..len]);
                        self.pos += len;
                    }
                    Some(_) | None if rest.len() < 7 => return,
                    _ => {
                        tracing::debug!("ADTS sync lost; searching");
                        self.adts_lock = None;
                    }
                },
                None => {
                    // Searching: a candidate counts only if the next frame's header follows it exactly.
                    let mut i = 0;
                    loop {
                        if rest.len() < i + 7 {
                            self.pos += i;
                            return;
                        }
                        if let Some((len, p)) = adts_header(&rest[i..]) {
                            if rest.len() < i + len + 7 {
                                self.pos += i;
                                return;
                            }
                            if adts_header(&rest[i + len..]).is_some_and(|(_, q)| q == p) {
                                self.pos += i;
                                self.adts_lock = Some(p);
                                break;
                            }
                        }
                        i += 1;
                    }
                }
            }
        }
    }

    // --- WebM ---------------------------------------------------------------------------------

    fn parse_webm(&mut self, out: &mut Vec<Unit>) {
        loop {
            let rest = &self.buf[self.pos..];
            let Some((id, id_len)) = ebml_id(rest) else { return };
            let Some((size, size_len)) = ebml_size(&rest[id_len..]) else {
                return;
            };
            let head = id_len + size_len;
            let abs = self.absolute_pos();
            match self.webm {
                WebmState::Cluster { end: Some(end) } if abs >= end => {
                    self.webm = WebmState::Segment;
                    self.key_pending = false; // it had no video: not a start
                    continue;
                }
                WebmState::Cluster { .. } if is_segment_child(id) || id == EBML_HEADER => {
                    // An unknown-size Cluster ends where the next top-level element begins.
                    self.webm = WebmState::Segment;
                    self.key_pending = false;
                    continue;
                }
                _ => {}
            }
            match (self.webm, id) {
                (_, EBML_HEADER) => {
                    // A (new) stream header: everything up to the first Cluster is the init segment.
                    if self.init.is_some() {
                        self.init = None;
                    }
                    let Some(n) = size.map(|s| head + s as usize) else {
                        return self.fail("EBML header of unknown size");
                    };
                    if n > MAX_ELEMENT_BYTES {
                        return self.fail("oversized EBML header");
                    }
                    if rest.len() < n {
                        return;
                    }
                    self.flush(out);
                    self.webm = WebmState::Header;
                    self.keep(n);
                }
                (WebmState::Header, SEGMENT) => {
                    self.cur.extend_from_slice(&rest[..head]);
                    self.pos += head;
                    self.webm = WebmState::Segment;
                }
                (WebmState::Segment, CLUSTER) => {
                    if self.init.is_none() {
                        let init = Bytes::from(std::mem::take(&mut self.cur));
                        self.video = webm_video_track(&init).map(|id| VideoTrack { id, default_flags: 0 });
                        self.init = Some(init);
                    }
                    let end = size.map(|s| abs + (head as u64) + s);
                    self.take(head, true, out);
                    if self.video.is_some() {
                        // A start only if its first video block is a keyframe.
                        self.cur_sync = false;
                        self.key_pending = true;
                        self.pending_blocks = 0;
                    }
                    self.webm = WebmState::Cluster { end };
                }
                (WebmState::Header, _) => return self.fail("unexpected element before Segment"),
                (_, _) => {
                    // A whole child element: a block inside a Cluster, or Info/Tracks/Cues beside them.
                    let Some(size) = size else {
                        return self.fail("element of unknown size");
                    };
                    let n = head + size as usize;
                    if n > MAX_ELEMENT_BYTES {
                        return self.fail("oversized element");
                    }
                    if rest.len() < n {
                        return;
                    }
                    if self.init.is_none() {
                        self.cur.extend_from_slice(&rest[..n]);
                        self.pos += n;
                    } else {
                        if let (true, Some(v)) = (self.key_pending, self.video) {
                            match (id, simple_block(&rest[head..n])) {
                                (SIMPLE_BLOCK, Some((track, key))) if track == v.id => {
                                    self.key_pending = false;
                                    self.cur_sync = key;
                                }
                                // Audio, or something else, before any video: not a start;
                                // after a few, the unit goes out rather than wait.
                                _ => {
                                    self.pending_blocks += 1;
                                    if self.pending_blocks >= MAX_PENDING_BLOCKS {
                                        self.key_pending = false;
                                    }
                                }
                            }
                        }
                        self.take(n, false, out);
                    }
                }
            }
        }
    }

    fn absolute_pos(&self) -> u64 {
        // Only differences of absolute positions matter, so count what was drained plus pos.
        self.drained + self.pos as u64
    }

    fn fail(&mut self, why: &str) {
        tracing::warn!(container = ?self.container, why, "audio stream unparseable; live relay stops, storage continues");
        self.broken = true;
    }

    // --- fragmented MP4 -----------------------------------------------------------------------

    fn parse_mp4(&mut self, out: &mut Vec<Unit>) {
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < 8 {
                return;
            }
            let size32 = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as u64;
            let kind: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
            let size = match size32 {
                0 => return self.fail("MP4 box extending to end of file"),
                1 => {
                    if rest.len() < 16 {
                        return;
                    }
                    u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"))
                }
                s => s,
            };
            if size < 8 || size as usize > MAX_ELEMENT_BYTES {
                return self.fail("bad MP4 box size");
            }
            let n = size as usize;
            if rest.len() < n {
                return;
            }
            match &kind {
                b"ftyp" => {
                    self.flush(out);
                    self.init = None;
                    self.keep(n);
                }
                b"moof" | b"styp" if self.init.is_none() || !self.mp4_after_styp => {
                    if self.init.is_none() {
                        let init = Bytes::from(std::mem::take(&mut self.cur));
                        self.video = mp4_video_track(&init);
                        self.init = Some(init);
                    }
                    self.mp4_after_styp = &kind == b"styp";
                    let key = self.mp4_key(&kind, &rest[..n]);
                    self.take(n, true, out);
                    // After a `styp`, the next `moof` decides; until then it is no start.
                    self.cur_sync = key.unwrap_or(false);
                    self.key_pending = key.is_none();
                }
                b"moof" if self.key_pending => {
                    // After a `styp`: this fragment decides whether the unit may be a start.
                    let key = self.mp4_key(&kind, &rest[..n]);
                    self.key_pending = false;
                    self.cur_sync = key.unwrap_or(false);
                    self.mp4_after_styp = false;
                    self.take(n, false, out);
                }
                _ if self.init.is_none() => {
                    self.cur.extend_from_slice(&rest[..n]);
                    self.pos += n;
                }
                _ => {
                    self.mp4_after_styp = false;
                    self.take(n, false, out);
                }
            }
        }
    }
}

impl Demuxer {
    /// Whether an MP4 `moof` begins with a video sync sample: `None` for a `styp` (the next
    /// `moof` decides), `Some(true)` for any unit of a recording without video.
    fn mp4_key(&self, kind: &[u8; 4], moof: &[u8]) -> Option<bool> {
        let Some(v) = self.video else { return Some(true) };
        if kind != b"moof" {
            return None;
        }
        let head = if moof.get(0..4) == Some(&[0, 0, 0, 1]) { 16 } else { 8 };
        Some(moof.get(head..).and_then(|body| mp4_first_sample_sync(body, v)).unwrap_or(false))
    }
}

const EBML_HEADER: u32 = 0x1A45_DFA3;
const SIMPLE_BLOCK: u32 = 0xA3;
/// Blocks of a Cluster waited through for its first video block (audio leads video by a
/// few blocks in a recorder's cluster).
const MAX_PENDING_BLOCKS: u32 = 16;

/// The elements of an EBML master's body: `(id, payload)` pairs; an unknown size (a live
/// Segment) runs to the end.
fn ebml_children(mut b: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        let (id, il) = ebml_id(b)?;
        let (size, sl) = ebml_size(&b[il..])?;
        let start = il + sl;
        let end = match size {
            Some(s) => start.checked_add(usize::try_from(s).ok()?)?.min(b.len()),
            None => b.len(),
        };
        let payload = b.get(start..end)?;
        b = &b[end..];
        Some((id, payload))
    })
}

/// An EBML unsigned integer.
fn ebml_uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |acc, &x| (acc << 8) | x as u64)
}

/// The track number of the video track (TrackType 1) in a WebM init segment.
fn webm_video_track(init: &[u8]) -> Option<u64> {
    let (_, segment) = ebml_children(init).find(|(id, _)| *id == SEGMENT)?;
    let (_, tracks) = ebml_children(segment).find(|(id, _)| *id == 0x1654_AE6B)?;
    ebml_children(tracks).filter(|(id, _)| *id == 0xAE).find_map(|(_, entry)| {
        let field = |want: u32| ebml_children(entry).find(|(id, _)| *id == want).map(|(_, p)| ebml_uint(p));
        (field(0x83) == Some(1)).then(|| field(0xD7)).flatten()
    })
}

/// A SimpleBlock's track number and keyframe flag.
fn simple_block(body: &[u8]) -> Option<(u64, bool)> {
    let first = *body.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || body.len() < len + 3 {
        return None;
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let track = body[1..len].iter().fold((first & mask) as u64, |acc, &x| (acc << 8) | x as u64);
    Some((track, body[len + 2] & 0x80 != 0))
}

/// The boxes of an MP4 box body: `(type, payload)` pairs.
fn mp4_boxes(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes(b[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = b[4..8].try_into().ok()?;
        let (head, size) = match size {
            1 => (16, usize::try_from(u64::from_be_bytes(b.get(8..16)?.try_into().ok()?)).ok()?),
            0 => (8, b.len()),
            s => (8, s),
        };
        if size < head || size > b.len() {
            return None;
        }
        let payload = &b[head..size];
        b = &b[size..];
        Some((kind, payload))
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The video track (handler `vide`) of an MP4 init segment, with its `trex` default flags.
fn mp4_video_track(init: &[u8]) -> Option<VideoTrack> {
    let (_, moov) = mp4_boxes(init).find(|(k, _)| k == b"moov")?;
    let id = mp4_boxes(moov).filter(|(k, _)| k == b"trak").find_map(|(_, trak)| {
        let (_, tkhd) = mp4_boxes(trak).find(|(k, _)| k == b"tkhd")?;
        let id = be32(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })?;
        let (_, mdia) = mp4_boxes(trak).find(|(k, _)| k == b"mdia")?;
        let (_, hdlr) = mp4_boxes(mdia).find(|(k, _)| k == b"hdlr")?;
        (hdlr.get(8..12)? == b"vide").then_some(id)
    })?;
    let default_flags = mp4_boxes(moov)
        .find(|(k, _)| k == b"mvex")
        .and_then(|(_, mvex)| {
            mp4_boxes(mvex).filter(|(k, _)| k == b"trex").find(|(_, t)| be32(t, 4) == Some(id))
        })
        .and_then(|(_, trex)| be32(trex, 20))
        .unwrap_or(0);
    Some(VideoTrack { id: id as u64, default_flags })
}

/// Whether the first sample of the video track in a `moof` body is a sync sample; `None`
/// when the fragment holds none of it.
fn mp4_first_sample_sync(moof: &[u8], v: VideoTrack) -> Option<bool> {
    let (_, traf) = mp4_boxes(moof).filter(|(k, _)| k == b"traf").find(|(_, traf)| {
        mp4_boxes(traf).any(|(k, tfhd)| &k == b"tfhd" && be32(tfhd, 4).map(u64::from) == Some(v.id))
    })?;
    let (_, tfhd) = mp4_boxes(traf).find(|(k, _)| k == b"tfhd")?;
    let tf = be32(tfhd, 0)? & 0x00FF_FFFF;
    let mut at = 8;
    for (bit, len) in [(0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4)] {
        if tf & bit != 0 {
            at += len;
        }
    }
    let default = if tf & 0x20 != 0 { be32(tfhd, at)? } else { v.default_flags };
    let (_, trun) = mp4_boxes(traf).find(|(k, _)| k == b"trun")?;
    let rf = be32(trun, 0)? & 0x00FF_FFFF;
    let mut at = 8 + if rf & 0x1 != 0 { 4 } else { 0 };
    let flags = if rf & 0x4 != 0 {
        be32(trun, at)?
    } else if rf & 0x400 != 0 {
        at += 4 * [0x100, 0x200].iter().filter(|b| rf & **b != 0).count();
        be32(trun, at)?
    } else {
        default
    };
    // sample_is_non_sync_sample
    Some(flags & 0x0001_0000 == 0)
}
const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;

/// Level-1 children of a Segment: seeing one inside an unknown-size Cluster ends the Cluster.
fn is_segment_child(id: u32) -> bool {
    matches!(
        id,
        CLUSTER
            | 0x114D_9B74
            | 0x1549_A966
            | 0x1654_AE6B
            | 0x1C53_BB6B
            | 0x1043_A770
            | 0x1254_C367
            | 0x1941_A469
    )
}

/// Reads an EBML element id (marker bits kept, 1-4 bytes).
fn ebml_id(b: &[u8]) -> Option<(u32, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 || b.len() < len {
        return None;
    }
    Some((b[..len].iter().fold(0u32, |acc, &x| (acc << 8) | x as u32), len))
}

/// Reads an EBML size vint (1-8 bytes); `None` inside means "unknown size".
fn ebml_size(b: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *b.first()?;
    if first == 0 {
        return Some((Some(u64::MAX), 1)); // invalid; caught as oversized by callers
    }
    let len = first.leading_zeros() as usize + 1;
    if b.len() < len {
        return None;
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut v = (first & mask) as u64;
    for &x in &b[1..len] {
        v = (v << 8) | x as u64;
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((if v == all_ones { None } else { Some(v) }, len))
}

/// Validates an ADTS header and returns the frame length and stream parameters.
fn adts_header(b: &[u8]) -> Option<(usize, AdtsParams)> {
    alertme_protocol::adts::header(b).map(|h| (h.len, h.params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn endless_headers_and_units_stay_bounded() {
        // A WebM header (EBML + Segment of unknown size) followed by 10 MB of Void elements and
        // never a Cluster: the init segment is not collected without bound.
        let mut d = Demuxer::new(Container::WebM);
        let mut head = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
        head.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        d.push(&head);
        // Void (0xEC) of 16,382 bytes (size as a 2-byte vint).
        let mut void = vec![0xEC, 0x7F, 0xFE];
        void.extend(std::iter::repeat_n(0u8, 0x3FFE));
        for _ in 0..640 {
            d.push(&void);
            assert!(d.buf.len() + d.cur.len() <= MAX_ELEMENT_BYTES + void.len() + MAX_INIT_BYTES);
        }
        assert!(!d.is_healthy(), "10 MB of header ends the relay");
    }

    #[test]
    fn mime_types_are_allow_listed_and_canonical() {
        let c = Container::canonical_mime;
        assert_eq!(c("audio/aac").as_deref(), Some("audio/aac"));
        assert_eq!(c("Audio/WebM; codecs=\"OPUS\"").as_deref(), Some("audio/webm;codecs=opus"));
        assert_eq!(c("audio/mp4;codecs=mp4a.40.2").as_deref(), Some("audio/mp4;codecs=mp4a.40.2"));
        assert_eq!(c("audio/aac\r\nX-Evil: 1"), None, "a header injection is refused");
        assert_eq!(c("audio/webm;codecs=opus\u{7}"), None, "a control character is refused");
        assert_eq!(c(&format!("audio/webm;codecs={}", "opus,".repeat(12_000))), None, "60 KB is refused");
        assert_eq!(c("audio/webm;codecs=h264"), None, "unknown codecs are refused");
        assert_eq!(c("audio/webm;rate=1"), None, "unknown parameters are refused");
        assert_eq!(c("text/html"), None);
        assert_eq!(c("video/webm;codecs=vp8,opus").as_deref(), Some("video/webm;codecs=vp8,opus"));
        assert_eq!(
            c("video/mp4;codecs=avc1.42E01E,mp4a.40.2").as_deref(),
            Some("video/mp4;codecs=avc1.42e01e,mp4a.40.2")
        );
        assert_eq!(c("video/mp4;codecs=avc1.42E01E\"x"), None);
    }

    #[test]
    fn containers_are_told_by_their_first_bytes() {
        let s = Container::sniff;
        let read = |p: &str| std::fs::read(fixture(p)).unwrap();
        assert_eq!(s(&read("speech_aac128k.aac")), Some(Container::Adts));
        assert_eq!(s(&read("mr_webm_concat.webm")), Some(Container::WebM));
        assert_eq!(s(&read("speech_opus32k.ogg")), Some(Container::Ogg));
        assert_eq!(s(&read("mr_mp4_concat.mp4")), Some(Container::Mp4));
        assert_eq!(s(b"RIFF\x24\0\0\0WAVEfmt "), None, "WAV is not taken");
        assert_eq!(s(b"ID3\x04\0\0\0\0\0\0"), None, "nor MP3");
        assert_eq!(s(b""), None);
    }

    fn fixture(p: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/audio").join(p)
    }

    fn chunks(dir: &str) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(fixture(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        names.sort();
        names.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Feeds chunks and checks that init + units rebuild the stream byte for byte.
    fn rebuilds(container: Container, chunks: &[Vec<u8>]) -> (Demuxer, Vec<Unit>) {
        let mut d = Demuxer::new(container);
        let mut units = Vec::new();
        for c in chunks {
            units.extend(d.push(c));
        }
        assert!(d.is_healthy());
        let mut all = d.init().map(|b| b.to_vec()).unwrap_or_default();
        for u in &units {
            all.extend_from_slice(&u.bytes);
        }
        // A Cluster whose first video frame has not come yet is held (the stream may end there).
        all.extend_from_slice(&d.cur);
        let fed = chunks.concat();
        assert!(all == fed, "init + units ({} B) must equal the stream ({} B)", all.len(), fed.len());
        (d, units)
    }

    fn video(p: &str) -> Vec<u8> {
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/video").join(p))
            .unwrap()
    }

    /// Recordings with video: the track is found in the init segment, and a unit is a start
    /// exactly when the video's first frame in it is a keyframe (some units begin with one,
    /// some do not, in both fixtures).
    #[test]
    fn video_units_start_only_at_keyframes() {
        for (container, name) in
            [(Container::WebM, "sos_vp8_opus.webm"), (Container::Mp4, "sos_avc1_aac.mp4")]
        {
            let bytes = video(name);
            let cs: Vec<Vec<u8>> = bytes.chunks(9_000).map(<[u8]>::to_vec).collect();
            let (d, units) = rebuilds(container, &cs);
            let v = d.video.unwrap_or_else(|| panic!("{name}: the video track is found"));
            let starts: Vec<bool> = units
                .iter()
                .filter_map(|u| match container {
                    Container::WebM => {
                        ebml_children(&u.bytes[..]).find(|(id, _)| *id == CLUSTER).map(|(_, cluster)| {
                            let first = ebml_children(cluster)
                                .filter(|(id, _)| *id == SIMPLE_BLOCK)
                                .find_map(|(_, b)| simple_block(b).filter(|(t, _)| *t == v.id));
                            (u.sync, first.is_some_and(|(_, key)| key))
                        })
                    }
                    _ => mp4_boxes(&u.bytes[..])
                        .find(|(k, _)| k == b"moof")
                        .map(|(_, moof)| (u.sync, mp4_first_sample_sync(moof, v).unwrap_or(false))),
                })
                .map(|(sync, key)| {
                    assert_eq!(sync, key, "{name}: a unit is a start exactly when it begins with a keyframe");
                    sync
                })
                .collect();
            assert!(starts.iter().filter(|s| **s).count() >= 10, "{name}: {starts:?}");
            assert!(starts.iter().any(|s| !*s), "{name}: the fixture has fragments that begin mid-GOP");
        }
        // Audio-only recordings are unchanged: every cluster and fragment is a start.
        let (d, units) = rebuilds(Container::WebM, &chunks("chunks/mediarecorder_webm"));
        assert!(d.video.is_none() && units.iter().filter(|u| u.sync).count() > 1);
    }

    #[test]
    fn adts_chunks_cut_mid_frame_give_whole_frames() {
        let cs = chunks("chunks/adts_32k_arbitrary");
        let (_, units) = rebuilds(Container::Adts, &cs);
        assert!(units.len() > 100);
        for u in &units {
            assert!(u.sync);
            let (len, _) = adts_header(&u.bytes).expect("unit starts on a frame");
            assert!(len <= u.bytes.len());
        }
        let whole = std::fs::read(fixture("speech_aac32k.aac")).unwrap();
        assert_eq!(cs.concat(), whole);
        let secs = alertme_protocol::adts::duration_secs(&whole).unwrap();
        assert!((secs - 41.6).abs() < 0.5, "{secs}");
    }

    #[test]
    fn adts_resyncs_after_garbage_without_false_sync() {
        let whole = std::fs::read(fixture("speech_aac32k.aac")).unwrap();
        let mut d = Demuxer::new(Container::Adts);
        let mut junk = vec![0xFFu8, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC, 1, 2, 3];
        junk.extend_from_slice(&whole[..5000]);
        let units = d.push(&junk);
        let got: Vec<u8> = units.iter().flat_map(|u| u.bytes.to_vec()).collect();
        assert!(got.len() > 4000 && whole.starts_with(&got), "garbage must be skipped, frames kept");
    }

    #[test]
    fn webm_mediarecorder_chunks_give_init_and_cluster_units() {
        let cs = chunks("chunks/mediarecorder_webm");
        let (d, units) = rebuilds(Container::WebM, &cs);
        let init = d.init().unwrap();
        assert!(init.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        assert!(init.len() < 400, "{}", init.len());
        assert!(units.iter().filter(|u| u.sync).count() > 5);
        for u in units.iter().filter(|u| u.sync) {
            assert_eq!(&u.bytes[..4], &[0x1F, 0x43, 0xB6, 0x75], "sync units start at a Cluster");
        }
        assert!(Container::WebM.starts_recording(&cs[0]));
        assert!(!Container::WebM.starts_recording(&cs[1]));
    }

    #[test]
    fn mp4_mediarecorder_chunks_give_init_and_fragments() {
        let cs = chunks("chunks/mediarecorder_mp4");
        let (d, units) = rebuilds(Container::Mp4, &cs);
        assert_eq!(d.init().unwrap().len(), cs[0].len(), "chunk 0 is exactly the init segment");
        for u in units.iter().filter(|u| u.sync) {
            assert_eq!(&u.bytes[4..8], b"moof");
        }
        assert!(Container::Mp4.starts_recording(&cs[0]));
    }

    #[test]
    fn byte_by_byte_feeding_matches() {
        let cs = chunks("chunks/mediarecorder_webm");
        let bytes: Vec<Vec<u8>> = cs.concat().chunks(7).map(|c| c.to_vec()).collect();
        rebuilds(Container::WebM, &bytes);
    }

    #[test]
    fn mime_mapping() {
        assert_eq!(Container::from_mime("audio/webm;codecs=opus"), Some(Container::WebM));
        assert_eq!(Container::from_mime("audio/AAC"), Some(Container::Adts));
        assert_eq!(Container::from_mime("audio/mp4; codecs=\"mp4a.40.2\""), Some(Container::Mp4));
        assert_eq!(Container::from_mime("audio/ogg;codecs=opus"), Some(Container::Ogg));
        assert_eq!(Container::from_mime("audio/x-wav"), None);
    }
}
