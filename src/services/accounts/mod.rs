//! Accounts: the root admin bootstrap (first boot and `burncloud admin create`).

pub mod access_tokens;
pub mod passwords;
pub mod recovery;
pub mod signup;

use crate::config::Secret;
use crate::db::users::{self, NewUser, Role};
use crate::db::{self, Db};
use crate::domain::email::Email;
use crate::domain::{password, token};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// What `ensure_root_admin` did at start-up.
#[derive(Debug, PartialEq, Eq)]
pub enum RootAdmin {
    /// A root admin existed already; nothing changed.
    Existing,
    /// Created with the configured password.
    Created { email: String },
    /// Created with a generated password, to be shown once.
    CreatedWithPassword { email: String, password: String },
}

/// At first boot (no root admin yet) creates one from the configured email and password,
/// generating the password when none is configured. Later boots change nothing, so a restart
/// never resets a password an operator has changed since.
pub async fn ensure_root_admin(db: &Db, email: &str, configured: Option<&Secret>) -> Result<RootAdmin, AccountError> {
    if users::count_roots(db.pool()).await? > 0 {
        return Ok(RootAdmin::Existing);
    }
    let email = Email::parse(email).map_err(AccountError::Invalid)?;
    let (password, generated) = match configured {
        Some(p) => (p.expose().to_string(), false),
        None => (password::generate(), true),
    };
    match create_or_reset_admin(db, &email, &password).await {
        Ok(()) => {}
        // Another replica created it between our check and insert.
        Err(AccountError::Db(e)) if db::is_unique_violation(&e, "users_email_key", "users.email") => {
            return Ok(RootAdmin::Existing);
        }
        Err(e) => return Err(e),
    }
    let email = email.to_string();
    Ok(if generated { RootAdmin::CreatedWithPassword { email, password } } else { RootAdmin::Created { email } })
}

/// Creates a root admin, or makes the existing account with this email an active root admin
/// with the given password.
pub async fn create_or_reset_admin(db: &Db, email: &Email, password: &str) -> Result<(), AccountError> {
    password::validate(password).map_err(AccountError::Invalid)?;
    let owned = password.to_string();
    let hash = crate::services::accounts::passwords::hash(owned)
        .await
        .map_err(|e| AccountError::Invalid(format!("hashing failed: {e}")))?
        .map_err(AccountError::Invalid)?;
    match users::id_by_email(db.pool(), email).await? {
        Some(id) => users::make_root(db.writer(), id, &hash).await?,
        None => {
            let user = NewUser {
                email,
                password_hash: &hash,
                role: Role::Root,
                group: "default",
                invite_code: &token::invite_code(),
                email_verified: true,
            };
            users::insert(db.writer(), &user).await?;
        }
    }
    Ok(())
}
