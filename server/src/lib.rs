//! AlertMe server: phones stream an SOS in, watchers and responders follow it live.
#![warn(missing_docs)]

mod app;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod e164;
pub mod error;
pub mod geocode;
pub mod live;
pub mod media;
pub mod sms;
pub mod storage;
pub mod telemetry;
mod web;

#[cfg(test)]
mod layout;

pub use app::{serve, serve_with};

/// Milliseconds since the Unix epoch, server clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
