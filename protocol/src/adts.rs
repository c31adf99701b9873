//! ADTS (AAC) frame headers: what the phone app records and what every AlertMe part in
//! `audio/aac` is made of. Shared by the server's demuxer and the clients' pacing.

/// The fields of one ADTS header that matter to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whole frame length, header included.
    pub len: usize,
    /// The stream parameters, which stay constant along a stream.
    pub params: Params,
}

/// The ADTS fields that must stay constant along a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// AAC profile (object type - 1).
    pub profile: u8,
    /// Index into [`SAMPLE_RATES`].
    pub sampling_index: u8,
    /// Channel configuration.
    pub channels: u8,
}

/// Sample rates by `sampling_index`.
pub const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Validates the ADTS header at the start of `b`.
pub fn header(b: &[u8]) -> Option<Header> {
    if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
        return None; // sync word, layer 00
    }
    let protection_absent = b[1] & 1 == 1;
    let sampling_index = (b[2] >> 2) & 0x0F;
    if sampling_index > 12 {
        return None;
    }
    let channels = ((b[2] & 1) << 2) | (b[3] >> 6);
    let len = (((b[3] & 0x03) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] as usize) >> 5);
    let min = if protection_absent { 7 } else { 9 };
    if len <= min {
        return None;
    }
    Some(Header { len, params: Params { profile: b[2] >> 6, sampling_index, channels } })
}

/// Seconds of audio in an ADTS stream (1024 samples a frame), up to its first broken frame.
pub fn duration_secs(stream: &[u8]) -> Option<f64> {
    let mut pos = 0;
    let mut frames = 0u64;
    let mut rate = None;
    while let Some(h) = header(&stream[pos..]) {
        rate = Some(SAMPLE_RATES[h.params.sampling_index as usize]);
        frames += 1;
        pos += h.len;
    }
    rate.map(|r| frames as f64 * 1024.0 / r as f64)
}
