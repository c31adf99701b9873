//! One active alert in the console's list: who, since when, the phone's link, claim, resolve, notes.

use alertme_protocol::{AlertSummary, ResponderCmd};
use leptos::prelude::*;

use crate::components::timeline::clock;
use crate::i18n::{use_i18n, Arg};

/// A row of the active list; commands go out through `send`. `now` ticks, so the age stays true.
#[component]
pub fn AlertRow(
    alert: AlertSummary,
    now: RwSignal<f64>,
    selected: RwSignal<Option<String>>,
    send: Callback<ResponderCmd>,
) -> impl IntoView {
    let i = use_i18n();
    let a = alert;
    let id = a.alert.id.clone();
    let (claim_id, resolve_id, open_id, note_id) = (id.clone(), id.clone(), id.clone(), id.clone());
    let claimed = a.alert.claimed_by.clone();
    let unclaimed = claimed.is_none();
    let connected = a.phone.connected;
    let draft = RwSignal::new(String::new());
    let started = a.alert.started_ms;
    let since = move || {
        let min = ((now.get() - started as f64) / 60_000.0).floor().max(0.0) as u64;
        let ago = if min < 1 {
            i.t("ago-now")
        } else if min < 60 {
            i.ta("ago-minutes", &[("n", Arg::from(min))])
        } else {
            i.ta("ago-hours", &[("n", Arg::from(min / 60))])
        };
        i.ta("console-since", &[("time", Arg::from(clock(started))), ("ago", Arg::from(ago))])
    };
    view! {
        <li class:unclaimed=unclaimed data-testid="alert-row" data-alert=id.clone()>
            <button class="name" on:click=move |_| selected.set(Some(open_id.clone()))>{a.alert.user_name.clone()}</button>
            <span class="meta">{since}</span>
            {a.alert.duress.then(|| view! { <span class="duress">{move || i.t("console-duress")}</span> })}
            // Written by the server (a missed check-in and where to), shown as it comes.
            {a.alert.note.clone().map(|n| view! { <span class="meta">{n}</span> })}
            <span class="meta">{move || i.t(if connected { "console-phone-connected" } else { "console-phone-lost" })}</span>
            {match claimed {
                Some(r) => view! {
                    <span class="claimed">{move || i.ta("console-claimed", &[("name", Arg::from(r.clone()))])}</span>
                }.into_any(),
                None => view! {
                    <button data-testid="claim" on:click=move |_| send.run(ResponderCmd::Claim { alert_id: claim_id.clone() })>{move || i.t("console-claim")}</button>
                }.into_any(),
            }}
            <button data-testid="resolve" on:click=move |_| send.run(ResponderCmd::Resolve { alert_id: resolve_id.clone() })>{move || i.t("console-resolve")}</button>
            <div class="notes">
                {a.notes.iter().map(|n| {
                    let (by, at, text) = (n.by.clone(), clock(n.at_ms), n.text.clone());
                    let line = move || i.ta("console-note", &[
                        ("name", Arg::from(by.clone())),
                        ("time", Arg::from(at.clone())),
                        ("text", Arg::from(text.clone())),
                    ]);
                    view! { <p class="note" data-testid="note">{line}</p> }
                }).collect::<Vec<_>>()}
                <form on:submit=move |e| {
                    e.prevent_default();
                    let text = draft.get_untracked();
                    if !text.trim().is_empty() {
                        send.run(ResponderCmd::Note { alert_id: note_id.clone(), text });
                        draft.set(String::new());
                    }
                }>
                    <input placeholder=move || i.t("console-note-placeholder") data-testid="note-input" prop:value=move || draft.get()
                        on:input=move |e| draft.set(event_target_value(&e)) />
                    <button type="submit">{move || i.t("console-note-add")}</button>
                </form>
            </div>
        </li>
    }
}
