//! Fallback for browsers whose MediaSource cannot take raw AAC (Firefox): decode the ADTS
//! frames with WebCodecs and schedule the PCM on an AudioContext, with a small jitter buffer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    AudioContext, AudioData, AudioDataCopyToOptions, AudioDecoder, AudioDecoderConfig, AudioDecoderInit,
    AudioSampleFormat, EncodedAudioChunk, EncodedAudioChunkInit, EncodedAudioChunkType,
};

/// Audio is scheduled this far ahead of the context clock (seconds): absorbs network jitter.
const JITTER_S: f64 = 0.25;
/// Further ahead than this, playback is behind live: drop the lead and start near live again.
const MAX_AHEAD_S: f64 = 2.5;

const RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// True when this browser has WebCodecs' `AudioDecoder`.
pub fn available() -> bool {
    web_sys::window().is_some_and(|w| js_sys::Reflect::has(&w, &"AudioDecoder".into()).unwrap_or(false))
}

/// ADTS frame length and (sample rate, channels) of the frame starting at `b`.
fn adts(b: &[u8]) -> Option<(usize, u32, u32)> {
    if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
        return None;
    }
    let rate = *RATES.get(((b[2] >> 2) & 0x0F) as usize)?;
    let channels = (((b[2] & 1) << 2) | (b[3] >> 6)) as u32;
    let len = (((b[3] & 0x03) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] as usize) >> 5);
    (len > 7 && len <= b.len()).then_some((len, rate, channels.max(1)))
}

struct Inner {
    ctx: AudioContext,
    decoder: RefCell<Option<AudioDecoder>>,
    next_time: Cell<f64>,
    timestamp_us: Cell<f64>,
    frames: Cell<u32>,
    on_decoded: Box<dyn Fn(u32)>,
}

/// Decodes and plays ADTS units.
#[derive(Clone)]
pub struct AdtsPlayer {
    inner: Rc<Inner>,
}

impl AdtsPlayer {
    /// A player on a new AudioContext; `on_decoded` hears the running count of decoded frames.
    pub fn new(on_decoded: impl Fn(u32) + 'static) -> Result<Self, JsValue> {
        Ok(Self {
            inner: Rc::new(Inner {
                ctx: AudioContext::new()?,
                decoder: RefCell::new(None),
                next_time: Cell::new(0.0),
                timestamp_us: Cell::new(0.0),
                frames: Cell::new(0),
                on_decoded: Box::new(on_decoded),
            }),
        })
    }

    /// Browsers start audio contexts suspended until the user acts: call from a click.
    pub fn resume(&self) {
        let _ = self.inner.ctx.resume();
    }

    fn decoder(&self, rate: u32, channels: u32) -> Option<AudioDecoder> {
        if let Some(d) = self.inner.decoder.borrow().as_ref() {
            return Some(d.clone());
        }
        let me = self.clone();
        let output = Closure::<dyn FnMut(AudioData)>::new(move |data: AudioData| me.play(data));
        let error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            web_sys::console::warn_2(&"audio decoder error".into(), &e);
        });
        let init = AudioDecoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref());
        output.forget();
        error.forget();
        let decoder = AudioDecoder::new(&init).ok()?;
        // One ADTS frame per chunk needs no description (the header carries the config).
        decoder.configure(&AudioDecoderConfig::new("mp4a.40.2", channels, rate)).ok()?;
        *self.inner.decoder.borrow_mut() = Some(decoder.clone());
        Some(decoder)
    }

    /// Decodes the whole ADTS frames of a unit.
    pub fn push(&self, unit: &[u8]) {
        let mut pos = 0;
        while let Some((len, rate, channels)) = adts(&unit[pos..]) {
            let Some(decoder) = self.decoder(rate, channels) else { return };
            let frame = js_sys::Uint8Array::from(&unit[pos..pos + len]);
            let init = EncodedAudioChunkInit::new(&frame, 0, EncodedAudioChunkType::Key);
            init.set_timestamp_f64(self.inner.timestamp_us.get());
            self.inner.timestamp_us.set(self.inner.timestamp_us.get() + 1024.0 * 1_000_000.0 / rate as f64);
            if let Ok(chunk) = EncodedAudioChunk::new(&init) {
                let _ = decoder.decode(&chunk);
            }
            pos += len;
        }
    }

    fn play(&self, data: AudioData) {
        let ctx = &self.inner.ctx;
        let (frames, channels, rate) =
            (data.number_of_frames(), data.number_of_channels(), data.sample_rate());
        let Ok(buffer) = ctx.create_buffer(channels, frames, rate) else { return data.close() };
        for ch in 0..channels {
            let opts = AudioDataCopyToOptions::new(ch);
            opts.set_format(AudioSampleFormat::F32Planar);
            let pcm = js_sys::Float32Array::new_with_length(frames);
            if data.copy_to_with_buffer_source(&pcm, &opts).is_ok() {
                let mut v = pcm.to_vec();
                let _ = buffer.copy_to_channel(&mut v, ch as i32);
            }
        }
        data.close();
        let Ok(source) = ctx.create_buffer_source() else { return };
        source.set_buffer(Some(&buffer));
        let _ = source.connect_with_audio_node(&ctx.destination());
        let now = ctx.current_time();
        let mut at = self.inner.next_time.get();
        if at < now + 0.02 || at > now + MAX_AHEAD_S {
            at = now + JITTER_S;
        }
        let _ = source.start_with_when(at);
        self.inner.next_time.set(at + frames as f64 / rate as f64);
        self.inner.frames.set(self.inner.frames.get() + 1);
        (self.inner.on_decoded)(self.inner.frames.get());
    }
}
