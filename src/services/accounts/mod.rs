//! Accounts: the root admin bootstrap (first boot and `burncloud admin create`).

pub mod access_tokens;
pub mod passwords;
pub mod recovery;
pub mod signup;

use crate::config::Secret;
use crate::db::Db;
use crate::db::users::{self, NewUser, Role};
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
    let hash = hash_admin_password(&password).await?;
    // Replicas starting together on an empty database: one creates the admin, under a lock, and
    // the others find it. Without the lock a second replica would reset the first one's
    // password, and the password the first one logged would not work.
    let mut tx = db.writer().begin().await?;
    users::lock_first_admin(&mut tx, db.backend()).await?;
    if users::count_roots(&mut *tx).await? > 0 {
        return Ok(RootAdmin::Existing);
    }
    put_root(&mut tx, &email, &hash).await?;
    tx.commit().await?;
    let email = email.to_string();
    Ok(if generated { RootAdmin::CreatedWithPassword { email, password } } else { RootAdmin::Created { email } })
}

async fn hash_admin_password(password: &str) -> Result<String, AccountError> {
    password::validate(password).map_err(AccountError::Invalid)?;
    crate::services::accounts::passwords::hash(password.to_string())
        .await
        .map_err(|e| AccountError::Invalid(format!("hashing failed: {e}")))?
        .map_err(AccountError::Invalid)
}

/// Makes the account with `email` an active root admin with this password hash, creating it
/// when there is none.
async fn put_root(tx: &mut sqlx::Transaction<'_, sqlx::Any>, email: &Email, hash: &str) -> Result<(), AccountError> {
    match users::id_by_email(&mut **tx, email).await? {
        Some(id) => users::make_root(&mut **tx, id, hash).await?,
        None => {
            let user = NewUser {
                email,
                password_hash: hash,
                role: Role::Root,
                group: "default",
                invite_code: &token::invite_code(),
                email_verified: true,
            };
            users::insert(&mut **tx, &user).await?;
        }
    }
    Ok(())
}

/// Creates a root admin, or makes the existing account with this email an active root admin
/// with the given password.
pub async fn create_or_reset_admin(db: &Db, email: &Email, password: &str) -> Result<(), AccountError> {
    let hash = hash_admin_password(password).await?;
    let mut tx = db.writer().begin().await?;
    put_root(&mut tx, email, &hash).await?;
    tx.commit().await?;
    Ok(())
}
