//! User administration for the management API and bootstrap files: create users, read them,
//! set a bootstrap balance (a ledger row). Operators' credits, debits and changes are in
//! `services::users::admin`; API keys are in `services::keys`.

pub mod admin;

use serde::{Deserialize, Serialize};

use crate::billing::{self, BillingError};
use crate::db::ledger::Kind;
use crate::db::users::{self, NewUser, Role};
use crate::db::{self, prices};
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::domain::time::now_ms;
use crate::domain::{password, token};
use crate::services::limits::{self, UserLimits};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("the balance does not cover this debit")]
    InsufficientBalance,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<BillingError> for UserError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::InsufficientBalance => Self::InsufficientBalance,
            BillingError::NoSuchUser => Self::NotFound,
            other => Self::Internal(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// A user as the management API shows it. Money is a decimal string in the site currency.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub group: String,
    pub balance: String,
    pub email_verified: bool,
    pub created_at: i64,
    /// Why an operator should look at the account (a Stripe refund of credit already spent).
    /// An operator's note: only [`AdminUserView`] answers carry it, never the user's own `/api/me`.
    #[serde(skip)]
    pub flag: Option<String>,
    /// What a request cost beyond the balance (a decimal), owed: the next credit pays it first,
    /// and until then the gateway refuses the user's requests.
    pub debt: String,
    /// The budget and rate limits: the user's own, what applies (own over the group's), and the
    /// budget's standing this period.
    pub limits: UserLimits,
}

/// A user as the operator's API shows one: with the account's flag (null when nothing needs a
/// look).
#[derive(Debug, Serialize)]
pub struct AdminUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub flag: Option<String>,
}

impl From<UserView> for AdminUserView {
    fn from(user: UserView) -> Self {
        Self { flag: user.flag.clone(), user }
    }
}

fn parse_role(role: Option<&str>) -> Result<Role, UserError> {
    match role.unwrap_or("user") {
        "user" => Ok(Role::User),
        "reseller" => Ok(Role::Reseller),
        "admin" => Ok(Role::Admin),
        other => Err(UserError::Invalid(format!("role: {other:?} must be user, reseller or admin"))),
    }
}

async fn existing_group(state: &AppState, group: Option<&str>) -> Result<String, UserError> {
    let group = group.unwrap_or("default").trim();
    match prices::group(state.db().pool(), group).await? {
        Some(g) => Ok(g.name),
        None => Err(UserError::Invalid(format!("group: {group:?} does not exist"))),
    }
}

/// Creates a verified, active user (operators create accounts on purpose).
pub async fn create(state: &AppState, input: NewUserInput) -> Result<UserView, UserError> {
    let email = Email::parse(&input.email).map_err(UserError::Invalid)?;
    password::validate(&input.password).map_err(UserError::Invalid)?;
    let role = parse_role(input.role.as_deref())?;
    let group = existing_group(state, input.group.as_deref()).await?;
    let plain = input.password.clone();
    let hash = crate::services::accounts::passwords::hash(plain)
        .await
        .map_err(|e| UserError::Internal(e.to_string()))?
        .map_err(UserError::Internal)?;
    let user = NewUser {
        email: &email,
        password_hash: &hash,
        role,
        group: &group,
        invite_code: &token::invite_code(),
        email_verified: true,
    };
    let id = match users::insert(state.db().writer(), &user).await {
        Ok(id) => id,
        Err(e) if db::is_unique_violation(&e, "users_email_key", "users.email") => return Err(UserError::EmailTaken),
        Err(e) => return Err(e.into()),
    };
    get(state, id).await
}

pub async fn get(state: &AppState, id: i64) -> Result<UserView, UserError> {
    let row = users::summary(state.db().pool(), id).await?.ok_or(UserError::NotFound)?;
    Ok(UserView {
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        role: row.role,
        status: row.status,
        balance: Money(row.balance).to_string(),
        email_verified: row.email_verified_at.is_some(),
        created_at: row.created_at,
        flag: row.flag,
        debt: Money(row.debt).to_string(),
        limits: limits::for_user(state, row.id, &row.group, now_ms(), state.site().gateway.budget_zone).await?,
        group: row.group,
    })
}

/// Sets a user's balance to exactly `target` (bootstrap files), through one adjustment row.
pub async fn set_balance(state: &AppState, id: i64, target: Money, note: &str) -> Result<(), UserError> {
    let current = crate::db::ledger::balance(state.db().pool(), id).await?.ok_or(UserError::NotFound)?;
    let delta = target.nanos() - current;
    if delta < 0 {
        state.billing().give_back_lease(id).await?;
    }
    if delta != 0 {
        billing::adjust(state.db(), id, delta, Kind::Adjustment, Some(note), None).await?;
    }
    Ok(())
}

/// A user's summary (role, status, group), or `None` for no such user.
pub async fn summary(state: &AppState, id: i64) -> Result<Option<users::UserSummary>, sqlx::Error> {
    users::summary(state.db().pool(), id).await
}

/// The account behind a login form's address: id, password hash, status.
pub async fn credentials(state: &AppState, email: &Email) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    users::credentials(state.db().pool(), email).await
}

/// A user's address, when it was verified (if it was), and status.
pub async fn verification(state: &AppState, id: i64) -> Result<Option<(String, Option<i64>, String)>, sqlx::Error> {
    users::verification(state.db().pool(), id).await
}

/// A user's invitation code and the people who joined with it (masked address, when).
pub async fn invitations(state: &AppState, id: i64) -> Result<(String, Vec<(String, i64)>), sqlx::Error> {
    users::invitations(state.db().pool(), id).await
}

/// What the user has earned from invitations, in money units.
pub async fn invitation_earnings(state: &AppState, id: i64) -> Result<i64, sqlx::Error> {
    db::invitations::earned(state.db().pool(), id).await
}

/// Sets the user's display name (already validated by the caller's form rules).
pub async fn set_display_name(state: &AppState, id: i64, name: &str) -> Result<(), sqlx::Error> {
    users::set_display_name(state.db().writer(), id, name).await
}

/// The user's password hash (PHC string), `None` for no such user.
pub async fn password_hash(state: &AppState, id: i64) -> Result<Option<String>, sqlx::Error> {
    users::password_hash(state.db().pool(), id).await
}

/// Stores a new password hash (PHC string).
pub async fn set_password_hash(state: &AppState, id: i64, hash: &str) -> Result<(), sqlx::Error> {
    users::set_password_hash(state.db().writer(), id, hash).await
}

/// How many console sessions the user has open.
pub async fn session_count(state: &AppState, id: i64) -> Result<i64, sqlx::Error> {
    db::sessions::count_user_sessions(state.db(), id).await
}

/// Ends every console session of the user but `keep` (the caller's own); how many ended.
pub async fn end_sessions(state: &AppState, id: i64, keep: Option<&str>) -> Result<u64, sqlx::Error> {
    db::sessions::end_user_sessions(state.db(), id, keep).await
}

/// The user's balance, `None` for no such user.
pub async fn balance(state: &AppState, id: i64) -> Result<Option<i64>, sqlx::Error> {
    db::ledger::balance(state.db().pool(), id).await
}
