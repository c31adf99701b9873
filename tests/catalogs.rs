//! Every message in every language, with every placeholder filled: the Fluent catalogs of the pages and the texts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fluent_bundle::{FluentArgs, FluentBundle, FluentResource, FluentValue};
use fluent_syntax::ast;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Message id → the variables it uses, per language, for one catalog directory
/// (`LANG/*.ftl`, all files of a language in one bundle as the code loads them).
fn catalog(dir: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out = BTreeMap::new();
    for lang in std::fs::read_dir(dir).unwrap() {
        let lang = lang.unwrap().path();
        let mut messages = BTreeMap::new();
        for file in std::fs::read_dir(&lang).unwrap() {
            let file = file.unwrap().path();
            let source = std::fs::read_to_string(&file).unwrap();
            let resource = fluent_syntax::parser::parse(source.as_str())
                .unwrap_or_else(|(_, errors)| panic!("{}: {errors:?}", file.display()));
            for entry in resource.body {
                match entry {
                    ast::Entry::Message(m) => {
                        let mut vars = BTreeSet::new();
                        if let Some(p) = &m.value {
                            pattern_vars(p, &mut vars);
                        }
                        let id = m.id.name.to_owned();
                        assert!(
                            messages.insert(id.clone(), vars).is_none(),
                            "{id} twice in {}",
                            lang.display()
                        );
                    }
                    ast::Entry::Junk { content } => panic!("{}: cannot parse {content:?}", file.display()),
                    _ => {}
                }
            }
        }
        out.insert(lang.file_name().unwrap().to_string_lossy().into_owned(), messages);
    }
    out
}

fn pattern_vars(p: &ast::Pattern<&str>, vars: &mut BTreeSet<String>) {
    for e in &p.elements {
        if let ast::PatternElement::Placeable { expression } = e {
            expression_vars(expression, vars);
        }
    }
}

fn expression_vars(e: &ast::Expression<&str>, vars: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Select { selector, variants } => {
            // A variable that picks a variant is a count: marked `#name` (formatted as a number).
            if let ast::InlineExpression::VariableReference { id } = selector {
                vars.insert(format!("#{}", id.name));
            }
            inline_vars(selector, vars);
            for v in variants {
                pattern_vars(&v.value, vars);
            }
        }
        ast::Expression::Inline(i) => inline_vars(i, vars),
    }
}

fn inline_vars(i: &ast::InlineExpression<&str>, vars: &mut BTreeSet<String>) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            vars.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => expression_vars(expression, vars),
        _ => {}
    }
}

/// Formats every message of `lang` with every variable it uses set (numbers where a variable
/// selects a plural form: 1, 3 and 5 each), and fails on an error or a brace left over.
fn format_all(dir: &Path, lang: &str, messages: &BTreeMap<String, BTreeSet<String>>) {
    let mut bundle = FluentBundle::new(vec![lang.parse::<unic_langid::LanguageIdentifier>().unwrap()]);
    bundle.set_use_isolating(false);
    for file in std::fs::read_dir(dir.join(lang)).unwrap() {
        let source = std::fs::read_to_string(file.unwrap().path()).unwrap();
        bundle.add_resource(FluentResource::try_new(source).unwrap()).unwrap();
    }
    for (id, vars) in messages {
        // Every plural form: 0, 1, 3, 5, 21 (Russian: many, one, few, many, one).
        let numeric = |v: &str| vars.contains(&format!("#{v}")) || ["n", "count", "pct"].contains(&v);
        for n in [0, 1, 3, 5, 21] {
            let mut args = FluentArgs::new();
            for v in vars.iter().filter(|v| !v.starts_with('#')) {
                // Counts are numbers; everything else is text a person would see there.
                let value =
                    if numeric(v) { FluentValue::from(n) } else { FluentValue::from(format!("<{v}>")) };
                args.set(v.as_str(), value);
            }
            let pattern = bundle.get_message(id).and_then(|m| m.value()).unwrap();
            let mut errors = Vec::new();
            let out = bundle.format_pattern(pattern, Some(&args), &mut errors);
            assert!(errors.is_empty(), "{lang} {id}: {errors:?}");
            assert!(!out.contains('{') && !out.contains('}'), "{lang} {id}: {out}");
            for v in vars.iter().filter(|v| !v.starts_with('#')) {
                if !numeric(v) {
                    assert!(out.contains(&format!("<{v}>")), "{lang} {id} drops ${v}: {out}");
                }
            }
        }
    }
}

fn check_languages_agree(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let all = catalog(dir);
    assert!(all.contains_key("en") && all.contains_key("ru"), "{}: {:?}", dir.display(), all.keys());
    let en = &all["en"];
    for (lang, messages) in &all {
        let (ids, en_ids): (BTreeSet<_>, BTreeSet<_>) = (messages.keys().collect(), en.keys().collect());
        assert_eq!(ids, en_ids, "{}: {lang} and en differ in ids", dir.display());
        for (id, vars) in messages {
            assert_eq!(vars, &en[id], "{}: {lang} {id} uses other variables than en", dir.display());
        }
        format_all(dir, lang, messages);
    }
    en.clone()
}

#[test]
fn every_text_message_is_in_every_language_with_the_same_placeholders() {
    check_languages_agree(&root().join("server/locales"));
}

/// String literals in the dashboard's code that look like message ids (`area-words`), leaving
/// out attribute values written `attr="…"` in `view!` (test ids, element ids).
fn id_literals(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            id_literals(&path, out);
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let bytes = source.as_bytes();
        let mut rest = 0;
        while let Some(start) = source[rest..].find('"').map(|i| rest + i) {
            let Some(len) = source[start + 1..].find('"') else { break };
            let lit = &source[start + 1..start + 1 + len];
            rest = start + len + 2;
            let looks_like_id = lit.contains('-')
                && lit.starts_with(|c: char| c.is_ascii_lowercase())
                && lit.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            let attribute = start > 0 && bytes[start - 1] == b'=';
            if looks_like_id && !attribute {
                out.insert(lit.to_owned());
            }
        }
    }
}

#[test]
fn every_page_message_is_in_every_language_and_every_one_is_used() {
    let dir = root().join("dashboard/locales");
    let en = check_languages_agree(&dir);
    let mut used = BTreeSet::new();
    id_literals(&root().join("dashboard/src"), &mut used);
    // Message ids begin with their area; a literal with such a beginning must be a message.
    let areas: BTreeSet<&str> = en.keys().filter_map(|id| id.split('-').next()).collect();
    let unknown: Vec<_> = used
        .iter()
        .filter(|l| areas.contains(l.split('-').next().unwrap()) && !en.contains_key(*l))
        .collect();
    assert!(unknown.is_empty(), "the pages ask for messages no catalog has: {unknown:?}");
    let unused: Vec<_> = en.keys().filter(|id| !used.contains(*id)).collect();
    assert!(unused.is_empty(), "messages nothing on the pages uses: {unused:?}");
}

#[test]
fn russian_counts_take_their_three_forms() {
    let dir = root().join("dashboard/locales/ru");
    let mut bundle = FluentBundle::new(vec!["ru".parse::<unic_langid::LanguageIdentifier>().unwrap()]);
    bundle.set_use_isolating(false);
    for file in std::fs::read_dir(&dir).unwrap() {
        let source = std::fs::read_to_string(file.unwrap().path()).unwrap();
        bundle.add_resource(FluentResource::try_new(source).unwrap()).unwrap();
    }
    let days = |n: u32| {
        let mut args = FluentArgs::new();
        args.set("n", n);
        let pattern = bundle.get_message("ago-days").unwrap().value().unwrap();
        bundle.format_pattern(pattern, Some(&args), &mut Vec::new()).into_owned()
    };
    assert_eq!(days(1), "1 день назад");
    assert_eq!(days(3), "3 дня назад");
    assert_eq!(days(5), "5 дней назад");
    assert_eq!(days(21), "21 день назад");
}
