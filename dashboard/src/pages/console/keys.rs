//! The console at the keyboard: j/k move through the list, c takes the alert, r resolves it (asked twice), n writes a note.

use alertme_protocol::{AlertSummary, ResponderCmd};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// What the keys act on.
pub struct Keys {
    /// The alerts' ids in the list's order.
    pub order: Signal<Vec<String>>,
    /// The active alerts.
    pub alerts: RwSignal<Vec<AlertSummary>>,
    /// The selected alert.
    pub selected: RwSignal<Option<String>>,
    /// The alert whose resolve waits for a second press.
    pub confirm: RwSignal<Option<String>>,
    /// Commands to the server.
    pub send: Callback<ResponderCmd>,
}

/// True while the responder types into a field: keys are letters then, not commands.
fn typing(e: &web_sys::KeyboardEvent) -> bool {
    e.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
}

fn focus(selector: &str) {
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(selector).ok().flatten())
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

/// Listens for the console's keys while the board is shown.
pub fn listen(k: Keys) {
    let Keys { order, alerts, selected, confirm, send } = k;
    let handle = window_event_listener(leptos::ev::keydown, move |e| {
        // A held key repeats: never let that be the second press of r.
        if e.ctrl_key() || e.meta_key() || e.alt_key() || e.repeat() {
            return;
        }
        if typing(&e) {
            // Escape leaves the field, so the keys work again.
            if e.key() == "Escape" {
                if let Some(el) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.active_element())
                    .and_then(|a| a.dyn_into::<web_sys::HtmlElement>().ok())
                {
                    let _ = el.blur();
                }
            }
            return;
        }
        let current = selected.get_untracked();
        let ids = order.get_untracked();
        let at = current.as_ref().and_then(|c| ids.iter().position(|x| x == c));
        let step = |by: isize| {
            if ids.is_empty() {
                return;
            }
            let next = match at {
                Some(n) => (n as isize + by).clamp(0, ids.len() as isize - 1) as usize,
                None => 0,
            };
            if current.as_deref() != Some(ids[next].as_str()) {
                selected.set(Some(ids[next].clone()));
            }
        };
        // By the key's place, not its letter: the same keys work with a Russian layout.
        match e.code().as_str() {
            "KeyJ" => step(1),
            "KeyK" => step(-1),
            "KeyC" => {
                let open = current.as_ref().filter(|c| {
                    alerts.with_untracked(|l| {
                        l.iter().any(|a| &a.alert.id == *c && a.alert.claimed_by.is_none())
                    })
                });
                if let Some(id) = open {
                    send.run(ResponderCmd::Claim { alert_id: id.clone() });
                }
            }
            "KeyR" => {
                let Some(id) = current else { return };
                if confirm.get_untracked().as_ref() == Some(&id) {
                    confirm.set(None);
                    send.run(ResponderCmd::Resolve { alert_id: id });
                } else if alerts.with_untracked(|l| l.iter().any(|a| a.alert.id == id)) {
                    confirm.set(Some(id));
                }
            }
            "Escape" => confirm.set(None),
            "KeyN" => {
                // The letter is the command, not the note's first character.
                e.prevent_default();
                focus("[data-testid=detail] [data-testid=note-input]");
            }
            "Slash" => {
                e.prevent_default();
                focus("[data-testid=filter]");
            }
            _ => {}
        }
    });
    on_cleanup(move || handle.remove());
}
