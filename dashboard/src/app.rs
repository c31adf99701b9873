//! The app shell: the router picks the page (`/w/TOKEN`, `/console`, `/sos`, else home).

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_params_map;
use leptos_router::path;

use crate::i18n::LanguageSwitch;
use crate::pages::{console::Console, home::Home, sos::Sos, watch::Watch};

/// Root component.
#[component]
pub fn App() -> impl IntoView {
    crate::i18n::provide();
    view! {
        <LanguageSwitch />
        <Router>
            <Routes fallback=Home>
                <Route path=path!("/") view=Home />
                <Route path=path!("/w/:token") view=WatchLink />
                <Route path=path!("/console") view=Console />
                <Route path=path!("/sos") view=Sos />
            </Routes>
        </Router>
    }
}

/// A contact's watch link: the token is the path's last segment.
#[component]
fn WatchLink() -> impl IntoView {
    let params = use_params_map();
    let token = params.read_untracked().get("token").unwrap_or_default();
    view! { <Watch token=token alert=None /> }
}
