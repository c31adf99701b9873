//! Reusable view pieces.

pub mod map;
pub mod place;
pub mod timeline;
