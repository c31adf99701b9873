//! The selected alert beside the map: take it, resolve it, the team's notes, evidence, and its live view.

use alertme_protocol::{AlertSummary, Note, ResponderCmd};
use leptos::prelude::*;

use super::evidence::Evidence;
use crate::components::timeline::clock;
use crate::i18n::{use_i18n, Arg};
use crate::pages::watch::Watch;

/// The detail of alert `id`. `summary` is its entry in the active list (none once it ended or
/// for a finished one picked from the search). Resolving always asks first (`confirm` holds the
/// alert whose resolve waits: the button, or r, then "yes" or r again): one stray click or key
/// must not end someone's SOS.
///
/// The markup is built once per alert and only its words follow the updates (which come about
/// once a second per moving alert): rebuilt, the note field would lose the responder's typing
/// and focus, and the keys they type next would act as commands.
#[component]
pub fn Detail(
    token: String,
    id: String,
    summary: Signal<Option<AlertSummary>>,
    confirm: RwSignal<Option<String>>,
    send: Callback<ResponderCmd>,
) -> impl IntoView {
    let i = use_i18n();
    let draft = RwSignal::new(String::new());
    let active = Memo::new(move |_| summary.with(Option::is_some));
    let name = Memo::new(move |_| {
        summary.with(|s| s.as_ref().map(|a| a.alert.user_name.clone()).unwrap_or_default())
    });
    let duress = Memo::new(move |_| summary.with(|s| s.as_ref().is_some_and(|a| a.alert.duress)));
    let reason =
        Memo::new(move |_| summary.with(|s| s.as_ref().and_then(|a| crate::reason::of_alert(i, &a.alert))));
    let unclaimed =
        Memo::new(move |_| summary.with(|s| s.as_ref().is_some_and(|a| a.alert.claimed_by.is_none())));
    let notes = Memo::new(move |_| summary.with(|s| s.as_ref().map(|a| a.notes.clone()).unwrap_or_default()));
    let asking = {
        let id = id.clone();
        Memo::new(move |_| confirm.with(|c| c.as_deref() == Some(id.as_str())))
    };
    // Copy, for the handlers inside `Show` (its children are built again each time it shows).
    let sid = StoredValue::new(id.clone());
    let actions = view! {
        <Show when=move || active.get()>
            <section class="actions" aria-label=move || i.t("console-actions")>
                <h2>{move || name.get()}</h2>
                <Show when=move || duress.get()>
                    <p class="duress">{move || i.t("console-duress")}</p>
                </Show>
                // Why the server raised it (a missed check-in and where to, a zone crossed).
                {move || reason.get().map(|r| view! { <p class="meta" data-testid="reason">{r}</p> })}
                <div class="buttons">
                    <Show when=move || unclaimed.get()>
                        <button class="primary" data-testid="claim"
                            on:click=move |_| send.run(ResponderCmd::Claim { alert_id: sid.get_value() })>
                            {move || i.t("console-claim")} <kbd>"c"</kbd>
                        </button>
                    </Show>
                    <button data-testid="resolve" on:click=move |_| confirm.set(Some(sid.get_value()))>
                        {move || i.t("console-resolve")} <kbd>"r"</kbd>
                    </button>
                </div>
                <Show when=move || asking.get()>
                    <p class="confirm" data-testid="confirm-resolve">
                        {move || i.ta("console-resolve-confirm", &[("name", Arg::from(name.get()))])}
                        " "
                        <button data-testid="resolve-yes" on:click=move |_| {
                            confirm.set(None);
                            send.run(ResponderCmd::Resolve { alert_id: sid.get_value() });
                        }>{move || i.t("console-resolve-yes")}</button>
                        <button on:click=move |_| confirm.set(None)>{move || i.t("console-resolve-no")}</button>
                    </p>
                </Show>
                <div class="notes">
                    <For each=move || notes.get() key=|n: &Note| (n.at_ms, n.by.clone(), n.text.clone()) let(n)>
                        <p class="note" data-testid="note">{note_line(i, &n)}</p>
                    </For>
                    <form on:submit=move |e| {
                        e.prevent_default();
                        let text = draft.get_untracked();
                        if !text.trim().is_empty() {
                            send.run(ResponderCmd::Note { alert_id: sid.get_value(), text });
                            draft.set(String::new());
                        }
                    }>
                        <input placeholder=move || i.t("console-note-placeholder") data-testid="note-input"
                            aria-label=move || i.t("console-note-placeholder")
                            prop:value=move || draft.get() on:input=move |e| draft.set(event_target_value(&e)) />
                        <button type="submit">{move || i.t("console-note-add")}</button>
                    </form>
                </div>
            </section>
        </Show>
    };
    let (attr_id, evidence_id) = (id.clone(), id.clone());
    view! {
        <div class="detail-body" data-testid="detail" data-alert=attr_id>
            {actions}
            <Evidence token=token.clone() alert=evidence_id />
            <Watch token=token alert=Some(id) />
        </div>
    }
}

/// "Rita at 14:02: Police called", in the reader's language.
fn note_line(i: crate::i18n::I18n, n: &Note) -> impl Fn() -> String + 'static {
    let (by, at, text) = (n.by.clone(), clock(n.at_ms), n.text.clone());
    move || {
        i.ta(
            "console-note",
            &[
                ("name", Arg::from(by.clone())),
                ("time", Arg::from(at.clone())),
                ("text", Arg::from(text.clone())),
            ],
        )
    }
}
