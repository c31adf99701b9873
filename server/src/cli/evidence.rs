//! `alertme evidence key | new-key | export | verify`: the signing key and bundles, from a shell.

use crate::config::DbArgs;
use crate::domain::evidence::custody::Who;
use crate::domain::evidence::{bundle, key::SealKey, verify as check};

/// `alertme evidence key`: the public key, base64.
pub fn key(signing_key: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    println!("{}", SealKey::load(signing_key, &db.data_dir)?.public());
    Ok(())
}

/// `alertme evidence new-key`: a fresh secret key (base64) for ALERTME_SIGNING_KEY.
pub fn new_key() -> anyhow::Result<()> {
    use base64::Engine;
    let seed: [u8; 32] = rand::random();
    eprintln!("a new signing key (secret: put it in ALERTME_SIGNING_KEY on every node, nowhere else):");
    println!("{}", base64::engine::general_purpose::STANDARD.encode(seed));
    Ok(())
}

/// `alertme evidence export ALERT -o FILE`: the bundle, as a responder would get it; the
/// export is in the custody log as the operator's.
pub async fn export(
    alert: &str,
    output: &std::path::Path,
    signing_key: Option<&str>,
    db: &DbArgs,
) -> anyhow::Result<()> {
    let key = SealKey::load(signing_key, &db.data_dir)?;
    let conn = crate::storage::connect(&db.url()).await?;
    let b =
        bundle::export(&conn, &key, alert, &Who::Operator, None).await.map_err(|e| match e {
            crate::error::Error::NotFound => anyhow::anyhow!(
                "no alert {alert} in this database: give the server's own (the same --database-url or --data-dir as `alertme serve`)"
            ),
            e => anyhow::anyhow!("{e}"),
        })?;
    std::fs::write(output, &b.bytes)?;
    eprintln!("wrote {} ({} bytes), signed by {}", output.display(), b.bytes.len(), key.public());
    Ok(())
}

/// `alertme evidence verify FILE [--key K]`: exit 0 and "valid …", or exit 1 and what failed.
pub fn verify(path: &std::path::Path, key: Option<&str>) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    match check::verify(&bytes, key) {
        Ok(v) => {
            println!("valid: alert {}, {} items in its hash chain, head {}", v.alert, v.items, v.head);
            if v.key_given {
                println!("signed by the key given ({})", v.key);
            } else {
                println!(
                    "signed by the key named inside the bundle ({}): compare it with the server's published key, or pass --key",
                    v.key
                );
            }
            Ok(())
        }
        Err(e) => {
            println!("INVALID: {e}");
            std::process::exit(1);
        }
    }
}
