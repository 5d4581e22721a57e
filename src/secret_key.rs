//! The instance secret: the AES-256 key that encrypts upstream provider keys at rest.
//!
//! It comes from `BURNCLOUD_SECRET_KEY` (any string of 32+ characters; the key is its SHA-256),
//! or, when unset, from `<data dir>/secret.key`, generated once with mode 0600. Losing it makes
//! stored channel keys unreadable, so the generated file is never overwritten.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Config, MIN_SECRET_LEN};

/// The file name of the generated key inside the data dir.
pub const FILE_NAME: &str = "secret.key";

/// 32 bytes of key material. `Debug` does not print it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub(crate) fn derive(material: &str) -> Self {
        Self(Sha256::digest(material.as_bytes()).into())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// Where the key came from, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Config,
    File(PathBuf),
    Generated(PathBuf),
}

#[derive(Debug, thiserror::Error)]
#[error("BURNCLOUD_SECRET_KEY: {0}")]
pub struct SecretKeyError(String);

/// Resolves the instance key as described in the module docs.
pub fn load_or_generate(config: &Config) -> Result<(SecretKey, Source), SecretKeyError> {
    if let Some(secret) = &config.secret_key {
        return Ok((SecretKey::derive(secret.expose()), Source::Config));
    }
    let path = config.data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if text.len() < MIN_SECRET_LEN {
                return Err(SecretKeyError(format!("{} holds fewer than {MIN_SECRET_LEN} characters", path.display())));
            }
            Ok((SecretKey::derive(text), Source::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let material = hex::encode(rand::random::<[u8; 32]>());
            write_new_private_file(&path, &material)?;
            Ok((SecretKey::derive(&material), Source::Generated(path)))
        }
        Err(e) => Err(SecretKeyError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Creates the file with mode 0600; fails rather than overwrite an existing one.
fn write_new_private_file(path: &Path, contents: &str) -> Result<(), SecretKeyError> {
    let fail = |e: std::io::Error| SecretKeyError(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(format!("{contents}\n").as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path, secret: Option<&str>) -> Config {
        let dir = dir.display().to_string();
        let secret = secret.map(str::to_string);
        Config::load_from(None, |name| match name {
            "BURNCLOUD_DATA_DIR" => Some(dir.clone()),
            "BURNCLOUD_SECRET_KEY" => secret.clone(),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn generated_once_then_reused_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), None);
        let (first, source) = load_or_generate(&config).unwrap();
        assert!(matches!(source, Source::Generated(_)));
        let (second, source) = load_or_generate(&config).unwrap();
        assert!(matches!(source, Source::File(_)));
        assert_eq!(first.bytes(), second.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_wins_and_is_not_printed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), Some("0123456789abcdef0123456789abcdef"));
        let (key, source) = load_or_generate(&config).unwrap();
        assert_eq!(source, Source::Config);
        assert!(!dir.path().join(FILE_NAME).exists());
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
    }
}
