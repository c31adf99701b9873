//! Finished alerts, searchable by name: a search is an `Action`, rerun when an alert ends.

use alertme_protocol::{AlertInfo, AlertStatus};
use leptos::prelude::*;

use crate::api;
use crate::components::timeline::clock;
use crate::i18n::{use_i18n, Arg};

/// The last 50 finished alerts matching the search; selecting one opens its replay.
#[component]
pub fn Finished(
    token: RwSignal<String>,
    selected: RwSignal<Option<String>>,
    ended: RwSignal<u32>,
) -> impl IntoView {
    let i = use_i18n();
    let search = RwSignal::new(String::new());
    let load = Action::new_local(move |q: &String| {
        let url = format!(
            "/v1/alerts?status=ended&limit=50&q={}&token={}",
            js_sys::encode_uri_component(q),
            js_sys::encode_uri_component(&token.get_untracked())
        );
        async move { api::get_json::<Vec<AlertInfo>>(&url).await.unwrap_or_default() }
    });
    // At first and whenever an alert ends.
    Effect::new(move |_| {
        ended.track();
        load.dispatch(search.get_untracked());
    });
    let list = move || load.value().get().unwrap_or_default();
    view! {
        <section class="finished">
            <h2>{move || i.t("console-finished")}</h2>
            <form on:submit=move |e| { e.prevent_default(); load.dispatch(search.get_untracked()); }>
                <input placeholder=move || i.t("console-search-placeholder") prop:value=move || search.get()
                    on:input=move |e| search.set(event_target_value(&e)) />
                <button type="submit">{move || i.t("console-search")}</button>
            </form>
            <ul>
                <For each=list key=|a| a.id.clone() children=move |a: AlertInfo| {
                    let id = a.id.clone();
                    let (name, time, status) = (a.user_name.clone(), clock(a.started_ms), a.status);
                    // Only what the status says for sure: `cancelled` is the person's PIN; `resolved`
                    // may be a responder or the person, so it names nobody.
                    let label = move || {
                        let msg = match status {
                            AlertStatus::Resolved => "console-finished-resolved",
                            AlertStatus::Cancelled => "console-finished-ended-phone",
                            AlertStatus::Active => "console-finished-active",
                        };
                        i.ta(msg, &[("name", Arg::from(name.clone())), ("time", Arg::from(time.clone()))])
                    };
                    view! {
                        <li><button class="name" on:click=move |_| selected.set(Some(id.clone()))>{label}</button></li>
                    }
                } />
            </ul>
        </section>
    }
}
