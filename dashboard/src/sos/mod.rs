//! The web SOS client: any phone browser becomes an AlertMe phone (the second client of
//! docs/protocol.md after the app).

pub mod account;
pub mod engine;
pub mod outbox;
pub mod sensors;
pub mod tab_lock;
