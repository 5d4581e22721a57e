//! Gateway API keys: `sk-` + 48 random alphanumerics (≈ 285 bits). Only the SHA-256 hash is
//! stored; the full key is shown once at creation. Lookups hash the presented key and compare
//! hashes, so no timing leak depends on the secret's bytes.

use super::token::random_alphanumeric;

pub const PREFIX: &str = "sk-";
const RANDOM_LEN: usize = 48;
/// How many characters of the key stay visible in listings (`sk-AbCd…`).
const VISIBLE_LEN: usize = 7;

/// A freshly generated key (the secret) with its storable parts.
pub struct NewApiKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate() -> NewApiKey {
    from_secret(&format!("{PREFIX}{}", random_alphanumeric(RANDOM_LEN)))
}

/// The storable parts of a given key (bootstrap files may fix a key string).
pub fn from_secret(secret: &str) -> NewApiKey {
    NewApiKey { secret: secret.to_string(), hash: hash(secret), prefix: visible_prefix(secret) }
}

/// Hex SHA-256 of the key: the stored and looked-up form.
pub fn hash(secret: &str) -> String {
    super::token::hash(secret)
}

pub fn visible_prefix(secret: &str) -> String {
    let visible: String = secret.chars().take(VISIBLE_LEN).collect();
    format!("{visible}…")
}

/// Whether `secret` is shaped like a key this site could have issued: `sk-`, 12 to 200 printable
/// ASCII characters (generated keys are 51; operators may fix their own, see [`validate_fixed`]).
/// The gateway refuses anything else without a database query.
pub fn is_well_formed(secret: &str) -> bool {
    validate_fixed(secret).is_ok()
}

/// Keys given by operators (bootstrap) must still look like keys and be long enough to be secret.
pub fn validate_fixed(secret: &str) -> Result<(), String> {
    if !secret.starts_with(PREFIX) || secret.len() < 12 || secret.len() > 200 {
        return Err("a key must start with sk- and be 12 to 200 characters long".into());
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a key may only contain printable ASCII characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_unique_and_hashed() {
        let a = generate();
        let b = generate();
        assert!(a.secret.starts_with("sk-") && a.secret.len() == 51);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[3..]));
        assert_eq!(a.prefix, format!("{}…", &a.secret[..7]));
    }

    #[test]
    fn fixed_keys_are_checked() {
        assert!(validate_fixed("sk-bench-tenant").is_ok());
        assert!(validate_fixed("bench-tenant-key").is_err());
        assert!(validate_fixed("sk-short").is_err());
        assert!(validate_fixed("sk-with space in it").is_err());
    }

    #[test]
    fn only_key_shaped_tokens_are_looked_up() {
        assert!(is_well_formed(&generate().secret));
        assert!(is_well_formed("sk-bench-tenant"));
        for bad in ["", "sk-", "sk-short", "Bearer sk-abcdefghijkl", "bct_abcdefghijklmnop", "AIzaSyabcdefghijklmnop"] {
            assert!(!is_well_formed(bad), "{bad}");
        }
        assert!(!is_well_formed(&format!("sk-{}", "a".repeat(198))));
        assert!(!is_well_formed("sk-abcdefghi\u{7f}"));
        assert!(!is_well_formed("sk-abcdéfghijkl"));
    }
}
