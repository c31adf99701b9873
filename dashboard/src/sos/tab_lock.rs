//! One AlertMe phone per browser: tabs share the IndexedDB outbox and its seq counters, so only
//! the tab holding a Web Lock may stream; another tab waits and takes over when it closes.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

const NAME: &str = "alertme-phone";

/// Asks for the lock (only if free when `if_available`). `Some(true)`: held until the page goes
/// away; `Some(false)`: another tab has it; `None`: this browser has no Web Locks.
pub async fn acquire(if_available: bool) -> Option<bool> {
    let nav = web_sys::window()?.navigator();
    let locks = js_sys::Reflect::get(&nav, &"locks".into()).ok().filter(|l| !l.is_undefined())?;
    let request =
        js_sys::Reflect::get(&locks, &"request".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
    let (tx, rx) = futures::channel::oneshot::channel::<bool>();
    let mut tx = Some(tx);
    let callback = Closure::<dyn FnMut(JsValue) -> js_sys::Promise>::new(move |lock: JsValue| {
        let got = !lock.is_null() && !lock.is_undefined();
        if let Some(tx) = tx.take() {
            let _ = tx.send(got);
        }
        if got {
            // Never settles: the lock is held for the life of the page.
            js_sys::Promise::new(&mut |_, _| {})
        } else {
            js_sys::Promise::resolve(&JsValue::UNDEFINED)
        }
    });
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"ifAvailable".into(), &JsValue::from_bool(if_available));
    request.call3(&locks, &JsValue::from_str(NAME), &options, callback.as_ref()).ok()?;
    // The lock lives as long as the page; so does its callback.
    callback.forget();
    rx.await.ok()
}
