//! An alert's evidence in the console: the signed bundle to download, and the legal hold.

use leptos::prelude::*;

use crate::api;
use crate::i18n::use_i18n;

/// What the last hold command did, kept as what happened so a language switch rewords it.
#[derive(Clone)]
enum Said {
    Held,
    Lifted,
    /// The request failed, in the words of [`api::ApiError::message`].
    Failed(String),
}

/// Download link and hold controls for one alert (docs/evidence.md).
#[component]
pub fn Evidence(token: String, alert: String) -> impl IntoView {
    let i = use_i18n();
    let reason = RwSignal::new(String::new());
    let said = RwSignal::new(None::<Said>);
    let url = format!("/v1/alerts/{alert}/hold");
    let (hold_url, lift_url, hold_token, lift_token) = (url.clone(), url, token.clone(), token.clone());
    let hold = Action::new_local(move |why: &String| {
        let (url, token) = (hold_url.clone(), hold_token.clone());
        let body = serde_json::json!({ "reason": why });
        async move {
            match api::send_json::<serde_json::Value>("PUT", &url, Some(&token), Some(&body)).await {
                Ok(_) => said.set(Some(Said::Held)),
                Err(e) => said.set(Some(Said::Failed(e.message()))),
            }
        }
    });
    let lift = Action::new_local(move |_: &()| {
        let (url, token) = (lift_url.clone(), lift_token.clone());
        async move {
            match api::send_json::<serde_json::Value>("DELETE", &url, Some(&token), None).await {
                Ok(_) => said.set(Some(Said::Lifted)),
                Err(e) => said.set(Some(Said::Failed(e.message()))),
            }
        }
    });
    let download = format!("/v1/alerts/{alert}/evidence?token={}", js_sys::encode_uri_component(&token));
    view! {
        <section class="evidence" data-testid="evidence">
            <a href=download download="" data-testid="evidence-download">{move || i.t("console-evidence-download")}</a>
            <form on:submit=move |e| {
                e.prevent_default();
                hold.dispatch(reason.get_untracked());
            }>
                <input placeholder=move || i.t("console-hold-reason") data-testid="hold-reason" prop:value=move || reason.get()
                    on:input=move |e| reason.set(event_target_value(&e)) />
                <button type="submit" data-testid="hold">{move || i.t("console-hold")}</button>
                <button type="button" data-testid="lift-hold" on:click=move |_| { lift.dispatch(()); }>{move || i.t("console-hold-lift")}</button>
            </form>
            {move || said.get().map(|s| {
                let text = match s {
                    Said::Held => i.t("console-hold-on"),
                    Said::Lifted => i.t("console-hold-lifted"),
                    Said::Failed(e) => e,
                };
                view! { <p class="meta" role="status" data-testid="hold-status">{text}</p> }
            })}
        </section>
    }
}
