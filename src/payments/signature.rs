//! Stripe's webhook signature (`Stripe-Signature: t=…,v1=…`): an HMAC-SHA256 over
//! `"{t}.{raw body}"` keyed with the endpoint's signing secret, checked over the raw bytes as
//! received (never a re-serialised body), in constant time, within a tolerance of the timestamp
//! so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from now, as Stripe's own libraries allow.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Expired,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `header` for `payload` against `secret` at `now` (unix seconds).
pub fn verify(header: Option<&str>, payload: &[u8], secret: &str, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // Several v1 entries appear while a secret is being rolled; any may match.
            Some(("v1", sig)) => signatures.push(hex::decode(sig).map_err(|_| SignatureError::Malformed)?),
            Some(_) => {} // v0 and future schemes are ignored, as Stripe's libraries do
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    let mac = signed(timestamp, payload, secret);
    // `verify_slice` compares in constant time.
    if signatures.iter().any(|sig| mac.clone().verify_slice(sig).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn signed(timestamp: i64, payload: &[u8], secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, the empty one included.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { unreachable!("HMAC takes any key") };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The header Stripe would send for `payload` (tests and the documentation's example).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!("t={timestamp},v1={}", hex::encode(signed(timestamp, payload, secret).finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    #[test]
    fn accepts_a_fresh_correct_signature() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(verify(Some(&header), BODY, SECRET, 1_100), Ok(()));
        // A rolled secret: the second v1 matches.
        let other = sign(BODY, "whsec_old", 1_000);
        let both = format!("{other},v1={}", header.split("v1=").nth(1).unwrap_or_default());
        assert_eq!(verify(Some(&both), BODY, SECRET, 1_000), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(verify(None, BODY, SECRET, 1_000), Err(SignatureError::Missing));
        assert_eq!(verify(Some(&header), BODY, SECRET, 1_301), Err(SignatureError::Expired));
        assert_eq!(verify(Some(&header), BODY, SECRET, 699), Err(SignatureError::Expired));
        assert_eq!(verify(Some(&header), b"{}", SECRET, 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), BODY, "whsec_other", 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&sign(BODY, "", 1_000)), BODY, SECRET, 1_000), Err(SignatureError::Mismatch));
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz", "garbage"] {
            assert_eq!(verify(Some(bad), BODY, SECRET, 1_000), Err(SignatureError::Malformed), "{bad}");
        }
    }
}
