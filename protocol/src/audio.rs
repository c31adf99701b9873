//! Binary frame headers: audio chunks from the phone, init segments and audio units to watchers.

/// Kind byte of a phone → server audio chunk.
pub const KIND_PHONE_AUDIO: u8 = 0x01;
/// Kind byte of a server → watcher init segment.
pub const KIND_INIT: u8 = 0x02;
/// Kind byte of a server → watcher audio unit.
pub const KIND_UNIT: u8 = 0x03;

/// Length of the phone chunk header: kind (1), flags (1), seq (8, big-endian).
pub const PHONE_HEADER_LEN: usize = 10;
/// Length of the watcher frame header: kind (1), flags (1), part (2), ev (8), all big-endian.
pub const WATCH_HEADER_LEN: usize = 12;
/// Watcher flag: playback may start at this unit (an ADTS frame, a WebM cluster, an fMP4 fragment).
pub const FLAG_SYNC: u8 = 0x01;

/// Why a phone binary frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than the header plus one byte of audio.
    TooShort,
    /// The first byte is not a known kind.
    UnknownKind(u8),
    /// Sequence numbers start at 1.
    ZeroSeq,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "binary frame shorter than its 10-byte header plus audio"),
            Self::UnknownKind(k) => write!(f, "unknown binary frame kind 0x{k:02x}"),
            Self::ZeroSeq => write!(f, "audio seq starts at 1"),
        }
    }
}

/// Builds a phone audio chunk frame.
pub fn encode_phone_chunk(seq: u64, audio: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(PHONE_HEADER_LEN + audio.len());
    v.push(KIND_PHONE_AUDIO);
    v.push(0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(audio);
    v
}

/// Splits a phone audio chunk frame into its seq and audio bytes.
pub fn decode_phone_chunk(frame: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    if frame.len() <= PHONE_HEADER_LEN {
        return Err(FrameError::TooShort);
    }
    if frame[0] != KIND_PHONE_AUDIO {
        return Err(FrameError::UnknownKind(frame[0]));
    }
    let seq = u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes"));
    if seq == 0 {
        return Err(FrameError::ZeroSeq);
    }
    Ok((seq, &frame[PHONE_HEADER_LEN..]))
}

/// Header of a watcher binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchHeader {
    /// `KIND_INIT` or `KIND_UNIT`.
    pub kind: u8,
    /// `FLAG_SYNC` or 0.
    pub flags: u8,
    /// Audio part.
    pub part: u16,
    /// Event number (0 for init segments).
    pub ev: u64,
}

impl WatchHeader {
    /// Serializes the header followed by `payload`.
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(WATCH_HEADER_LEN + payload.len());
        v.push(self.kind);
        v.push(self.flags);
        v.extend_from_slice(&self.part.to_be_bytes());
        v.extend_from_slice(&self.ev.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Parses a watcher frame into header and payload.
    pub fn parse(frame: &[u8]) -> Option<(Self, &[u8])> {
        if frame.len() < WATCH_HEADER_LEN {
            return None;
        }
        let h = Self {
            kind: frame[0],
            flags: frame[1],
            part: u16::from_be_bytes([frame[2], frame[3]]),
            ev: u64::from_be_bytes(frame[4..12].try_into().ok()?),
        };
        Some((h, &frame[WATCH_HEADER_LEN..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_chunk_round_trips() {
        let f = encode_phone_chunk(7, b"abc");
        assert_eq!(decode_phone_chunk(&f), Ok((7, &b"abc"[..])));
        assert_eq!(decode_phone_chunk(&f[..10]), Err(FrameError::TooShort));
        let mut bad = f.clone();
        bad[0] = 9;
        assert_eq!(decode_phone_chunk(&bad), Err(FrameError::UnknownKind(9)));
        assert_eq!(decode_phone_chunk(&encode_phone_chunk(0, b"x")), Err(FrameError::ZeroSeq));
    }

    #[test]
    fn watch_header_round_trips() {
        let h = WatchHeader { kind: KIND_UNIT, flags: FLAG_SYNC, part: 3, ev: 99 };
        let f = h.frame(b"xy");
        assert_eq!(WatchHeader::parse(&f), Some((h, &b"xy"[..])));
    }
}
