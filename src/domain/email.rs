//! Email addresses: a parsed, lower-cased newtype. Deliberately permissive (the verification
//! mail is the real check); it only rejects what can never be delivered or is unsafe to store.

use std::fmt;

/// The longest address SMTP allows (RFC 5321 path limit).
const MAX_LEN: usize = 254;

/// A syntactically plausible email address, stored lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if looks_like_email(&email) { Ok(Self(email)) } else { Err(format!("{raw:?} is not a valid email address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `@`, a non-empty local part and domain, no whitespace or control characters.
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= MAX_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
}

/// `a***@example.com`: enough to recognise a friend, not to harvest addresses.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails_are_masked() {
        assert_eq!(super::mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(super::mask_email("nonsense"), "***");
    }

    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        assert!(Email::parse("admin@localhost").is_ok());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "@x", "a@", "a@@b", "a b@c", "a@b.", "a@.b", "<a@b>", "a@b\tc", "a@\u{7}b"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(260))).is_err());
    }
}
