//! Live audio through MediaSource: init segment and whole units are appended as they arrive,
//! playback stays near the live edge and jumps over gaps.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlMediaElement, MediaSource, SourceBuffer, SourceBufferAppendMode, Url};

/// Playback further than this behind the newest audio jumps forward (seconds).
const MAX_LAG_S: f64 = 2.5;
/// ... to this far behind it.
const TARGET_LAG_S: f64 = 0.4;
/// Audio older than this behind playback is removed so memory stays bounded (seconds).
const KEEP_BEHIND_S: f64 = 60.0;

/// What the player can do in this browser for the alert's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Not known yet (no audio so far).
    Unknown,
    /// MediaSource takes the format.
    Live,
    /// MediaSource cannot, but WebCodecs decodes it (ADTS on Firefox).
    Decoder,
    /// This browser cannot play the format live.
    Unsupported,
}

/// The MediaSource type for a stream, with codecs (browsers refuse types without them).
pub fn mse_type(mime: &str, init: Option<&[u8]>) -> Option<String> {
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "audio/aac" => Some("audio/aac".into()),
        "audio/webm" => Some("audio/webm; codecs=\"opus\"".into()),
        // A recording with video names its codecs (the phone's MIME type, kept canonical).
        "video/webm" => Some(format!("video/webm; codecs=\"{}\"", codecs(mime).unwrap_or("vp8,opus"))),
        "video/mp4" => {
            Some(format!("video/mp4; codecs=\"{}\"", codecs(mime).unwrap_or("avc1.42e01e,mp4a.40.2")))
        }
        "audio/mp4" => {
            // MediaRecorder writes Opus (Chrome) or AAC (Safari) into MP4: look at the init segment.
            let opus = init.is_some_and(|b| b.windows(4).any(|w| w == b"Opus"));
            Some(if opus { "audio/mp4; codecs=\"opus\"" } else { "audio/mp4; codecs=\"mp4a.40.2\"" }.into())
        }
        _ => None,
    }
}

/// The `codecs` parameter of a MIME type.
fn codecs(mime: &str) -> Option<&str> {
    mime.split(';').find_map(|p| p.trim().strip_prefix("codecs=")).map(|c| c.trim_matches('"'))
}

struct State {
    audio: HtmlMediaElement,
    source: Option<MediaSource>,
    buffer: Option<SourceBuffer>,
    queue: VecDeque<Vec<u8>>,
    part: Option<u16>,
    mime: String,
    init: Option<Vec<u8>>,
    support: Support,
    /// A snapshot restarts the stream: the next init or unit begins a fresh MediaSource.
    fresh: bool,
    on_support: Rc<dyn Fn(Support)>,
    on_first_audio: Option<Box<dyn FnOnce()>>,
    on_decoded: Rc<dyn Fn(u32)>,
    decoder: Option<crate::watch::webcodecs::AdtsPlayer>,
    /// `?audio=webcodecs` in the page URL: use the decoder even where MediaSource would do.
    force_decoder: bool,
}

/// Feeds one media element (a `<video>`, which plays audio-only recordings too) from the
/// watch socket's media frames.
#[derive(Clone)]
pub struct Player {
    st: Rc<RefCell<State>>,
}

impl Player {
    /// A player for `audio`; `on_support` hears whether live audio works here, `on_first_audio`
    /// when the first audio was buffered.
    pub fn new(
        audio: HtmlMediaElement,
        on_support: impl Fn(Support) + 'static,
        on_first_audio: impl FnOnce() + 'static,
        on_decoded: impl Fn(u32) + 'static,
    ) -> Self {
        let force_decoder = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .is_some_and(|q| q.contains("audio=webcodecs"));
        let p = Self {
            st: Rc::new(RefCell::new(State {
                audio: audio.clone(),
                source: None,
                buffer: None,
                queue: VecDeque::new(),
                part: None,
                mime: String::new(),
                init: None,
                support: Support::Unknown,
                fresh: true,
                on_support: Rc::new(on_support),
                on_first_audio: Some(Box::new(on_first_audio)),
                on_decoded: Rc::new(on_decoded),
                decoder: None,
                force_decoder,
            })),
        };
        // Stalled at a gap (a lost stretch): jump to where audio continues.
        let me = p.clone();
        let waiting = Closure::<dyn FnMut()>::new(move || me.skip_gap());
        audio.set_onwaiting(Some(waiting.as_ref().unchecked_ref()));
        waiting.forget();
        p
    }

    /// A snapshot or new part announces the format; the frames that follow start a fresh stream.
    pub fn begin(&self, part: u16, mime: &str) {
        let mut st = self.st.borrow_mut();
        st.part = Some(part);
        st.mime = mime.to_owned();
        st.init = None;
        st.queue.clear();
        st.fresh = true;
    }

    /// An init segment (WebM/MP4) for the current part.
    pub fn init(&self, part: u16, bytes: Vec<u8>) {
        {
            let mut st = self.st.borrow_mut();
            if st.part != Some(part) {
                return;
            }
            st.init = Some(bytes.clone());
            st.fresh = true;
            st.queue.clear();
        }
        self.push(part, bytes);
    }

    /// The user pressed play: start the decoder's audio context, if that is what plays.
    pub fn resume(&self) {
        if let Some(d) = &self.st.borrow().decoder {
            d.resume();
        }
    }

    /// Whole audio units.
    pub fn push(&self, part: u16, bytes: Vec<u8>) {
        let fresh = {
            let mut st = self.st.borrow_mut();
            if st.part != Some(part) || st.support == Support::Unsupported {
                return;
            }
            if st.support == Support::Decoder && !st.fresh {
                if let Some(d) = &st.decoder {
                    d.push(&bytes);
                }
                return;
            }
            st.queue.push_back(bytes);
            std::mem::replace(&mut st.fresh, false)
        };
        if fresh {
            self.restart();
        } else {
            self.pump();
        }
    }

    /// Starts a new MediaSource for the current part; queued bytes go in once it opens.
    fn restart(&self) {
        let (ty, audio) = {
            let st = self.st.borrow();
            (mse_type(&st.mime, st.init.as_deref()), st.audio.clone())
        };
        let supported = ty.as_deref().is_some_and(MediaSource::is_type_supported);
        let on_support = self.st.borrow().on_support.clone();
        let adts = ty.as_deref() == Some("audio/aac");
        if adts && (!supported || self.st.borrow().force_decoder) && crate::watch::webcodecs::available() {
            self.start_decoder(on_support);
            return;
        }
        if !supported {
            self.st.borrow_mut().support = Support::Unsupported;
            on_support(Support::Unsupported);
            return;
        }
        let ty = ty.expect("checked");
        let Ok(source) = MediaSource::new() else { return };
        let Ok(url) = Url::create_object_url_with_source(&source) else { return };
        let me = self.clone();
        let onopen = Closure::once_into_js(move || {
            let source = me.st.borrow().source.clone();
            let Some(source) = source else { return };
            let Ok(buffer) = source.add_source_buffer(&ty) else { return };
            if ty == "audio/aac" {
                // ADTS carries no timestamps: let the browser lay frames end to end.
                buffer.set_mode(SourceBufferAppendMode::Sequence);
            }
            let again = me.clone();
            let onupdate = Closure::<dyn FnMut()>::new(move || {
                again.keep_live();
                again.pump();
            });
            buffer.set_onupdateend(Some(onupdate.as_ref().unchecked_ref()));
            onupdate.forget();
            me.st.borrow_mut().buffer = Some(buffer);
            me.pump();
        });
        source.set_onsourceopen(Some(onopen.unchecked_ref()));
        {
            let mut st = self.st.borrow_mut();
            st.buffer = None;
            st.source = Some(source);
            st.support = Support::Live;
        }
        on_support(Support::Live);
        audio.set_src(&url);
    }

    /// Plays ADTS through WebCodecs: everything queued now, and every unit after.
    fn start_decoder(&self, on_support: Rc<dyn Fn(Support)>) {
        let mut st = self.st.borrow_mut();
        if st.decoder.is_none() {
            let cb = st.on_decoded.clone();
            st.decoder = crate::watch::webcodecs::AdtsPlayer::new(move |n| cb(n)).ok();
        }
        let Some(decoder) = st.decoder.clone() else {
            st.support = Support::Unsupported;
            drop(st);
            return on_support(Support::Unsupported);
        };
        st.support = Support::Decoder;
        for unit in st.queue.drain(..) {
            decoder.push(&unit);
        }
        let first = st.on_first_audio.take();
        drop(st);
        on_support(Support::Decoder);
        if let Some(cb) = first {
            cb();
        }
    }

    /// Appends the next queued chunk when the buffer is idle.
    fn pump(&self) {
        let mut st = self.st.borrow_mut();
        let Some(buffer) = st.buffer.clone() else { return };
        if buffer.updating() {
            return;
        }
        let now = st.audio.current_time();
        if let Ok(r) = buffer.buffered() {
            if r.length() > 0 && r.start(0).unwrap_or(0.0) < now - KEEP_BEHIND_S && !st.audio.paused() {
                let _ = buffer.remove(0.0, now - KEEP_BEHIND_S / 2.0);
                return;
            }
        }
        let Some(mut bytes) = st.queue.pop_front() else { return };
        if buffer.append_buffer_with_u8_array(&mut bytes).is_err() {
            // Quota or a decode error: start over from the next sync point.
            st.queue.clear();
            st.fresh = true;
            return;
        }
        if let Some(cb) = st.on_first_audio.take() {
            drop(st);
            cb();
        }
    }

    /// Stays near the live edge, and starts at the first buffered time (late joiners).
    fn keep_live(&self) {
        let st = self.st.borrow();
        let Some(buffer) = &st.buffer else { return };
        let Ok(r) = buffer.buffered() else { return };
        if r.length() == 0 {
            return;
        }
        let start = r.start(0).unwrap_or(0.0);
        let end = r.end(r.length() - 1).unwrap_or(0.0);
        let now = st.audio.current_time();
        if now < start {
            st.audio.set_current_time(start);
        } else if !st.audio.paused() && end - now > MAX_LAG_S {
            st.audio.set_current_time(end - TARGET_LAG_S);
        }
    }

    fn skip_gap(&self) {
        let st = self.st.borrow();
        let Some(buffer) = &st.buffer else { return };
        let Ok(r) = buffer.buffered() else { return };
        let now = st.audio.current_time();
        for i in 0..r.length() {
            let s = r.start(i).unwrap_or(0.0);
            if s > now {
                st.audio.set_current_time(s + 0.01);
                return;
            }
        }
    }
}
