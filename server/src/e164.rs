//! Phone numbers: parsed, validated and normalized to E.164 with libphonenumber's metadata;
//! numbers that cost the sender money (premium rate, shared cost) and countries a deployment
//! does not text are refused.

use phonenumber::Type;

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPhone {
    /// Not a number at all, or without its country code.
    #[error("not a valid phone number in international form (E.164, e.g. +4915112345678)")]
    Malformed,
    /// A premium-rate or shared-cost number: texting it costs money (SMS pumping).
    #[error("premium-rate and shared-cost numbers cannot be used")]
    Costly,
    /// A country this deployment does not text (`ALERTME_SMS_COUNTRIES`).
    #[error("numbers from {0} cannot be used on this server")]
    Country(String),
}

/// Normalizes `raw` (which must carry its country code, `+…`) to E.164; refuses premium-rate
/// and shared-cost numbers.
pub fn normalize(raw: &str) -> Result<String, InvalidPhone> {
    let raw = raw.trim();
    if !raw.starts_with('+') || raw.len() > 32 {
        return Err(InvalidPhone::Malformed);
    }
    let n = phonenumber::parse(None, raw).map_err(|_| InvalidPhone::Malformed)?;
    if !phonenumber::is_valid(&n) {
        return Err(InvalidPhone::Malformed);
    }
    if matches!(n.number_type(&phonenumber::metadata::DATABASE), Type::PremiumRate | Type::SharedCost) {
        return Err(InvalidPhone::Costly);
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

/// The countries a deployment texts (ISO 3166 codes); empty for all.
#[derive(Debug, Clone, Default)]
pub struct Countries(Vec<String>);

impl Countries {
    /// From the configured list (`DE,GB,…`, any case).
    pub fn new(list: &[String]) -> Self {
        Self(list.iter().map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty()).collect())
    }

    /// Normalizes `raw` and checks it may be texted here.
    pub fn textable(&self, raw: &str) -> Result<String, InvalidPhone> {
        let e164 = normalize(raw)?;
        if self.0.is_empty() {
            return Ok(e164);
        }
        // The region of the number itself (+44 7911… is GB, not the first region of +44).
        let region = phonenumber::parse(None, &e164)
            .ok()
            .and_then(|n| n.metadata(&phonenumber::metadata::DATABASE).map(|m| m.id().to_owned()))
            .unwrap_or_else(|| "an unknown country".into());
        if self.0.contains(&region) {
            Ok(e164)
        } else {
            Err(InvalidPhone::Country(region))
        }
    }
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

    #[test]
    fn costly_numbers_and_countries_are_refused() {
        // libphonenumber's example premium-rate and shared-cost numbers.
        for costly in ["+499001234567", "+449012345678", "+19002345678", "+33891123456", "+448431234567"] {
            assert_eq!(normalize(costly), Err(InvalidPhone::Costly), "{costly}");
        }
        let de_gb = Countries::new(&["de".into(), " GB".into()]);
        assert_eq!(de_gb.textable("+4915112345678").unwrap(), "+4915112345678");
        assert!(de_gb.textable("+447400123456").is_ok(), "{:?}", de_gb.textable("+447400123456"));
        assert_eq!(
            de_gb.textable("+447911123456"),
            Err(InvalidPhone::Country("GG".into())),
            "Guernsey shares +44"
        );
        assert_eq!(de_gb.textable("+14155552671"), Err(InvalidPhone::Country("US".into())));
        assert!(Countries::default().textable("+14155552671").is_ok());
    }
}
