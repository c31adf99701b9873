//! What a phone sends is stored first, then its live session hears of it: the seam between them.

use alertme_protocol::Fix;

use crate::live::Session;
use crate::storage::writer::Committed;

pub use crate::storage::writer::Notice;

/// The writer tells the live session what it committed; the session moves the acks and fans
/// the items out to watchers.
impl Committed for Session {
    fn alert_id(&self) -> &str {
        &self.alert_id
    }

    fn fixes_stored(&self, fixes: &[Fix]) {
        Session::fixes_stored(self, fixes);
    }

    fn fix_refused(&self, seq: u64) {
        Session::fix_refused(self, seq);
    }

    fn audio_stored(&self, seq: u64, mime: &str, bytes: &[u8]) {
        Session::audio_stored(self, seq, mime, bytes);
    }

    fn fence(&self) -> Option<i64> {
        self.fence
    }
}
