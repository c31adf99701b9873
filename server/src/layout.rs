//! The layering rules, checked: a test that fails when a module reaches a layer it must not.
//!
//! Dependencies point down only: `web` → `domain` → `cluster`, `live`, `storage`, `sms`, `geocode`;
//! `cluster` (NATS) uses `live` and `storage`; `sms` may use `storage` (its outbox rows); `live` and `storage` use nothing but the shared kernel
//! (`config`, `error`, `clock`, `telemetry`, `e164`, `media`). Only `web` knows HTTP; only
//! `domain` and `storage` know SeaORM. `cli` is a front end like `web`, for operators.

use std::path::{Path, PathBuf};

/// The kernel every layer may use.
const KERNEL: &[&str] = &["chain", "config", "error", "clock", "telemetry", "e164", "media", "now_ms"];
/// Crates that speak HTTP.
const HTTP: &[&str] = &["axum", "hyper", "hyper_util", "tower", "tower_http", "http"];
/// Crates that speak SQL.
const SQL: &[&str] = &["sea_orm", "sea_query", "sqlx"];

/// One layer: its folder, the layers below it that it may use, and the crates it must not.
struct Layer {
    name: &'static str,
    may_use: &'static [&'static str],
    no_http: bool,
    no_sql: bool,
}

const LAYERS: &[Layer] = &[
    Layer { name: "web", may_use: &["domain", "live", "sms"], no_http: false, no_sql: true },
    Layer { name: "cli", may_use: &["domain", "storage"], no_http: true, no_sql: true },
    Layer {
        name: "domain",
        may_use: &["cluster", "live", "storage", "sms", "geocode"],
        no_http: true,
        no_sql: false,
    },
    Layer { name: "cluster", may_use: &["live", "storage"], no_http: true, no_sql: true },
    Layer { name: "sms", may_use: &["storage"], no_http: true, no_sql: true },
    Layer { name: "geocode", may_use: &[], no_http: true, no_sql: true },
    Layer { name: "live", may_use: &[], no_http: true, no_sql: true },
    Layer { name: "storage", may_use: &[], no_http: true, no_sql: false },
];

/// Kernel modules (files at the top of `src/`) use no layer; `lib.rs`, `main.rs` and `app.rs`
/// wire the layers together and may use them all, and `config.rs` is the command line, which
/// names each layer's arguments (`sms::SmsConfig`, `cli::timer::TimerArgs`).
const WIRING: &[&str] = &["lib.rs", "main.rs", "app.rs", "config.rs", "layout.rs"];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("source folder") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The code of a file without its comments (doc comments name other layers freely).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Paths `prefix::name` in `code` (`name` the identifier after the prefix), where the prefix
/// is not itself the tail of a longer identifier.
fn paths<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    code.match_indices(prefix).filter_map(move |(i, _)| {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return None;
        }
        let rest = &code[i + prefix.len()..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// External crates named in `code` (`name::` at the start of a path).
fn names_crate(code: &str, krate: &str) -> bool {
    paths(code, &format!("{krate}::")).next().is_some()
}

fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("under src").to_string_lossy().replace('\\', "/");
        let text = code(&std::fs::read_to_string(&file).expect("readable"));
        let top = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
        let layer = LAYERS.iter().find(|l| l.name == top);
        if layer.is_none() && WIRING.contains(&rel.as_str()) {
            continue;
        }
        let (may_use, no_http, no_sql): (&[&str], bool, bool) = match layer {
            Some(l) => (l.may_use, l.no_http, l.no_sql),
            // A kernel module.
            None => (&[], true, true),
        };
        for used in paths(&text, "crate::") {
            let ok = used == top || KERNEL.contains(&used) || may_use.contains(&used);
            if !ok {
                found.push(format!("{rel}: uses crate::{used}"));
            }
        }
        for (banned, list) in [(no_http, HTTP), (no_sql, SQL)] {
            for krate in list.iter().filter(|_| banned) {
                if names_crate(&text, krate) {
                    found.push(format!("{rel}: uses {krate}"));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The modules of `layer` that each of its modules names (`crate::layer::x`, `crate::layer::{x, y}`).
fn module_graph(src: &Path, layer: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut graph = std::collections::BTreeMap::new();
    for file in rust_files(&src.join(layer)) {
        let name = file.file_stem().expect("a file").to_string_lossy().into_owned();
        let text = code(&std::fs::read_to_string(&file).expect("readable"));
        let prefix = format!("crate::{layer}::");
        let mut uses: Vec<String> =
            paths(&text, &prefix).filter(|m| !m.is_empty()).map(str::to_owned).collect();
        for (i, _) in text.match_indices(&format!("{prefix}{{")) {
            let group = &text[i + prefix.len() + 1..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            uses.extend(group.split(',').map(|m| m.trim().split("::").next().unwrap_or("").to_owned()));
        }
        uses.retain(|m| {
            !m.is_empty() && *m != name && m != "self" && m.chars().next().is_some_and(char::is_lowercase)
        });
        uses.sort();
        uses.dedup();
        graph.insert(name, uses);
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn cycle(graph: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &std::collections::BTreeMap<String, Vec<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph.keys().find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn modules_of_a_layer_call_each_other_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for layer in ["web", "domain", "live", "storage", "sms"] {
        let graph = module_graph(&src, layer);
        assert!(graph.len() > 1, "{layer} has modules");
        if let Some(c) = cycle(&graph) {
            panic!("{layer} modules call each other in a circle: {}", c.join(" → "));
        }
    }
    let mut circle = std::collections::BTreeMap::new();
    circle.insert("a".to_owned(), vec!["b".to_owned()]);
    circle.insert("b".to_owned(), vec!["a".to_owned()]);
    assert_eq!(cycle(&circle), Some(vec!["a".into(), "b".into(), "a".into()]));
}

#[test]
fn layers_depend_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering rules broken (see server/src/layout.rs):\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_broken_rule() {
    let dir = std::env::temp_dir().join(format!("alertme-layout-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("live")).unwrap();
    std::fs::write(
        dir.join("live/hub.rs"),
        "// crate::web is fine in a comment\nuse crate::web::x;\nuse axum::Router;\n",
    )
    .unwrap();
    std::fs::write(dir.join("clock.rs"), "use sea_orm::Db;\nfn f() { crate::live::x(); }\n").unwrap();
    let found = violations(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        [
            "clock.rs: uses crate::live",
            "clock.rs: uses sea_orm",
            "live/hub.rs: uses axum",
            "live/hub.rs: uses crate::web",
        ]
    );
}
