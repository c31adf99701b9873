//! The app shell: picks the page from the URL path (`/w/TOKEN`, `/console`, `/sos`, else home).

use leptos::prelude::*;

use crate::pages::{console::Console, home::Home, sos::Sos, watch::Watch};

/// Root component.
#[component]
pub fn App() -> impl IntoView {
    let path = web_sys::window().and_then(|w| w.location().pathname().ok()).unwrap_or_default();
    if let Some(token) = path.strip_prefix("/w/").filter(|t| !t.is_empty()) {
        view! { <Watch token=token.trim_end_matches('/').to_owned() alert=None /> }.into_any()
    } else if path.starts_with("/console") {
        view! { <Console /> }.into_any()
    } else if path.starts_with("/sos") {
        view! { <Sos /> }.into_any()
    } else {
        view! { <Home /> }.into_any()
    }
}
