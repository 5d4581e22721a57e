//! Pure domain types and rules: no axum, no sqlx, no I/O.

pub mod access_token;
pub mod api_key;
pub mod budget;
pub mod capabilities;
pub mod email;
pub mod ip_allowlist;
pub mod limits;
pub mod money;
pub mod password;
pub mod pricing;
pub mod time;
pub mod token;
pub mod tokenizer;
pub mod topup;
