//! Queries on `users`.

pub mod admin;

use sqlx::{Any, Executor, Row};

use crate::domain::email::Email;
use crate::domain::time::now_ms;

/// A role, as stored in `users.role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Root,
    Admin,
    Reseller,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Admin => "admin",
            Role::Reseller => "reseller",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root" => Some(Role::Root),
            "admin" => Some(Role::Admin),
            "reseller" => Some(Role::Reseller),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// The columns needed to create a user.
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub role: Role,
    pub group: &'a str,
    pub invite_code: &'a str,
    pub email_verified: bool,
}

/// Inserts a user and returns its id.
pub async fn insert<'e>(db: impl Executor<'e, Database = Any>, user: &NewUser<'_>) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let verified_at = user.email_verified.then_some(now);
    sqlx::query(
        "INSERT INTO users (email, password_hash, role, group_name, invite_code, email_verified_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(user.email.as_str())
    .bind(user.password_hash)
    .bind(user.role.as_str())
    .bind(user.group)
    .bind(user.invite_code)
    .bind(verified_at)
    .bind(now)
    .fetch_one(db)
    .await?
    .try_get("id")
}

/// What logging in checks: `(id, password hash, status)` of the user with this email.
pub async fn credentials<'e>(
    db: impl Executor<'e, Database = Any>,
    email: &Email,
) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    sqlx::query("SELECT id, password_hash, status FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("id")?, r.try_get("password_hash")?, r.try_get("status")?)))
        .transpose()
}

/// The id of the user with this email, if any.
pub async fn id_by_email<'e>(db: impl Executor<'e, Database = Any>, email: &Email) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(db)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()
}

/// Serialises first-boot admin creation among replicas starting together: a Postgres advisory
/// lock held until `tx` ends (SQLite runs one process, and its writer is one connection).
pub async fn lock_first_admin(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: crate::config::Backend,
) -> Result<(), sqlx::Error> {
    if backend == crate::config::Backend::Postgres {
        // An arbitrary constant naming this lock among BurnCloud's.
        sqlx::query("SELECT pg_advisory_xact_lock(727100001)").execute(&mut **tx).await?;
    }
    Ok(())
}

/// How many root admins exist.
pub async fn count_roots<'e>(db: impl Executor<'e, Database = Any>) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'root'").fetch_one(db).await?.try_get("n")
}

/// Makes an existing user an active, verified root admin with a new password.
pub async fn make_root<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET password_hash = $1, role = 'root', status = 'active', \
         email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

/// The fields the management API shows.
pub struct UserSummary {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub group: String,
    pub balance: i64,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    /// Why an operator should look at the account (a refund of credit already spent).
    pub flag: Option<String>,
    /// What a request cost beyond the balance, owed until the next credit pays it.
    pub debt: i64,
}

pub async fn summary<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<UserSummary>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, email, display_name, role, status, group_name, balance, email_verified_at, created_at, flag, debt \
         FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(UserSummary {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            role: r.try_get("role")?,
            status: r.try_get("status")?,
            group: r.try_get("group_name")?,
            balance: r.try_get("balance")?,
            email_verified_at: r.try_get("email_verified_at")?,
            created_at: r.try_get("created_at")?,
            flag: r.try_get("flag")?,
            debt: r.try_get("debt")?,
        })
    })
    .transpose()
}

/// Flags an account for an operator (a refund of credit already spent), replacing any flag.
pub async fn set_flag<'e>(db: impl Executor<'e, Database = Any>, id: i64, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET flag = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .bind(now_ms())
        .execute(db)
        .await
        .map(|_| ())
}

/// Clears an account's flag once an operator has looked at it; false when there was none.
pub async fn clear_flag<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET flag = NULL, updated_at = $2 WHERE id = $1 AND flag IS NOT NULL")
        .bind(id)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a user to another group.
pub async fn set_group<'e>(db: impl Executor<'e, Database = Any>, id: i64, group: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET group_name = $1, updated_at = $2 WHERE id = $3")
        .bind(group)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// The user's password hash.
pub async fn password_hash<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("password_hash"))
        .transpose()
}

/// Replaces the user's password hash.
pub async fn set_password_hash<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(crate::domain::time::now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// The user whose invitation code this is.
pub async fn id_by_invite_code<'e>(
    db: impl Executor<'e, Database = Any>,
    code: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM users WHERE invite_code = $1")
        .bind(code)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// Records who invited the user.
pub async fn set_invited_by<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    inviter: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2 AND id <> $1")
        .bind(inviter)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// The user's invitation code and the people who signed up with it: `(email, joined at)`.
pub async fn invitations<'e, E>(db: E, id: i64) -> Result<(String, Vec<(String, i64)>), sqlx::Error>
where
    E: Executor<'e, Database = Any> + Copy,
{
    let code: String = sqlx::query("SELECT invite_code FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await?
        .try_get("invite_code")?;
    let rows = sqlx::query("SELECT email, created_at FROM users WHERE invited_by = $1 ORDER BY id DESC LIMIT 500")
        .bind(id)
        .fetch_all(db)
        .await?;
    let invitees =
        rows.iter().map(|r| Ok((r.try_get("email")?, r.try_get("created_at")?))).collect::<Result<_, sqlx::Error>>()?;
    Ok((code, invitees))
}

/// `(email, verified at, status)` of the user.
pub async fn verification<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<(String, Option<i64>, String)>, sqlx::Error> {
    sqlx::query("SELECT email, email_verified_at, status FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("email")?, r.try_get("email_verified_at")?, r.try_get("status")?)))
        .transpose()
}

/// Marks the address verified; true when it was not before (so first-time rewards are due).
pub async fn mark_verified<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE users SET email_verified_at = $2, updated_at = $2 WHERE id = $1 AND email_verified_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the user to a new, verified address (fails on `users_email_key` when it is taken).
pub async fn set_email<'e>(db: impl Executor<'e, Database = Any>, id: i64, email: &Email) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query("UPDATE users SET email = $2, email_verified_at = $3, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(email.as_str())
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_display_name<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(db)
        .await
        .map(|_| ())
}
