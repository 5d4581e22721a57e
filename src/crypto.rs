//! Encryption at rest for upstream provider keys: AES-256-GCM with a random 96-bit nonce per
//! value, stored as `nonce || ciphertext+tag`. Decryption failure (wrong instance key, tampered
//! row) is an error, never a panic.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::secret_key::SecretKey;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption failed")]
    Encrypt,
    #[error("the stored value cannot be decrypted with this instance's secret key")]
    Decrypt,
}

pub fn encrypt(key: &SecretKey, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new(key.bytes().into());
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce_bytes), plaintext).map_err(|_| CryptoError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

pub fn decrypt(key: &SecretKey, stored: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if stored.len() < NONCE_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ciphertext) = stored.split_at(NONCE_LEN);
    Aes256Gcm::new(key.bytes().into()).decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(material: &str) -> SecretKey {
        SecretKey::derive(material)
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let k = key("0123456789abcdef0123456789abcdef");
        let sealed = encrypt(&k, b"sk-upstream-secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(decrypt(&k, &sealed).unwrap(), b"sk-upstream-secret");
        assert_ne!(encrypt(&k, b"sk-upstream-secret").unwrap(), sealed, "nonces differ");

        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(decrypt(&k, &tampered).is_err());
        assert!(decrypt(&key("another key of thirty-two chars!!"), &sealed).is_err());
        assert!(decrypt(&k, b"short").is_err());
    }
}
