//! AlertMe server: phones stream an SOS in, watchers and responders follow it live.
#![warn(missing_docs)]

pub mod audio;
