//! The console provider: texts go nowhere; in development they are shown on stdout and listed.

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
    reveal: bool,
}

impl Console {
    /// With `reveal`, texts are printed in full and kept for `GET /v1/dev/sms`; without it, only
    /// that a text was due (a code or link printed on a server's console can be read by anyone
    /// who sees its logs).
    pub fn new(reveal: bool) -> Self {
        Self { texts: Arc::default(), reveal }
    }

    /// Whether texts are shown (development on a loopback bind).
    pub fn reveals(&self) -> bool {
        self.reveal
    }

    pub(super) fn send(&self, to: &str, body: &str) -> Sent {
        let sid = format!("CONSOLE{}", uuid::Uuid::new_v4().simple());
        if !self.reveal {
            println!(
                "[console sms] not sent (no SMS provider configured): {} characters to {}",
                body.chars().count(),
                crate::e164::mask(to)
            );
            return Sent { sid, status: "sent".into() };
        }
        // Development on a loopback bind: the one place that prints a text's content (real
        // providers never log it).
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
