//! The phone's sensors as a browser offers them: position (`watchPosition`), the microphone
//! (`MediaRecorder`, chunks every 250 ms) and the battery level.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    BatteryManager, Blob, BlobEvent, GeolocationPosition, GeolocationPositionError, MediaRecorder,
    MediaRecorderOptions, MediaStream, MediaStreamConstraints, MediaStreamTrack, PositionOptions,
    RecordingState,
};

/// Recorder formats in order of preference (docs/protocol.md accepts WebM/Opus and MP4; Ogg is
/// offered last and the server answers `unsupported_audio`, so the SOS then runs without audio).
pub const AUDIO_FORMATS: [&str; 3] = ["audio/webm;codecs=opus", "audio/mp4", "audio/ogg;codecs=opus"];

/// Recorder formats with the camera on, in order of preference (the server relays each live).
pub const VIDEO_FORMATS: [&str; 3] =
    ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/mp4;codecs=avc1.42e01e,mp4a.40.2"];

/// Video within a bad cellular link's reach (the issue's bound is 300 kbit/s with the audio).
const VIDEO_BITS_PER_SECOND: u32 = 250_000;

/// Milliseconds of audio per chunk: small enough that a watcher hears the person within a
/// second, large enough that headers stay a small share of the bytes.
pub const TIMESLICE_MS: i32 = 250;

/// Speech needs little: 32 kbit/s Opus is clear and 4 KiB/s on a bad cellular link.
const AUDIO_BITS_PER_SECOND: u32 = 32_000;

/// A position as the browser reported it (the SOS engine adds the seq).
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub time_ms: i64,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
    pub altitude_m: Option<f64>,
}

/// How a sensor is doing, for the page to explain.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorState {
    /// Not needed now.
    Off,
    /// Asked the browser; no answer yet.
    Waiting,
    /// Working (a detail for the tests' probe, not shown: the format recorded, or the first
    /// position's accuracy).
    Working(String),
    /// The person (or the browser's settings) refused permission.
    Denied,
    /// The device cannot (no GPS fix, no microphone, unsupported browser): the id of the
    /// message that says so, in `locales/*/sos.ftl`.
    Unavailable(&'static str),
}

/// What the sensors report.
pub enum Reading {
    Position(Position),
    PositionState(SensorState),
    Audio(Blob),
    MicState(SensorState),
    /// The recorder stopped after `Mic::finish`; its last data came before this.
    MicFinished,
}

/// A running `watchPosition`; cleared on drop.
pub struct Geo {
    id: i32,
    _ok: Closure<dyn FnMut(GeolocationPosition)>,
    _err: Closure<dyn FnMut(GeolocationPositionError)>,
}

impl Geo {
    /// Watches the position; `high_accuracy` for an SOS (GPS), coarse for check-in timers.
    pub fn watch(high_accuracy: bool, on: impl Fn(Reading) + Clone + 'static) -> Option<Self> {
        let geo = web_sys::window()?.navigator().geolocation().ok();
        let Some(geo) = geo else {
            on(Reading::PositionState(SensorState::Unavailable("sos-location-unsupported")));
            return None;
        };
        let on_ok = on.clone();
        let ok = Closure::<dyn FnMut(GeolocationPosition)>::new(move |p: GeolocationPosition| {
            let c = p.coords();
            on_ok(Reading::Position(Position {
                lat: c.latitude(),
                lon: c.longitude(),
                accuracy_m: c.accuracy(),
                time_ms: p.timestamp() as i64,
                speed_mps: c.speed().filter(|v| v.is_finite()),
                heading_deg: c.heading().filter(|v| v.is_finite() && (0.0..360.0).contains(v)),
                altitude_m: c.altitude().filter(|v| v.is_finite()),
            }));
        });
        let err = Closure::<dyn FnMut(GeolocationPositionError)>::new(move |e: GeolocationPositionError| {
            on(Reading::PositionState(match e.code() {
                GeolocationPositionError::PERMISSION_DENIED => SensorState::Denied,
                // The watch goes on after these: a position may still come.
                _ => SensorState::Unavailable("sos-location-searching"),
            }));
        });
        let opts = PositionOptions::new();
        opts.set_enable_high_accuracy(high_accuracy);
        opts.set_maximum_age(if high_accuracy { 0 } else { 60_000 });
        opts.set_timeout(30_000);
        let id = geo.watch_position_with_error_callback_and_options(
            ok.as_ref().unchecked_ref(),
            Some(err.as_ref().unchecked_ref()),
            &opts,
        );
        Some(Self { id, _ok: ok, _err: err })
    }
}

impl Drop for Geo {
    fn drop(&mut self) {
        if let Some(g) = web_sys::window().and_then(|w| w.navigator().geolocation().ok()) {
            g.clear_watch(self.id);
        }
    }
}

/// The first recorder format this browser supports.
pub fn pick_audio_format() -> Option<&'static str> {
    AUDIO_FORMATS.into_iter().find(|m| MediaRecorder::is_type_supported(m))
}

/// The first recorder format with video this browser supports.
pub fn pick_video_format() -> Option<&'static str> {
    VIDEO_FORMATS.into_iter().find(|m| MediaRecorder::is_type_supported(m))
}

/// The microphone being recorded; stops (and releases the microphone) on drop.
pub struct Mic {
    recorder: MediaRecorder,
    stream: MediaStream,
    _data: Closure<dyn FnMut(BlobEvent)>,
    _stop: Closure<dyn FnMut()>,
}

impl Mic {
    /// Asks for the microphone (and with `camera`, the rear camera where there is one) and
    /// records it in `mime`, handing out a chunk every `TIMESLICE_MS`. Reports problems
    /// (denied, no device) through `on` and returns `None`.
    pub async fn start(mime: &str, camera: bool, on: impl Fn(Reading) + Clone + 'static) -> Option<Self> {
        on(Reading::MicState(SensorState::Waiting));
        // With the camera a failure need not be the microphone's: the engine tries again with
        // sound only, and that try tells what became of the microphone.
        let failed = |s: SensorState| {
            if !camera {
                on(Reading::MicState(s));
            }
        };
        let devices = web_sys::window().and_then(|w| w.navigator().media_devices().ok());
        let Some(devices) = devices else {
            failed(SensorState::Unavailable("sos-mic-unsupported"));
            return None;
        };
        let constraints = MediaStreamConstraints::new();
        constraints.set_audio(&JsValue::TRUE);
        if camera {
            // Small and slow: what a relative needs to see, within a bad link's reach.
            let video = js_sys::JSON::parse(
                r#"{"facingMode":{"ideal":"environment"},"width":{"ideal":640},"height":{"ideal":480},"frameRate":{"ideal":15,"max":15}}"#,
            )
            .unwrap_or(JsValue::TRUE);
            constraints.set_video(&video);
        }
        let stream = match devices.get_user_media_with_constraints(&constraints) {
            Ok(p) => JsFuture::from(p).await,
            Err(e) => Err(e),
        };
        let stream: MediaStream = match stream {
            Ok(s) => s.unchecked_into(),
            Err(e) => {
                let name = js_sys::Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string());
                failed(match name.as_deref() {
                    Some("NotAllowedError") | Some("SecurityError") => SensorState::Denied,
                    Some("NotFoundError") => SensorState::Unavailable("sos-mic-none"),
                    _ => SensorState::Unavailable("sos-mic-failed"),
                });
                return None;
            }
        };
        let opts = MediaRecorderOptions::new();
        opts.set_mime_type(mime);
        opts.set_audio_bits_per_second(AUDIO_BITS_PER_SECOND);
        if camera {
            opts.set_video_bits_per_second(VIDEO_BITS_PER_SECOND);
        }
        let recorder = match MediaRecorder::new_with_media_stream_and_media_recorder_options(&stream, &opts) {
            Ok(r) => r,
            Err(_) => {
                stop_tracks(&stream);
                web_sys::console::warn_1(&format!("AlertMe: cannot record {mime}").into());
                failed(SensorState::Unavailable("sos-mic-failed"));
                return None;
            }
        };
        let on_data = on.clone();
        let data = Closure::<dyn FnMut(BlobEvent)>::new(move |e: BlobEvent| {
            if let Some(b) = e.data().filter(|b| b.size() > 0.0) {
                on_data(Reading::Audio(b));
            }
        });
        recorder.set_ondataavailable(Some(data.as_ref().unchecked_ref()));
        let on_stop = on.clone();
        let stop = Closure::<dyn FnMut()>::new(move || on_stop(Reading::MicFinished));
        recorder.set_onstop(Some(stop.as_ref().unchecked_ref()));
        if recorder.start_with_time_slice(TIMESLICE_MS).is_err() {
            stop_tracks(&stream);
            failed(SensorState::Unavailable("sos-mic-failed"));
            return None;
        }
        on(Reading::MicState(SensorState::Working(mime.to_owned())));
        Some(Self { recorder, stream, _data: data, _stop: stop })
    }

    /// Stops recording cleanly: the recorder hands out its last data (which completes the
    /// container) and then reports `MicFinished`.
    pub fn finish(&self) {
        if self.recorder.state() != RecordingState::Inactive {
            let _ = self.recorder.stop();
        }
        stop_tracks(&self.stream);
    }
}

fn stop_tracks(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        if let Ok(t) = t.dyn_into::<MediaStreamTrack>() {
            t.stop();
        }
    }
}

impl Drop for Mic {
    fn drop(&mut self) {
        self.recorder.set_ondataavailable(None);
        self.recorder.set_onstop(None);
        if self.recorder.state() != RecordingState::Inactive {
            let _ = self.recorder.stop();
        }
        stop_tracks(&self.stream);
    }
}

/// The battery, where the browser tells (Chromium does; Safari and Firefox do not).
pub async fn battery() -> Option<BatteryManager> {
    let nav = web_sys::window()?.navigator();
    let f = js_sys::Reflect::get(&nav, &"getBattery".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
    let p = f.call0(&nav).ok()?.dyn_into::<js_sys::Promise>().ok()?;
    JsFuture::from(p).await.ok()?.dyn_into::<BatteryManager>().ok()
}
