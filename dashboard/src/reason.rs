//! Why the server raised an alert, in the reader's language (the server sends it as data).

use alertme_protocol::Reason;

use crate::i18n::I18n;

/// One sentence naming the person: "Ana did not check in in time: “walking home”".
/// The person's own words (note, destination, zone name) are shown as they wrote them.
/// `None` for a reason this build does not know.
pub fn sentence(i: I18n, name: &str, reason: &Reason) -> Option<String> {
    let name = ("name", name.into());
    Some(match reason {
        Reason::MissedCheckIn { note, destination } => {
            let note = note.as_deref().filter(|n| !n.trim().is_empty());
            let to = destination.as_deref().filter(|d| !d.trim().is_empty());
            match (note, to) {
                (Some(n), Some(d)) => {
                    i.ta("reason-checkin-note-to", &[name, ("note", n.into()), ("destination", d.into())])
                }
                (Some(n), None) => i.ta("reason-checkin-note", &[name, ("note", n.into())]),
                (None, Some(d)) => i.ta("reason-checkin-to", &[name, ("destination", d.into())]),
                (None, None) => i.ta("reason-checkin", &[name]),
            }
        }
        Reason::DuressCheckIn { note: Some(n) } if !n.trim().is_empty() => {
            i.ta("reason-duress-checkin-note", &[name, ("note", n.as_str().into())])
        }
        Reason::DuressCheckIn { .. } => i.ta("reason-duress-checkin", &[name]),
        Reason::LeftSafeZone { zone } => i.ta("reason-zone-left", &[name, ("zone", zone.as_str().into())]),
        Reason::EnteredDangerZone { zone } => {
            i.ta("reason-zone-entered", &[name, ("zone", zone.as_str().into())])
        }
        Reason::DuressErase => i.ta("reason-duress-erase", &[name]),
        Reason::Other => return None,
    })
}
