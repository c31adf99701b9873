//! Words on the pages in the reader's language: Fluent catalogs (`dashboard/locales/LANG/*.ftl`).

use std::cell::OnceCell;
use std::collections::HashMap;

use fluent_bundle::{FluentArgs, FluentBundle, FluentResource, FluentValue};
use leptos::prelude::*;

/// Languages with a full catalog, with their own names; the first is the fallback.
pub const LANGUAGES: &[(&str, &str)] = &[("en", "English"), ("ru", "Русский")];

/// One catalog file in every language.
macro_rules! catalog {
    ($file:literal) => {
        [include_str!(concat!("../locales/en/", $file)), include_str!(concat!("../locales/ru/", $file))]
    };
}

/// The catalogs, a file per area, in the order of [`LANGUAGES`] (the tests check that every
/// message is in every language with the same arguments, and that the pages use every one).
const CATALOGS: &[[&str; 2]] =
    &[catalog!("common.ftl"), catalog!("watch.ftl"), catalog!("sos.ftl"), catalog!("console.ftl")];

/// Where a reader's own choice is kept (this browser only; nothing is sent anywhere).
const STORAGE_KEY: &str = "alertme.lang";

thread_local! {
    static BUNDLES: OnceCell<HashMap<&'static str, FluentBundle<FluentResource>>> = const { OnceCell::new() };
}

fn with_bundle<R>(lang: &str, f: impl FnOnce(&FluentBundle<FluentResource>) -> R) -> R {
    BUNDLES.with(|cell| {
        let bundles = cell.get_or_init(|| {
            LANGUAGES
                .iter()
                .enumerate()
                .map(|(n, (lang, _))| {
                    let id = lang.parse().expect("a language tag");
                    let mut bundle = FluentBundle::new(vec![id]);
                    // Plain text: the pages put arguments in their own elements where direction
                    // matters, and the tests look for names as written.
                    bundle.set_use_isolating(false);
                    for files in CATALOGS {
                        let resource = FluentResource::try_new(files[n].to_owned())
                            .unwrap_or_else(|(_, e)| panic!("locales/{lang}: {e:?}"));
                        bundle.add_resource(resource).expect("message ids are unique");
                    }
                    (*lang, bundle)
                })
                .collect()
        });
        f(&bundles[lang])
    })
}

/// An argument of a message.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text, as is.
    Text(String),
    /// A number (plural forms follow it; Russian has three).
    Num(f64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<u64> for Arg {
    fn from(n: u64) -> Self {
        Arg::Num(n as f64)
    }
}

impl From<u8> for Arg {
    fn from(n: u8) -> Self {
        Arg::Num(n.into())
    }
}

impl From<u32> for Arg {
    fn from(n: u32) -> Self {
        Arg::Num(n.into())
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::Num(n as f64)
    }
}

impl From<f64> for Arg {
    fn from(n: f64) -> Self {
        Arg::Num(n)
    }
}

/// Message `id` in `lang`. A missing message shows its id (and says so in the console) rather
/// than breaking the page someone in a hurry is reading; the catalog test keeps that from shipping.
fn format(lang: &str, id: &str, args: &[(&str, Arg)]) -> String {
    with_bundle(lang, |bundle| {
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            web_sys::console::error_1(&format!("no message {id} in {lang}").into());
            return id.to_owned();
        };
        let mut fargs = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Text(t) => fargs.set(*name, FluentValue::from(t.as_str())),
                Arg::Num(n) => fargs.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let out = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
        if !errors.is_empty() {
            web_sys::console::error_1(&format!("message {id} in {lang}: {errors:?}").into());
        }
        out.into_owned()
    })
}

/// The reader's language, shared by every page through the context.
#[derive(Clone, Copy)]
pub struct I18n {
    lang: RwSignal<&'static str>,
}

impl I18n {
    /// The language now (tracked: text that reads it follows a switch).
    pub fn lang(&self) -> &'static str {
        self.lang.get()
    }

    /// Message `id` in the reader's language.
    pub fn t(&self, id: &str) -> String {
        format(self.lang.get(), id, &[])
    }

    /// Message `id` with arguments.
    pub fn ta(&self, id: &str, args: &[(&str, Arg)]) -> String {
        format(self.lang.get(), id, args)
    }

    /// Switches the pages to `lang` and keeps the choice in this browser.
    pub fn set(&self, lang: &'static str) {
        if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = s.set_item(STORAGE_KEY, lang);
        }
        self.lang.set(lang);
    }
}

/// A supported language for a tag as browsers write it (`ru`, `ru-RU`), if any.
fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().map(|(l, _)| *l).find(|l| *l == primary)
}

/// The reader's language: their own choice in this browser, else the first of the browser's
/// languages we have, else English.
fn initial() -> &'static str {
    let Some(window) = web_sys::window() else { return LANGUAGES[0].0 };
    let chosen = window.local_storage().ok().flatten().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
    if let Some(l) = chosen.as_deref().and_then(supported) {
        return l;
    }
    let nav = window.navigator();
    nav.languages()
        .iter()
        .filter_map(|v| v.as_string())
        .chain(nav.language())
        .find_map(|t| supported(&t))
        .unwrap_or(LANGUAGES[0].0)
}

/// Chooses the language and shares it with every page below; keeps `<html lang>` in step, so
/// screen readers speak the words in the right voice.
pub fn provide() -> I18n {
    let i18n = I18n { lang: RwSignal::new(initial()) };
    Effect::new(move |_| {
        let lang = i18n.lang.get();
        if let Some(html) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = html.set_attribute("lang", lang);
        }
    });
    provide_context(i18n);
    i18n
}

/// The reader's language (from [`provide`]).
pub fn use_i18n() -> I18n {
    expect_context::<I18n>()
}

/// "English | Русский": switches the pages' language.
#[component]
pub fn LanguageSwitch() -> impl IntoView {
    let i18n = use_i18n();
    let buttons = LANGUAGES
        .iter()
        .map(|(lang, name)| {
            let lang: &'static str = lang;
            view! {
                <button type="button" lang=lang data-testid=format!("lang-{lang}")
                    aria-pressed=move || (i18n.lang() == lang).to_string()
                    on:click=move |_| i18n.set(lang)>{*name}</button>
            }
        })
        .collect::<Vec<_>>();
    view! { <nav class="languages" aria-label=move || i18n.t("language-switch")>{buttons}</nav> }
}
