//! CSRF protection for the console: a random token per session, sent back by every
//! state-changing request as the `csrf` form field and compared in constant time. GET requests
//! never change state.

use tower_sessions::Session;

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub async fn token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(KEY).await {
        return token;
    }
    let token = crate::domain::token::random_alphanumeric(43);
    // A store failure leaves the page without a working form; the next request retries.
    let _ = session.insert(KEY, &token).await;
    token
}

/// True when `provided` is the session's token.
pub async fn verify(session: &Session, provided: Option<&str>) -> bool {
    let (Ok(Some(expected)), Some(provided)) = (session.get::<String>(KEY).await, provided) else {
        return false;
    };
    expected.len() == provided.len()
        && expected.bytes().zip(provided.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
