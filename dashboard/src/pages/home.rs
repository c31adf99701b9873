//! `/`: what this server is and where to go.

use leptos::prelude::*;

/// The landing page.
#[component]
pub fn Home() -> impl IntoView {
    view! {
        <main class="home">
            <h1>"AlertMe"</h1>
            <p>"A self-hosted personal-safety SOS server. Watch links sent by text open a live view of one alert."</p>
            <p><a href="/console">"Responder console"</a></p>
        </main>
    }
}
