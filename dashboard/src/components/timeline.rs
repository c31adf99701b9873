//! The alert's story at a glance: triggered, contacts notified, responder on it, resolved.

use alertme_protocol::{AlertInfo, AlertStatus, Delivery};
use leptos::prelude::*;

/// "14:02:31" in the browser's local time.
pub fn clock(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!("{:02}:{:02}:{:02}", d.get_hours(), d.get_minutes(), d.get_seconds())
}

fn delivery_label(d: &Delivery) -> String {
    let state = match d.status.as_str() {
        "pending" | "sending" => "sending…",
        "queued" => "sent to carrier",
        "sent" => "sent",
        "delivered" => "delivered",
        "undelivered" => "not delivered",
        "failed" => "failed",
        "opted_out" => "opted out",
        other => other,
    };
    match (d.opened, d.revoked) {
        (_, true) => format!("{} — {state}, link withdrawn", d.contact),
        (true, false) => format!("{} — {state}, opened the link", d.contact),
        (false, false) => format!("{} — {state}", d.contact),
    }
}

/// Timeline of one alert.
#[component]
pub fn Timeline(
    /// The alert.
    #[prop(into)]
    alert: Signal<Option<AlertInfo>>,
    /// Contacts' texts.
    #[prop(into)]
    deliveries: Signal<Vec<Delivery>>,
    /// Withdraws a contact's link (by contact id); offered on the console only.
    #[prop(default = None)]
    revoke: Option<Callback<String>>,
) -> impl IntoView {
    view! {
        <ol class="timeline" data-testid="timeline">
            {move || alert.get().map(|a| view! { <li class="done">"SOS raised " {clock(a.started_ms)}</li> })}
            {move || {
                let d = deliveries.get();
                (!d.is_empty()).then(|| {
                    let items = d
                        .iter()
                        .map(|x| {
                            let button = match (revoke, x.contact_id.clone(), x.revoked) {
                                (Some(cb), Some(id), false) => Some(view! {
                                    <button class="small" data-testid="revoke-link" on:click=move |_| cb.run(id.clone())>
                                        "Withdraw link"
                                    </button>
                                }),
                                _ => None,
                            };
                            view! { <li class="sub">{delivery_label(x)} " " {button}</li> }
                        })
                        .collect::<Vec<_>>();
                    view! {
                        <li class="done">{format!("{} contact(s) notified", d.len())}</li>
                        {items}
                    }
                })
            }}
            {move || alert.get().and_then(|a| match a.claimed_by {
                Some(r) => Some(view! { <li class="done" data-testid="claimed">{format!("{r} is on it")}</li> }.into_any()),
                // Only while it is on: after the end nobody is waiting any more.
                None if a.status == AlertStatus::Active => {
                    Some(view! { <li class="waiting" data-testid="waiting">"Waiting for a responder"</li> }.into_any())
                }
                None => None,
            })}
            {move || alert.get().and_then(|a| {
                let label = match a.status {
                    AlertStatus::Active => return None,
                    AlertStatus::Resolved => "Resolved",
                    AlertStatus::Cancelled => "Cancelled (false alarm)",
                };
                Some(view! { <li class="done" data-testid="ended">{label} " " {a.ended_ms.map(clock)}</li> })
            })}
        </ol>
    }
}
