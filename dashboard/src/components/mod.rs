//! Reusable view pieces.

pub mod map;
pub mod timeline;
