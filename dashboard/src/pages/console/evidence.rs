//! An alert's evidence in the console: the signed bundle to download, and the legal hold.

use leptos::prelude::*;

use crate::api;

/// Download link and hold controls for one alert (docs/evidence.md).
#[component]
pub fn Evidence(token: String, alert: String) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let said = RwSignal::new(None::<String>);
    let url = format!("/v1/alerts/{alert}/hold");
    let (hold_url, lift_url, hold_token, lift_token) = (url.clone(), url, token.clone(), token.clone());
    let hold = Action::new_local(move |why: &String| {
        let (url, token) = (hold_url.clone(), hold_token.clone());
        let body = serde_json::json!({ "reason": why });
        async move {
            match api::send_json::<serde_json::Value>("PUT", &url, Some(&token), Some(&body)).await {
                Ok(_) => {
                    said.set(Some("On legal hold: it will not be deleted until the hold is lifted.".into()))
                }
                Err(e) => said.set(Some(e.message())),
            }
        }
    });
    let lift = Action::new_local(move |_: &()| {
        let (url, token) = (lift_url.clone(), lift_token.clone());
        async move {
            match api::send_json::<serde_json::Value>("DELETE", &url, Some(&token), None).await {
                Ok(_) => said.set(Some("Hold lifted: the retention period applies again.".into())),
                Err(e) => said.set(Some(e.message())),
            }
        }
    });
    let download = format!("/v1/alerts/{alert}/evidence?token={}", js_sys::encode_uri_component(&token));
    view! {
        <section class="evidence" data-testid="evidence">
            <a href=download download="" data-testid="evidence-download">"Download evidence (signed zip)"</a>
            <form on:submit=move |e| {
                e.prevent_default();
                hold.dispatch(reason.get_untracked());
            }>
                <input placeholder="Reason for a legal hold" data-testid="hold-reason" prop:value=move || reason.get()
                    on:input=move |e| reason.set(event_target_value(&e)) />
                <button type="submit" data-testid="hold">"Put on legal hold"</button>
                <button type="button" data-testid="lift-hold" on:click=move |_| { lift.dispatch(()); }>"Lift hold"</button>
            </form>
            {move || said.get().map(|s| view! { <p class="meta" role="status" data-testid="hold-status">{s}</p> })}
        </section>
    }
}
