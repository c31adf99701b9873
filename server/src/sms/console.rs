//! The console provider: texts go to stdout and to a small in-memory list for the demo.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::Sent;

/// Texts kept for `GET /v1/dev/sms`.
const KEEP: usize = 200;

/// One text as the console provider "sent" it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleText {
    /// Fake message id.
    pub sid: String,
    /// Recipient.
    pub to: String,
    /// Text.
    pub body: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Prints texts; cheap to clone.
#[derive(Clone, Default)]
pub struct Console {
    texts: Arc<Mutex<VecDeque<ConsoleText>>>,
}

impl Console {
    pub(super) fn send(&self, to: &str, body: &str) -> Sent {
        let sid = format!("CONSOLE{}", uuid::Uuid::new_v4().simple());
        // The console provider exists to show texts on a demo machine; it is the one place that
        // prints their content (real providers never log it).
        println!("[console sms] to {to}: {body}");
        let mut t = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        t.push_back(ConsoleText {
            sid: sid.clone(),
            to: to.to_owned(),
            body: body.to_owned(),
            at_ms: crate::now_ms(),
        });
        while t.len() > KEEP {
            t.pop_front();
        }
        Sent { sid, status: "sent".into() }
    }

    pub(super) fn find(&self, to: &str, body: &str) -> Option<Sent> {
        let t = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .find(|x| x.to == to && x.body == body)
            .map(|x| Sent { sid: x.sid.clone(), status: "sent".into() })
    }

    /// The texts kept, newest last.
    pub fn texts(&self) -> Vec<ConsoleText> {
        self.texts.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}
