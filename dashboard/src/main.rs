//! AlertMe dashboard entry point: installs the panic hook and mounts the app.

mod api;
mod app;
mod components;
mod i18n;
mod pages;
mod reason;
mod sos;
mod watch;
mod ws;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
