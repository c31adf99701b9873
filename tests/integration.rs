//! Every integration test in one binary (one build of `tests/support`, one link): a module per
//! area. Servers run in-process (`TestApp`) or, where a process must die or a browser drives the
//! pages, as the real `alertme` binary.

#[macro_use]
mod support;

mod bench_smoke;
mod catalogs;
mod cluster;
mod dashboard;
mod evidence;
mod liveness;
mod places;
mod refusals;
mod sms;
mod sos_page;
mod streaming;
mod timers;
mod uploads;
mod video;
