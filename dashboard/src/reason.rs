//! Why the server raised an alert, in the reader's language (the server sends it as data).

use alertme_protocol::{AlertInfo, Reason};

use crate::i18n::I18n;

/// Why the server raised `alert`, in the reader's words; an alert raised before reasons were
/// data has only the server's English note. `None` for an SOS from the button.
pub fn of_alert(i: I18n, alert: &AlertInfo) -> Option<String> {
    match &alert.reason {
        Some(r) => sentence(i, &alert.user_name, r),
        None => alert.note.clone(),
    }
}

/// One sentence naming the person: "Ana did not check in on time: “walking home”".
/// The person's own words (note, destination, zone name) are shown as they wrote them (the
/// server stores them trimmed, empty ones as none). `None` for a reason this build does not know.
fn sentence(i: I18n, name: &str, reason: &Reason) -> Option<String> {
    let name = ("name", name.into());
    Some(match reason {
        Reason::MissedCheckIn { note, destination } => match (note.as_deref(), destination.as_deref()) {
            (Some(n), Some(d)) => {
                i.ta("reason-checkin-note-to", &[name, ("note", n.into()), ("destination", d.into())])
            }
            (Some(n), None) => i.ta("reason-checkin-note", &[name, ("note", n.into())]),
            (None, Some(d)) => i.ta("reason-checkin-to", &[name, ("destination", d.into())]),
            (None, None) => i.ta("reason-checkin", &[name]),
        },
        Reason::DuressCheckIn { note: Some(n) } => {
            i.ta("reason-duress-checkin-note", &[name, ("note", n.as_str().into())])
        }
        Reason::DuressCheckIn { note: None } => i.ta("reason-duress-checkin", &[name]),
        Reason::LeftSafeZone { zone } => i.ta("reason-zone-left", &[name, ("zone", zone.as_str().into())]),
        Reason::EnteredDangerZone { zone } => {
            i.ta("reason-zone-entered", &[name, ("zone", zone.as_str().into())])
        }
        Reason::DuressErase => i.ta("reason-duress-erase", &[name]),
        Reason::Other => return None,
    })
}
