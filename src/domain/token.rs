//! Random tokens: request ids, invite codes and other opaque identifiers.

use rand::distr::{Alphanumeric, SampleString};

/// A random alphanumeric string of `len` characters.
pub fn random_alphanumeric(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// A user's invitation code: short enough to type, long enough not to guess (≈ 48 bits).
pub fn invite_code() -> String {
    random_alphanumeric(8)
}

/// Hex SHA-256 of a secret token: the stored and looked-up form (API keys, access tokens,
/// email links).
pub fn hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A redemption code's random part: 20 alphanumeric characters (≈ 119 bits), so codes cannot be
/// guessed or enumerated; the unique constraint on `redemption_codes.code` catches the
/// (astronomically unlikely) repeat.
pub fn redemption_code(prefix: &str) -> String {
    format!("{prefix}{}", random_alphanumeric(20))
}
