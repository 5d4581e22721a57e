//! Personal access tokens (for `/api/me`): `bct_` + 43 random alphanumerics (≈ 256 bits). Like
//! API keys, only the SHA-256 is stored and lookups compare hashes; the token is shown once. The
//! distinct prefix keeps a token from being mistaken for a gateway key (and vice versa).

use super::api_key::{self, NewApiKey};
use super::token::random_alphanumeric;

pub const PREFIX: &str = "bct_";
const RANDOM_LEN: usize = 43;

/// A fresh token: the secret, its hash and the prefix listings show.
pub fn generate() -> NewApiKey {
    api_key::from_secret(&format!("{PREFIX}{}", random_alphanumeric(RANDOM_LEN)))
}

/// The stored, looked-up form of a presented token.
pub fn hash(secret: &str) -> String {
    api_key::hash(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_hashed() {
        let a = generate();
        assert!(a.secret.starts_with(PREFIX) && a.secret.len() == PREFIX.len() + RANDOM_LEN);
        assert_ne!(a.secret, generate().secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.prefix, format!("{}…", &a.secret[..7]));
    }
}
