//! Phone numbers: parsed, validated and normalized to E.164 with libphonenumber's metadata.

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid phone number in international form (E.164, e.g. +4915112345678)")]
pub struct InvalidPhone;

/// Normalizes `raw` (which must carry its country code, `+…`) to E.164.
pub fn normalize(raw: &str) -> Result<String, InvalidPhone> {
    let raw = raw.trim();
    if !raw.starts_with('+') || raw.len() > 32 {
        return Err(InvalidPhone);
    }
    let n = phonenumber::parse(None, raw).map_err(|_| InvalidPhone)?;
    if !phonenumber::is_valid(&n) {
        return Err(InvalidPhone);
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

/// The number with all but its last 4 digits hidden, for lists shown to other people.
pub fn mask(e164: &str) -> String {
    let keep = e164.len().saturating_sub(4);
    let cc = e164.len().min(3);
    format!("{}{}{}", &e164[..cc], "•".repeat(keep.saturating_sub(cc)), &e164[keep.max(cc)..])
}

/// Numbering block used by the SMS-pumping guard: everything but the last 4 digits.
pub fn prefix(e164: &str) -> &str {
    &e164[..e164.len().saturating_sub(4)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_rejects() {
        assert_eq!(normalize(" +49 151 12345678 ").unwrap(), "+4915112345678");
        assert_eq!(normalize("+1 (415) 555-2671").unwrap(), "+14155552671");
        assert!(normalize("015112345678").is_err(), "a national number has no country");
        assert!(normalize("+491511234").is_err());
        assert!(normalize("+15551234567").is_err());
        assert_eq!(mask("+4915112345678"), "+49•••••••5678");
        assert_eq!(prefix("+4915112345678"), "+491511234");
    }
}
