//! The server's Ed25519 evidence key: loaded or made once, signs chain heads and export manifests.

use anyhow::Context;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Where the key lives when none is configured.
pub const KEY_FILE: &str = "evidence-signing.key";

/// The signing key (its public half is published at `/v1/evidence/key`).
pub struct SealKey(SigningKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.public())
    }
}

impl SealKey {
    /// The configured key (32 bytes, base64 or hex), else `DATA_DIR/evidence-signing.key`, made
    /// on first use with mode 0600.
    pub fn load(configured: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        if let Some(s) = configured {
            return Self::parse(s).context("ALERTME_SIGNING_KEY must be 32 bytes, base64 or hex");
        }
        let path = data_dir.join(KEY_FILE);
        if let Ok(s) = std::fs::read_to_string(&path) {
            return Self::parse(&s).with_context(|| format!("{} holds no key", path.display()));
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let seed: [u8; 32] = rand::random();
        // Written whole under a name of its own, then linked into place: a process starting at
        // the same moment finds either no key or a complete one, and never overwrites it.
        let tmp = data_dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
        let written =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).and_then(|mut f| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
                std::io::Write::write_all(&mut f, B64.encode(seed).as_bytes())?;
                f.sync_all()
            });
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self(SigningKey::from_bytes(&seed))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(None, data_dir),
            Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let bytes = if s.len() == 64 { hex::decode(s).ok()? } else { B64.decode(s).ok()? };
        Some(Self(SigningKey::from_bytes(&bytes.try_into().ok()?)))
    }

    /// The public key, base64.
    pub fn public(&self) -> String {
        B64.encode(self.0.verifying_key().to_bytes())
    }

    /// Signs `msg`; the signature in base64.
    pub fn sign(&self, msg: &[u8]) -> String {
        B64.encode(self.0.sign(msg).to_bytes())
    }
}

/// Whether `signature` (base64) is `public` (base64)'s signature of `msg`.
pub fn verify(public: &str, msg: &[u8], signature: &str) -> bool {
    let Some(key) = decode::<32>(public).and_then(|k| VerifyingKey::from_bytes(&k).ok()) else {
        return false;
    };
    let Some(sig) = decode::<64>(signature) else { return false };
    key.verify_strict(msg, &Signature::from_bytes(&sig)).is_ok()
}

/// A public key as given (base64 or hex) in the form it is shown (base64), if it is one.
pub fn normalize_public(s: &str) -> Option<String> {
    let s = s.trim();
    let bytes: [u8; 32] =
        if s.len() == 64 { hex::decode(s).ok()?.try_into().ok()? } else { decode::<32>(s)? };
    VerifyingKey::from_bytes(&bytes).ok()?;
    Some(B64.encode(bytes))
}

fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    B64.decode(s.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_loaded_and_signatures_check() {
        let dir = std::env::temp_dir().join(format!("alertme-key-{}", uuid::Uuid::new_v4()));
        let a = SealKey::load(None, &dir).unwrap();
        let b = SealKey::load(None, &dir).unwrap();
        assert_eq!(a.public(), b.public());
        let sig = a.sign(b"head");
        assert!(verify(&a.public(), b"head", &sig));
        assert!(!verify(&a.public(), b"heaD", &sig));
        let other = SealKey::load(Some(&hex::encode([7u8; 32])), &dir).unwrap();
        assert!(!verify(&other.public(), b"head", &sig));
        assert_eq!(normalize_public(&hex::encode(B64.decode(a.public()).unwrap())), Some(a.public()));
        std::fs::remove_dir_all(dir).ok();
    }
}
