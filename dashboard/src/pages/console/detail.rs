//! The selected alert beside the map: take it, resolve it, the team's notes, evidence, and its live view.

use alertme_protocol::{AlertSummary, ResponderCmd};
use leptos::prelude::*;

use super::evidence::Evidence;
use crate::components::timeline::clock;
use crate::i18n::{use_i18n, Arg};
use crate::pages::watch::Watch;

/// The detail of alert `id`. `summary` is its entry in the active list (none once it ended or
/// for a finished one picked from the search). `confirm` holds the alert whose resolve waits
/// for a second key press (r, then r or Enter): one stray key must not end someone's SOS.
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
    let (claim_id, resolve_id, note_id, confirm_id, yes_id) =
        (id.clone(), id.clone(), id.clone(), id.clone(), id.clone());
    let asking = Memo::new(move |_| confirm.with(|c| c.as_deref() == Some(confirm_id.as_str())));
    let actions = move || {
        let a = summary.get()?;
        let name = a.alert.user_name.clone();
        let (claim_id, resolve_id, note_id, yes_id) =
            (claim_id.clone(), resolve_id.clone(), note_id.clone(), yes_id.clone());
        Some(view! {
            <section class="actions" aria-label=move || i.t("console-actions")>
                <h2>{name.clone()}</h2>
                {a.alert.duress.then(|| view! { <p class="duress">{move || i.t("console-duress")}</p> })}
                // Written by the server (a missed check-in and where to), shown as it comes.
                {a.alert.note.clone().map(|n| view! { <p class="meta">{n}</p> })}
                <div class="buttons">
                    {a.alert.claimed_by.is_none().then(|| view! {
                        <button class="primary" data-testid="claim"
                            on:click=move |_| send.run(ResponderCmd::Claim { alert_id: claim_id.clone() })>
                            {move || i.t("console-claim")} <kbd>"c"</kbd>
                        </button>
                    })}
                    <button data-testid="resolve" on:click=move |_| send.run(ResponderCmd::Resolve { alert_id: resolve_id.clone() })>
                        {move || i.t("console-resolve")} <kbd>"r"</kbd>
                    </button>
                </div>
                <Show when=move || asking.get()>
                    <p class="confirm" role="alert" data-testid="confirm-resolve">
                        {let name = name.clone(); move || i.ta("console-resolve-confirm", &[("name", Arg::from(name.clone()))])}
                        " "
                        <button on:click={let yes_id = yes_id.clone(); move |_| {
                            confirm.set(None);
                            send.run(ResponderCmd::Resolve { alert_id: yes_id.clone() });
                        }}>{move || i.t("console-resolve-yes")}</button>
                        <button on:click=move |_| confirm.set(None)>{move || i.t("console-resolve-no")}</button>
                    </p>
                </Show>
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
                        <input placeholder=move || i.t("console-note-placeholder") data-testid="note-input"
                            aria-label=move || i.t("console-note-placeholder")
                            prop:value=move || draft.get() on:input=move |e| draft.set(event_target_value(&e)) />
                        <button type="submit">{move || i.t("console-note-add")}</button>
                    </form>
                </div>
            </section>
        })
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
