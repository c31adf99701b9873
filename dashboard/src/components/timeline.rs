//! The alert's story at a glance: triggered, contacts notified, responder on it, resolved.

use alertme_protocol::{AlertInfo, AlertStatus, Delivery};
use leptos::prelude::*;

use crate::i18n::{use_i18n, I18n};

/// "14:02:31" in the browser's local time.
pub fn clock(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!("{:02}:{:02}:{:02}", d.get_hours(), d.get_minutes(), d.get_seconds())
}

/// "12 s ago", "3 min ago", "2 h ago".
pub fn ago(i: I18n, ms: f64) -> String {
    let s = (ms / 1000.0).max(0.0).round() as u64;
    match s {
        0..=1 => i.t("ago-now"),
        2..=119 => i.ta("ago-seconds", &[("n", s.into())]),
        120..=7199 => i.ta("ago-minutes", &[("n", (s / 60).into())]),
        7200..=172_799 => i.ta("ago-hours", &[("n", (s / 3600).into())]),
        _ => i.ta("ago-days", &[("n", (s / 86_400).into())]),
    }
}

fn delivery_label(i: I18n, d: &Delivery) -> String {
    let state = match d.status.as_str() {
        "pending" | "sending" => i.t("delivery-sending"),
        "queued" => i.t("delivery-queued"),
        "sent" => i.t("delivery-sent"),
        "delivered" => i.t("delivery-delivered"),
        "undelivered" => i.t("delivery-undelivered"),
        "failed" => i.t("delivery-failed"),
        "opted_out" => i.t("delivery-opted-out"),
        "limited" => i.t("delivery-limited"),
        other => other.to_owned(),
    };
    let id = match (d.opened, d.revoked) {
        (_, true) => "timeline-delivery-revoked",
        (true, false) => "timeline-delivery-opened",
        (false, false) => "timeline-delivery",
    };
    i.ta(id, &[("contact", d.contact.clone().into()), ("state", state.into())])
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
    let i = use_i18n();
    view! {
        <ol class="timeline" data-testid="timeline">
            {move || alert.get().map(|a| view! {
                <li class="done">{i.ta("timeline-raised", &[("time", clock(a.started_ms).into())])}</li>
            })}
            {move || {
                let d = deliveries.get();
                (!d.is_empty()).then(|| {
                    let items = d
                        .iter()
                        .map(|x| {
                            let button = match (revoke, x.contact_id.clone(), x.revoked) {
                                (Some(cb), Some(id), false) => Some(view! {
                                    <button class="small" data-testid="revoke-link" on:click=move |_| cb.run(id.clone())>
                                        {i.t("timeline-withdraw")}
                                    </button>
                                }),
                                _ => None,
                            };
                            view! { <li class="sub">{delivery_label(i, x)} " " {button}</li> }
                        })
                        .collect::<Vec<_>>();
                    view! {
                        <li class="done">{i.ta("timeline-texted", &[("n", d.len().into())])}</li>
                        {items}
                    }
                })
            }}
            {move || alert.get().and_then(|a| match a.claimed_by {
                Some(r) => Some(view! {
                    <li class="done" data-testid="claimed">{i.ta("timeline-claimed", &[("responder", r.into())])}</li>
                }.into_any()),
                // Only while it is on: after the end nobody is waiting any more.
                None if a.status == AlertStatus::Active => {
                    Some(view! { <li class="waiting" data-testid="waiting">{i.t("timeline-waiting")}</li> }.into_any())
                }
                None => None,
            })}
            // How it ended, never guessed: cancelled is the person, on their phone (they may
            // simply be safe now, not "a false alarm"); resolved may be a responder or the
            // person's phone, and the page is not told which.
            {move || alert.get().and_then(|a| {
                let id = match a.status {
                    AlertStatus::Active => return None,
                    AlertStatus::Resolved => "timeline-resolved",
                    AlertStatus::Cancelled => "timeline-ended-phone",
                };
                let time = a.ended_ms.map(clock).unwrap_or_default();
                let text = i.ta(id, &[("name", a.user_name.into()), ("time", time.into())]);
                Some(view! { <li class="done" data-testid="ended">{text}</li> })
            })}
        </ol>
    }
}
