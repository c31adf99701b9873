//! The state every route and socket gets: the domain's parts plus what only the web layer needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::domain::Core;

/// Everything a request handler needs. Cheap to clone; derefs to the domain's [`Core`].
#[derive(Clone)]
pub struct AppState {
    /// The domain's parts.
    pub core: Core,
    /// The SMS provider (webhook verification, console texts).
    pub sms: crate::sms::SmsClient,
    /// Addresses presenting wrong credentials.
    pub bad_tokens: Arc<crate::web::throttle::BadTokens>,
    /// Cancelled when the server stops: every socket closes with 1012 ("service restart").
    pub stop: tokio_util::sync::CancellationToken,
    /// The open sockets' tasks, which a stop waits for.
    pub sockets: tokio_util::task::TaskTracker,
    /// Renders `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    conn_ids: Arc<AtomicU64>,
}

impl AppState {
    /// Wraps the domain's parts for serving.
    pub fn new(core: Core, sms: crate::sms::SmsClient, stop: tokio_util::sync::CancellationToken) -> Self {
        let bad_tokens =
            Arc::new(crate::web::throttle::BadTokens::new(core.settings.trusted_proxies.clone()));
        Self {
            core,
            sms,
            bad_tokens,
            stop,
            sockets: tokio_util::task::TaskTracker::new(),
            metrics: None,
            conn_ids: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A process-unique id for a socket.
    pub fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::ops::Deref for AppState {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}
