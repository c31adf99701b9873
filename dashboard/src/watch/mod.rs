//! The watch page's machinery: one alert followed live over its socket, and its audio played
//! through MediaSource (or WebCodecs where MediaSource cannot take AAC).

pub mod audio;
pub mod live;
pub mod webcodecs;
