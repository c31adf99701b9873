//! Words people read, in their language: Fluent catalogs (`server/locales/LANG/*.ftl`) built in.

use std::collections::HashMap;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// Languages with a full catalog; the first is the fallback.
pub const LANGUAGES: &[&str] = &["en", "ru"];

/// Each language's catalog source.
const CATALOGS: &[(&str, &str)] =
    &[("en", include_str!("../../locales/en/sms.ftl")), ("ru", include_str!("../../locales/ru/sms.ftl"))];

/// A supported language for a tag as people and browsers write it (`ru`, `ru-RU`, `EN`), if any.
pub fn language(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == primary)
}

/// A language a person or a contact asked for: `None` stays `None`, a supported tag becomes its
/// language, anything else is refused with the list of languages.
pub fn checked(tag: Option<&str>) -> crate::error::Result<Option<&'static str>> {
    match tag.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => language(t).map(Some).ok_or_else(|| {
            crate::error::Error::BadRequest(format!("language must be one of {}", LANGUAGES.join(", ")))
        }),
    }
}

fn bundles() -> &'static HashMap<&'static str, FluentBundle<FluentResource>> {
    static BUNDLES: OnceLock<HashMap<&'static str, FluentBundle<FluentResource>>> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        CATALOGS
            .iter()
            .map(|(lang, source)| {
                let resource = FluentResource::try_new((*source).to_owned())
                    .unwrap_or_else(|(_, e)| panic!("locales/{lang}: {e:?}"));
                let id: unic_langid::LanguageIdentifier = lang.parse().expect("a language tag");
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                // No Unicode isolation marks around arguments: in a text message they are
                // characters outside GSM-7 (each English text would go as UCS-2) and show as
                // boxes on some phones.
                bundle.set_use_isolating(false);
                bundle.add_resource(resource).expect("message ids are unique");
                (*lang, bundle)
            })
            .collect()
    })
}

/// An argument of a message.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    /// Text, as is.
    Text(&'a str),
    /// A count (plural forms follow it).
    Count(u64),
}

/// Message `id` in `lang` (the fallback language if unsupported) with `args`. Panics on a
/// message missing from the catalog or an argument it needs missing: the tests below format every
/// message of every language, so that cannot ship.
pub fn text(lang: &str, id: &str, args: &[(&str, Arg<'_>)]) -> String {
    let lang = language(lang).unwrap_or(LANGUAGES[0]);
    let bundle = &bundles()[lang];
    let message = bundle.get_message(id).unwrap_or_else(|| panic!("no message {id} in {lang}"));
    let pattern = message.value().unwrap_or_else(|| panic!("message {id} in {lang} has no value"));
    let mut fargs = FluentArgs::new();
    for (name, value) in args {
        match value {
            Arg::Text(t) => fargs.set(*name, FluentValue::from(*t)),
            Arg::Count(n) => fargs.set(*name, FluentValue::from(*n)),
        }
    }
    let mut errors = Vec::new();
    let out = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
    assert!(errors.is_empty(), "message {id} in {lang}: {errors:?}");
    out.into_owned()
}

/// How many SMS segments a text takes: GSM-7 (160 characters, 153 per part when split; the
/// extension characters count twice) when every character is in the GSM 03.38 alphabet, else
/// UCS-2 (70, or 67 per part; characters beyond the Basic Multilingual Plane count twice).
pub fn sms_segments(text: &str) -> usize {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "^{}\\[~]|€\u{c}";
    let gsm: Option<usize> = text.chars().try_fold(0, |n, c| {
        if BASIC.contains(c) {
            Some(n + 1)
        } else if EXTENSION.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (units, single, part) = match gsm {
        Some(n) => (n, 160, 153),
        None => (text.chars().map(char::len_utf16).sum(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message with realistic arguments: a long Russian or English name, a real link.
    fn samples() -> Vec<(&'static str, Vec<(&'static str, Arg<'static>)>)> {
        let link = Arg::Text("https://alertme.example.org/w/amw_7Kq2xN4fP9sL1vB8cD3eR6tY0uI5oA2mQ7wE4zX1");
        let name = Arg::Text("Anastasia");
        vec![
            ("sms-code", vec![("code", Arg::Text("123456")), ("minutes", Arg::Count(10))]),
            ("sms-contact-added", vec![("name", name.clone())]),
            ("sms-alert", vec![("name", name.clone()), ("link", link.clone())]),
            ("sms-alert-duress", vec![("name", name.clone()), ("link", link.clone())]),
            ("sms-alert-timer", vec![("name", name.clone()), ("link", link.clone())]),
            (
                "sms-alert-timer-detail",
                vec![
                    ("name", name.clone()),
                    ("detail", Arg::Text("walking home, Kreuzberg")),
                    ("link", link.clone()),
                ],
            ),
            (
                "sms-alert-zone-left",
                vec![("name", name.clone()), ("zone", Arg::Text("Home")), ("link", link.clone())],
            ),
            (
                "sms-alert-zone-entered",
                vec![("name", name.clone()), ("zone", Arg::Text("Park")), ("link", link.clone())],
            ),
            ("sms-duress-cancel", vec![("name", name.clone()), ("link", link.clone())]),
            (
                "sms-phone-silent",
                vec![
                    ("name", name.clone()),
                    ("position", Arg::Text("https://www.openstreetmap.org/?mlat=52.51409&mlon=13.39570")),
                    ("link", link.clone()),
                ],
            ),
            ("sms-phone-silent-nowhere", vec![("name", name.clone()), ("link", link.clone())]),
            ("sms-ended", vec![("name", name.clone())]),
            ("sms-resolved-by", vec![("name", name.clone()), ("responder", Arg::Text("Margarita"))]),
            ("sms-resolved", vec![("name", name)]),
        ]
    }

    #[test]
    fn every_message_exists_in_every_language_and_no_placeholder_is_left() {
        for lang in LANGUAGES {
            let ids: Vec<&str> = bundle_ids(lang);
            for (id, args) in samples() {
                assert!(ids.contains(&id), "{id} missing in {lang}");
                let out = text(lang, id, &args);
                assert!(!out.contains('{') && !out.contains('}'), "{lang} {id}: {out}");
                for (_, a) in &args {
                    if let Arg::Text(t) = a {
                        assert!(out.contains(t), "{lang} {id} lost {t}: {out}");
                    }
                }
            }
            // Nothing in a catalog that the code never sends.
            let known: Vec<&str> = samples().iter().map(|(id, _)| *id).collect();
            for id in ids {
                assert!(known.contains(&id), "{lang} has {id}, which nothing sends");
            }
        }
    }

    fn bundle_ids(lang: &str) -> Vec<&'static str> {
        let source = CATALOGS.iter().find(|(l, _)| *l == lang).expect("catalog").1;
        source
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split(" =").next())
            .collect()
    }

    #[test]
    fn russian_plurals_have_three_forms() {
        let minutes = |n| text("ru", "sms-code", &[("code", Arg::Text("1")), ("minutes", Arg::Count(n))]);
        assert!(minutes(1).contains("1 минуту"));
        assert!(minutes(3).contains("3 минуты"));
        assert!(minutes(10).contains("10 минут"));
        assert!(minutes(21).contains("21 минуту"));
        assert!(text("en", "sms-code", &[("code", Arg::Text("1")), ("minutes", Arg::Count(1))])
            .contains("1 minute."));
    }

    /// English texts fit GSM-7 (one stray dash would make them UCS-2) and, links aside, one
    /// segment; Russian ones are UCS-2 by nature: a 70-character segment cannot hold a link, so
    /// they are held to two (three for the longest, which carry two links).
    #[test]
    fn texts_stay_within_their_segments() {
        for (id, args) in samples() {
            let en = text("en", id, &args);
            assert!(
                en.chars().all(|c| sms_segments(&c.to_string()) == 1 && c.is_ascii()),
                "{id} is not GSM-7: {en}"
            );
            let ru = text("ru", id, &args);
            let (en_n, ru_n) = (sms_segments(&en), sms_segments(&ru));
            eprintln!(
                "{id}: en {en_n} ({} chars), ru {ru_n} ({} chars)",
                en.chars().count(),
                ru.chars().count()
            );
            // Two links, or the person's own words inside.
            let long = id == "sms-phone-silent" || id == "sms-alert-timer-detail";
            assert!(en_n <= if long { 2 } else { 1 }, "{id}: {en_n} English segments: {en}");
            assert!(ru_n <= if long { 3 } else { 2 }, "{id}: {ru_n} Russian segments: {ru}");
        }
    }

    #[test]
    fn segments_are_counted_by_the_gsm_and_ucs2_rules() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"€".repeat(80)), 1, "extension characters count twice");
        assert_eq!(sms_segments(&"я".repeat(70)), 1);
        assert_eq!(sms_segments(&"я".repeat(71)), 2);
        assert_eq!(sms_segments(&format!("{}—", "a".repeat(69))), 1, "one dash: UCS-2");
        assert_eq!(sms_segments(&format!("{}—", "a".repeat(70))), 2);
    }

    #[test]
    fn language_tags_are_matched_by_their_primary_part() {
        assert_eq!(language("ru-RU"), Some("ru"));
        assert_eq!(language("EN"), Some("en"));
        assert_eq!(language("de"), None);
        assert_eq!(text("de", "sms-ended", &[("name", Arg::Text("Ana"))]), "All clear: Ana ended the SOS.");
    }
}
