//! One active alert in the console's list: who, since when, the phone's link, claim, resolve, notes.

use alertme_protocol::{AlertSummary, ResponderCmd};
use leptos::prelude::*;

use crate::api;
use crate::components::timeline::clock;

/// A row of the active list; commands go out through `send`.
#[component]
pub fn AlertRow(
    alert: AlertSummary,
    selected: RwSignal<Option<String>>,
    send: Callback<ResponderCmd>,
) -> impl IntoView {
    let a = alert;
    let id = a.alert.id.clone();
    let (claim_id, resolve_id, open_id, note_id) = (id.clone(), id.clone(), id.clone(), id.clone());
    let claimed = a.alert.claimed_by.clone();
    let unclaimed = claimed.is_none();
    let draft = RwSignal::new(String::new());
    let age_min = ((api::now_ms() - a.alert.started_ms as f64) / 60_000.0).floor();
    view! {
        <li class:unclaimed=unclaimed data-testid="alert-row" data-alert=id.clone()>
            <button class="name" on:click=move |_| selected.set(Some(open_id.clone()))>{a.alert.user_name.clone()}</button>
            <span class="meta">{format!("since {} ({age_min} min)", clock(a.alert.started_ms))}</span>
            {a.alert.duress.then(|| view! { <span class="duress">"POSSIBLE DURESS"</span> })}
            {a.alert.note.clone().map(|n| view! { <span class="meta">{n}</span> })}
            <span class="meta">{if a.phone.connected { "phone connected" } else { "phone lost" }}</span>
            {match claimed {
                Some(r) => view! { <span class="claimed">{format!("{r} is on it")}</span> }.into_any(),
                None => view! {
                    <button data-testid="claim" on:click=move |_| send.run(ResponderCmd::Claim { alert_id: claim_id.clone() })>"Claim"</button>
                }.into_any(),
            }}
            <button data-testid="resolve" on:click=move |_| send.run(ResponderCmd::Resolve { alert_id: resolve_id.clone() })>"Resolve"</button>
            <div class="notes">
                {a.notes.iter().map(|n| view! {
                    <p class="note" data-testid="note">{format!("{} at {}: {}", n.by, clock(n.at_ms), n.text)}</p>
                }).collect::<Vec<_>>()}
                <form on:submit=move |e| {
                    e.prevent_default();
                    let text = draft.get_untracked();
                    if !text.trim().is_empty() {
                        send.run(ResponderCmd::Note { alert_id: note_id.clone(), text });
                        draft.set(String::new());
                    }
                }>
                    <input placeholder="Note for the team" data-testid="note-input" prop:value=move || draft.get()
                        on:input=move |e| draft.set(event_target_value(&e)) />
                    <button type="submit">"Add note"</button>
                </form>
            </div>
        </li>
    }
}
