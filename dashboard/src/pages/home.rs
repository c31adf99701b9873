//! `/`: what this server is and where to go.

use leptos::prelude::*;

use crate::i18n::use_i18n;

/// The landing page.
#[component]
pub fn Home() -> impl IntoView {
    let i = use_i18n();
    view! {
        <main class="home">
            <h1>"AlertMe"</h1>
            <p>{move || i.t("home-about")}</p>
            <p><a href="/console">{move || i.t("console-title")}</a></p>
        </main>
    }
}
