//! Pages, one per route.

pub mod console;
pub mod home;
pub mod sos;
pub mod watch;
