//! Offline verification of an evidence bundle: signatures, file fingerprints, the hash chain and
//! the recording's bytes, stopping at the first thing that does not match.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::bundle::{Line, Manifest, FORMAT};
use crate::chain;

/// A bundle that checked out.
#[derive(Debug)]
pub struct Valid {
    /// Alert id.
    pub alert: String,
    /// Chain items after the start record.
    pub items: i64,
    /// Chain head, hex.
    pub head: String,
    /// The key it was signed with, base64.
    pub key: String,
    /// Whether that key was given by the caller (else only the bundle's own claim).
    pub key_given: bool,
}

/// The first thing that does not match, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn bad(s: impl Into<String>) -> Invalid {
    Invalid(s.into())
}

/// Checks a bundle. With `key` (base64 or hex), the manifest must be signed by it; without, by the
/// key the manifest names (which proves integrity, not origin: compare that key yourself).
pub fn verify(zip_bytes: &[u8], key: Option<&str>) -> Result<Valid, Invalid> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| bad(format!("not a zip file: {e}")))?;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| bad(format!("zip entry {i} unreadable: {e}")))?;
        let name = f.name().map_err(|e| bad(format!("zip entry {i}: bad name ({e})")))?.to_string();
        let mut b = Vec::new();
        f.read_to_end(&mut b).map_err(|e| bad(format!("{name}: unreadable ({e})")))?;
        // Two entries of one name: a program showing the first would show what was not checked.
        if files.insert(name.clone(), b).is_some() {
            return Err(bad(format!("{name}: in the zip twice")));
        }
    }
    let manifest_bytes = files.get("manifest.json").ok_or_else(|| bad("manifest.json is missing"))?;
    let sig = files.get("manifest.sig").ok_or_else(|| bad("manifest.sig is missing"))?;
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| bad(format!("manifest.json does not match its signature or is damaged ({e})")))?;
    let (key, key_given) = match key {
        Some(k) => (
            super::key::normalize_public(k)
                .ok_or_else(|| bad("the given key is not an Ed25519 public key"))?,
            true,
        ),
        None => (manifest.public_key.clone(), false),
    };
    let sig = String::from_utf8_lossy(sig).trim().to_owned();
    if !super::key::verify(&key, manifest_bytes, &sig) {
        return Err(bad("manifest.json: its signature does not match (the manifest was changed, or signed by another key)"));
    }
    if manifest.format != FORMAT {
        return Err(bad(format!("manifest.json: unknown format {}", manifest.format)));
    }
    for f in &manifest.files {
        let b = files.get(&f.name).ok_or_else(|| bad(format!("{}: missing", f.name)))?;
        if hex::encode(Sha256::digest(b)) != f.sha256 || b.len() as u64 != f.bytes {
            return Err(bad(format!(
                "{}: contents changed (its SHA-256 is not the one in the manifest)",
                f.name
            )));
        }
    }
    if let Some(extra) = files.keys().find(|n| {
        *n != "manifest.json" && *n != "manifest.sig" && !manifest.files.iter().any(|f| &f.name == *n)
    }) {
        return Err(bad(format!("{extra}: not listed in the manifest")));
    }
    // The chain, link by link, and each media chunk against the recording's bytes.
    let text = std::str::from_utf8(files.get("chain.jsonl").ok_or_else(|| bad("chain.jsonl is missing"))?)
        .map_err(|_| bad("chain.jsonl is not text"))?;
    let mut prev: Option<chain::Hash> = None;
    let mut heads = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| bad(format!("chain.jsonl line {}: unreadable ({e})", i + 1)))?;
        if line.n != i as i64 {
            return Err(bad(format!("chain item {i}: out of place (numbered {})", line.n)));
        }
        let h = match &prev {
            None => chain::anchor(&line.c),
            Some(p) => chain::link(p, &line.c),
        };
        let what = describe(&line.c);
        if chain::hex(&h) != line.h {
            return Err(bad(format!("chain item {i} ({what}): its hash does not match")));
        }
        if i == 0 && !line.c.contains(&format!("\"alert\":\"{}\"", manifest.alert)) {
            return Err(bad("chain item 0: the start record is not this alert's"));
        }
        check_media(&line.c, &files, &manifest).map_err(|m| bad(format!("chain item {i} ({what}): {m}")))?;
        heads.push(line.h.clone());
        prev = Some(h);
    }
    let items = heads.len() as i64 - 1;
    if items < 0 {
        return Err(bad("chain.jsonl is empty"));
    }
    if items != manifest.chain_items || heads.last() != Some(&manifest.chain_head) {
        return Err(bad("manifest.json: the chain head it names is not the chain's"));
    }
    for s in &manifest.seals {
        let msg = chain::seal_message(&manifest.alert, s.items, &s.head, s.signed_at);
        if !super::key::verify(&s.public_key, msg.as_bytes(), &s.signature) {
            return Err(bad(format!(
                "seal of {} items ({}): its signature does not match",
                s.items, s.reason
            )));
        }
        if heads.get(s.items as usize) != Some(&s.head) {
            return Err(bad(format!(
                "seal of {} items ({}): the chain there is different",
                s.items, s.reason
            )));
        }
    }
    Ok(Valid { alert: manifest.alert, items, head: manifest.chain_head, key, key_given })
}

/// "fix 12", "audio chunk 40 (part 0)", "start".
fn describe(c: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(c).unwrap_or_default();
    match v["kind"].as_str() {
        Some("fix") => format!("fix {}", v["seq"]),
        Some("start") => "start record".into(),
        Some(k) => format!("{k} chunk {} of part {}", v["seq"], v["part"]),
        None => "unreadable record".into(),
    }
}

/// A media record's bytes must be where it says in its recording part.
fn check_media(c: &str, files: &HashMap<String, Vec<u8>>, manifest: &Manifest) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(c).map_err(|_| "unreadable record".to_owned())?;
    if v["kind"] != "audio" {
        return Ok(());
    }
    let part = v["part"].as_i64().ok_or("no part")?;
    let prefix = format!("recording/part-{part}.");
    let name = manifest
        .files
        .iter()
        .map(|f| &f.name)
        .find(|n| n.starts_with(&prefix))
        .ok_or("its recording part is missing")?;
    let bytes = &files[name];
    let (offset, len) =
        (v["offset"].as_u64().ok_or("no offset")? as usize, v["len"].as_u64().ok_or("no len")? as usize);
    let slice =
        bytes.get(offset..offset + len).ok_or_else(|| format!("{name} is shorter than the chain says"))?;
    if Some(hex::encode(Sha256::digest(slice)).as_str()) != v["sha256"].as_str() {
        return Err(format!("{name}: the bytes at {offset}..{} changed", offset + len));
    }
    Ok(())
}
