//! A WebSocket that reconnects with backoff and hands text and binary frames to callbacks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// What the socket tells its owner.
pub enum Event {
    /// The socket opened.
    Open,
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The socket closed with this code; return whether to reconnect.
    Closed(u16),
}

/// Handle on a reconnecting socket; dropping it does not close it, `close()` does.
#[derive(Clone)]
pub struct Socket {
    inner: Rc<Inner>,
}

struct Inner {
    url: Box<dyn Fn() -> String>,
    handler: Box<dyn Fn(Event) -> bool>,
    ws: RefCell<Option<WebSocket>>,
    closed: Cell<bool>,
    backoff_ms: Cell<i32>,
    first_backoff_ms: i32,
    max_backoff_ms: i32,
    /// When the current connection opened (ms since page load).
    opened_at: Cell<Option<f64>>,
}

/// A connection that lasted this long was healthy: the next retry starts from the first delay.
/// A server that accepts and then fails at once (storage down, 4503) must see the delay grow,
/// not a reconnect storm from every phone.
const HEALTHY_MS: f64 = 10_000.0;

impl Socket {
    /// Opens `url()` (called again on every reconnect, so it can carry resume state). `handler`
    /// gets every event; on `Closed` it returns true to reconnect.
    pub fn open(url: impl Fn() -> String + 'static, handler: impl Fn(Event) -> bool + 'static) -> Self {
        Self::open_with_backoff(url, handler, 250, 5_000)
    }

    /// Like `open`, with the reconnect delay starting at `first_ms` and doubling up to `max_ms`
    /// (phones reconnect faster than viewers: 50 ms to 2 s, docs/protocol.md).
    pub fn open_with_backoff(
        url: impl Fn() -> String + 'static,
        handler: impl Fn(Event) -> bool + 'static,
        first_ms: i32,
        max_ms: i32,
    ) -> Self {
        let s = Self {
            inner: Rc::new(Inner {
                url: Box::new(url),
                handler: Box::new(handler),
                ws: RefCell::new(None),
                closed: Cell::new(false),
                backoff_ms: Cell::new(first_ms),
                first_backoff_ms: first_ms,
                max_backoff_ms: max_ms,
                opened_at: Cell::new(None),
            }),
        };
        s.connect();
        s
    }

    /// Sends a text frame if connected.
    pub fn send(&self, text: &str) -> bool {
        self.inner
            .ws
            .borrow()
            .as_ref()
            .is_some_and(|ws| ws.ready_state() == WebSocket::OPEN && ws.send_with_str(text).is_ok())
    }

    /// Bytes sent but not yet handed to the network (0 when not connected).
    pub fn buffered_amount(&self) -> u32 {
        self.inner.ws.borrow().as_ref().map_or(0, |ws| ws.buffered_amount())
    }

    /// Sends a binary frame if connected.
    pub fn send_binary(&self, bytes: &[u8]) -> bool {
        self.inner
            .ws
            .borrow()
            .as_ref()
            .is_some_and(|ws| ws.ready_state() == WebSocket::OPEN && ws.send_with_u8_array(bytes).is_ok())
    }

    /// Closes for good.
    pub fn close(&self) {
        self.inner.closed.set(true);
        if let Some(ws) = self.inner.ws.borrow_mut().take() {
            let _ = ws.close();
        }
    }

    fn connect(&self) {
        if self.inner.closed.get() {
            return;
        }
        let Ok(ws) = WebSocket::new(&(self.inner.url)()) else {
            self.retry();
            return;
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let me = self.clone();
        let onopen = Closure::<dyn FnMut()>::new(move || {
            me.inner.opened_at.set(Some(crate::api::since_navigation_ms()));
            (me.inner.handler)(Event::Open);
        });
        let me = self.clone();
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            if let Some(t) = data.as_string() {
                (me.inner.handler)(Event::Text(t));
            } else if let Ok(buf) = data.dyn_into::<js_sys::ArrayBuffer>() {
                (me.inner.handler)(Event::Binary(js_sys::Uint8Array::new(&buf).to_vec()));
            }
        });
        let me = self.clone();
        let onclose = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            me.inner.ws.borrow_mut().take();
            if me.inner.opened_at.take().is_some_and(|t| crate::api::since_navigation_ms() - t >= HEALTHY_MS)
            {
                me.inner.backoff_ms.set(me.inner.first_backoff_ms);
            }
            if (me.inner.handler)(Event::Closed(e.code())) && !me.inner.closed.get() {
                me.retry();
            }
        });
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        // The socket lives as long as the page; so do its callbacks.
        onopen.forget();
        onmessage.forget();
        onclose.forget();
        *self.inner.ws.borrow_mut() = Some(ws);
    }

    /// Reconnects after the current delay, with jitter (half to all of it, so phones cut off
    /// together do not come back together), and doubles the delay up to the maximum.
    fn retry(&self) {
        let full = self.inner.backoff_ms.get();
        let delay = full / 2 + (js_sys::Math::random() * f64::from(full / 2 + 1)) as i32;
        self.inner.backoff_ms.set((full * 2).min(self.inner.max_backoff_ms));
        let me = self.clone();
        let cb = Closure::once_into_js(move || me.connect());
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), delay);
        }
    }
}
