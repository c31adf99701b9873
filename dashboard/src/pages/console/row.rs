//! One active alert in the console's list: who, since when, whether someone is on it, the phone's link.

use alertme_protocol::{AlertSummary, ResponderCmd};
use leptos::prelude::*;

use crate::components::timeline::{ago, clock};
use crate::i18n::{use_i18n, Arg};

/// A row of the active list. Selecting it opens the detail beside the map; an unclaimed one
/// keeps signalling (CSS) and can be taken from the row at once. `now` ticks, so the age stays true.
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
    let (claim_id, open_id, sel_id, attr_id) = (id.clone(), id.clone(), id.clone(), id);
    let claimed = a.alert.claimed_by.clone();
    let unclaimed = claimed.is_none();
    let connected = a.phone.connected;
    let started = a.alert.started_ms;
    let name = a.alert.user_name.clone();
    let since = move || {
        let ago = ago(i, now.get() - started as f64);
        i.ta("console-since", &[("time", Arg::from(clock(started))), ("ago", Arg::from(ago))])
    };
    let is_selected = Memo::new(move |_| selected.with(|s| s.as_deref() == Some(sel_id.as_str())));
    view! {
        <li class:unclaimed=unclaimed class:selected=move || is_selected.get() data-testid="alert-row" data-alert=attr_id
            data-selected=move || is_selected.get().to_string()>
            <button class="name" aria-pressed=move || is_selected.get().to_string()
                on:click=move |_| {
                    if !is_selected.get_untracked() {
                        selected.set(Some(open_id.clone()));
                    }
                }>{a.alert.user_name.clone()}</button>
            <span class="meta">{since}</span>
            {a.alert.duress.then(|| view! { <span class="duress">{move || i.t("console-duress-short")}</span> })}
            <span class="meta" class:bad=!connected>
                {move || i.t(if connected { "console-phone-connected" } else { "console-phone-lost" })}
            </span>
            {match claimed {
                Some(r) => view! {
                    <span class="claimed">{move || i.ta("console-claimed", &[("name", Arg::from(r.clone()))])}</span>
                }.into_any(),
                None => view! {
                    <span class="waiting-badge">{move || i.t("console-unclaimed")}</span>
                    <button data-testid="row-claim" aria-label={let name = name.clone(); move || i.ta("console-claim-who", &[("name", Arg::from(name.clone()))])} on:click=move |_| send.run(ResponderCmd::Claim { alert_id: claim_id.clone() })>
                        {move || i.t("console-claim")}
                    </button>
                }.into_any(),
            }}
        </li>
    }
}
