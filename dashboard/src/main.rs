//! AlertMe dashboard entry point: installs the panic hook and mounts the app.

mod api;
mod app;
mod audio;
mod components;
mod live;
mod pages;
mod sos;
mod webcodecs;
mod ws;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
