//! AlertMe dashboard entry point: mounts the Leptos app (the watch page and console come next).

use leptos::prelude::*;

/// Root component.
#[component]
fn App() -> impl IntoView {
    view! { <main><h1>"AlertMe"</h1></main> }
}

fn main() {
    mount_to_body(App);
}
