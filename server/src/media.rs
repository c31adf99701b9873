//! Recording containers: which MIME types a phone may send, and where a new recording starts.

/// Largest element or box buffered while looking for its end; anything bigger marks the stream
/// as unparseable for live relay (it is still stored).
pub const MAX_ELEMENT_BYTES: usize = 4 * 1024 * 1024;

/// Longest MIME type a phone may name.
const MAX_MIME_LEN: usize = 100;

/// Codecs a phone may name in its MIME type (browsers' MediaRecorder and the app's AAC, and
/// the video codecs recorders use).
const ACCEPTED_CODECS: &[&str] =
    &["opus", "vorbis", "aac", "mp4a.40.2", "mp4a.40.5", "mp4a.40.29", "mp4a.67", "vp8", "vp9", "avc1"];

/// Whether `codec` is accepted: one of [`ACCEPTED_CODECS`], or an `avc1.PPCCLL` profile string.
fn accepted_codec(codec: &str) -> bool {
    ACCEPTED_CODECS.contains(&codec)
        || codec
            .strip_prefix("avc1.")
            .is_some_and(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        || codec
            .strip_prefix("vp09.")
            .is_some_and(|p| p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Container formats accepted from phones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// AAC in ADTS framing (`audio/aac`): what the mobile app records.
    Adts,
    /// WebM/Matroska (`audio/webm;codecs=opus`): browser MediaRecorder.
    WebM,
    /// Fragmented MP4 (`audio/mp4`): Safari's and Chrome's MediaRecorder.
    Mp4,
    /// Ogg (`audio/ogg`): Firefox's recorder and many apps' files. Accepted in uploads, stored
    /// and played back, but not relayed live (browsers cannot append Ogg to a media source).
    Ogg,
}

impl Container {
    /// Maps a MIME type (parameters allowed) to a container; `None` for anything we do not accept.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "audio/aac" | "audio/aacp" => Some(Self::Adts),
            "audio/webm" | "video/webm" => Some(Self::WebM),
            "audio/mp4" | "video/mp4" => Some(Self::Mp4),
            "audio/ogg" => Some(Self::Ogg),
            _ => None,
        }
    }

    /// The container `bytes` (the first bytes of a file, at least 8 where there are) are in,
    /// from their signature rather than from what a client claims; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(Self::WebM)
        } else if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
            Some(Self::Mp4)
        } else if bytes.starts_with(b"OggS") {
            Some(Self::Ogg)
        } else if alertme_protocol::adts::header(bytes).is_some() {
            Some(Self::Adts)
        } else {
            None
        }
    }

    /// The plain MIME type of this container for a track (`video` for a video recording).
    pub fn mime(self, video: bool) -> &'static str {
        match (self, video) {
            (Self::Adts, _) => "audio/aac",
            (Self::WebM, false) => "audio/webm",
            (Self::WebM, true) => "video/webm",
            (Self::Mp4, false) => "audio/mp4",
            (Self::Mp4, true) => "video/mp4",
            (Self::Ogg, _) => "audio/ogg",
        }
    }

    /// Whether a phone may stream this container live (its units can be found and relayed).
    pub fn is_live(self) -> bool {
        self != Self::Ogg
    }

    /// The MIME type in the one form we store and send back: an accepted container and, if the
    /// phone named them, accepted codecs (`audio/webm;codecs=opus`). Anything else is refused
    /// (`None`), so a stored type can never carry control characters or grow into a huge header.
    pub fn canonical_mime(mime: &str) -> Option<String> {
        if mime.len() > MAX_MIME_LEN {
            return None;
        }
        let mut parts = mime.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        Self::from_mime(&essence)?;
        let mut codecs: Option<Vec<String>> = None;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                if p.trim().is_empty() {
                    continue;
                }
                return None;
            };
            if !k.trim().eq_ignore_ascii_case("codecs") || codecs.is_some() {
                return None;
            }
            let list: Vec<String> =
                v.trim().trim_matches('"').split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
            if list.is_empty() || list.len() > 2 || !list.iter().all(|c| accepted_codec(c)) {
                return None;
            }
            codecs = Some(list);
        }
        Some(match codecs {
            Some(c) => format!("{essence};codecs={}", c.join(",")),
            None => essence,
        })
    }

    /// Where the first whole unit may begin in bytes cut from the middle of a stream: a WebM
    /// Cluster, an MP4 `moof`; ADTS finds its own frame sync. `None` when there is none.
    pub fn first_boundary(self, bytes: &[u8]) -> Option<usize> {
        match self {
            Self::Adts => Some(0),
            Self::WebM => bytes.windows(4).position(|w| w == [0x1F, 0x43, 0xB6, 0x75]),
            Self::Mp4 => bytes.windows(8).enumerate().find_map(|(i, w)| {
                let size = u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize;
                (&w[4..8] == b"moof" && (8..MAX_ELEMENT_BYTES).contains(&size)).then_some(i)
            }),
            Self::Ogg => None,
        }
    }

    /// File extension for stored parts.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Adts => "aac",
            Self::WebM => "webm",
            Self::Mp4 => "mp4",
            Self::Ogg => "ogg",
        }
    }

    /// True when `chunk` begins with a container header, i.e. a recorder (re)started. ADTS has no
    /// header, so a restarted ADTS recorder simply continues the same part.
    pub fn starts_recording(self, chunk: &[u8]) -> bool {
        match self {
            Self::Adts => false,
            Self::WebM => chunk.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
            Self::Mp4 => chunk.len() >= 8 && &chunk[4..8] == b"ftyp",
            Self::Ogg => chunk.starts_with(b"OggS"),
        }
    }
}
