//! Site settings an operator changes at run time (`PUT /api/admin/settings/{key}`): the site's
//! name, public URL, currency and announcement, who may sign up, the credits granted on signup,
//! SMTP, Stripe keys, the gateway's defaults and the low-balance email threshold. Each falls back
//! to the configuration (file or environment) when the `settings` table has no row for it. The
//! console and the gateway read them on every request, so they live in memory ([`SiteSettings`]
//! behind an `Arc`, no database read) and are reloaded after a change and by the maintenance loop
//! (other replicas' changes). Secret settings (`Kind::Secret` in the table) are stored encrypted.

use crate::config::Config;
use crate::config::runtime::{self, Kind};
use crate::db::{Db, settings};
use crate::secret_key::SecretKey;

/// The snapshot and its rules live with the configuration (each setting's rule is its entry in
/// [`runtime::TABLE`]); this file loads it and seals what is stored.
pub use crate::config::site::{SiteSettings, SmtpSettings, Verification};

/// The key prefixes [`load`] reads.
const PREFIXES: &[&str] = &["site.", "signup.", "invitation.", "smtp.", "stripe.", "topup.", "gateway.", "notify."];

/// How a secret setting is stored: `enc:` + hex of the AES-GCM sealed value.
pub fn seal(secret_key: &SecretKey, value: &str) -> Result<String, String> {
    crate::crypto::encrypt(secret_key, value.as_bytes())
        .map(|v| format!("enc:{}", hex::encode(v)))
        .map_err(|e| e.to_string())
}

fn unseal(secret_key: &SecretKey, stored: &str) -> Result<String, String> {
    let sealed = stored.strip_prefix("enc:").and_then(|h| hex::decode(h).ok()).ok_or("not an encrypted value")?;
    let plain = crate::crypto::decrypt(secret_key, &sealed).map_err(|e| e.to_string())?;
    String::from_utf8(plain).map_err(|_| "not text".into())
}

/// The configuration's values overlaid with every stored setting (secrets decrypted).
pub async fn load(db: &Db, config: &Config, secret_key: &SecretKey) -> Result<SiteSettings, sqlx::Error> {
    let mut site = SiteSettings::from_config(config);
    for prefix in PREFIXES {
        let mut rows = settings::with_prefix(db.pool(), prefix).await?;
        // The top-up currency first: the amounts are read in its minor unit.
        rows.sort_by_key(|(key, _)| key != runtime::TOPUP_CURRENCY);
        for (key, value) in rows {
            let value = if runtime::find(&key).is_some_and(|s| s.kind == Kind::Secret) && !value.is_empty() {
                match unseal(secret_key, &value) {
                    Ok(plain) => plain,
                    Err(message) => {
                        tracing::warn!(setting = %key, %message, "ignoring a stored secret setting");
                        continue;
                    }
                }
            } else {
                value
            };
            if let Err(message) = site.apply(&key, &value) {
                tracing::warn!(setting = %key, %message, "ignoring a stored setting");
            }
        }
    }
    Ok(site)
}
