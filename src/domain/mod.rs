//! Pure domain types and rules: no axum, no sqlx, no I/O.

pub mod email;
pub mod money;
pub mod password;
pub mod time;
pub mod token;
