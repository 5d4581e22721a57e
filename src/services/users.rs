//! User administration for the management API and bootstrap files: create users, read them,
//! credit or debit their balance (a ledger row each time), and issue API keys.

use serde::{Deserialize, Serialize};

use crate::billing::{self, BillingError};
use crate::db::api_keys::{self, KeyLimits};
use crate::db::ledger::Kind;
use crate::db::users::{self, NewUser, Role};
use crate::db::{self, prices};
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::domain::{api_key, password, token};
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
    let hash = tokio::task::spawn_blocking(move || password::hash(&plain))
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
        group: row.group,
        balance: Money(row.balance).to_string(),
        email_verified: row.email_verified_at.is_some(),
        created_at: row.created_at,
    })
}

/// Credits (positive) or debits (negative) a decimal amount with a note; returns the balance.
pub async fn credit(state: &AppState, id: i64, amount: &str, note: Option<&str>) -> Result<String, UserError> {
    let amount = Money::parse(amount).map_err(|e| UserError::Invalid(format!("amount: {e}")))?;
    if amount.nanos() < 0 {
        state.billing().give_back_lease(id).await?;
    }
    let balance = billing::adjust(state.db(), id, amount.nanos(), Kind::Adjustment, note, None).await?;
    Ok(Money(balance.unwrap_or_default()).to_string())
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

/// Options for a new API key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyInput {
    #[serde(default)]
    pub name: Option<String>,
    /// A decimal amount in the site currency.
    #[serde(default)]
    pub spend_limit: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub ips: Option<Vec<String>>,
    #[serde(default)]
    pub rpm: Option<i64>,
    /// A fixed key string (bootstrap files, automation); generated when absent.
    #[serde(default)]
    pub key: Option<String>,
}

/// Issues a key for a user; the secret is returned once and only its hash is stored.
pub async fn create_key(state: &AppState, user_id: i64, input: NewKeyInput) -> Result<(i64, String), UserError> {
    users::summary(state.db().pool(), user_id).await?.ok_or(UserError::NotFound)?;
    let new_key = match input.key.as_deref() {
        Some(fixed) => {
            api_key::validate_fixed(fixed).map_err(|e| UserError::Invalid(format!("key: {e}")))?;
            api_key::from_secret(fixed)
        }
        None => api_key::generate(),
    };
    let limits = key_limits(&input)?;
    let name = input.name.as_deref().unwrap_or("").trim();
    if name.len() > 100 {
        return Err(UserError::Invalid("name: at most 100 characters".into()));
    }
    let id = match api_keys::insert(state.db().writer(), user_id, name, &new_key.hash, &new_key.prefix, &limits).await {
        Ok(id) => id,
        Err(e) if db::is_unique_violation(&e, "api_keys_key_hash_key", "api_keys.key_hash") => {
            return Err(UserError::Invalid("key: this key already exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    state.gateway().keys.invalidate_all();
    Ok((id, new_key.secret))
}

fn key_limits(input: &NewKeyInput) -> Result<KeyLimits, UserError> {
    let spend_limit = input
        .spend_limit
        .as_deref()
        .map(|s| Money::parse(s).map(Money::nanos).map_err(|e| UserError::Invalid(format!("spend_limit: {e}"))))
        .transpose()?;
    if spend_limit.is_some_and(|n| n < 0) {
        return Err(UserError::Invalid("spend_limit: must not be negative".into()));
    }
    if let Some(ips) = &input.ips {
        for ip in ips {
            crate::domain::ip_allowlist::IpBlock::parse(ip).map_err(|e| UserError::Invalid(format!("ips: {e}")))?;
        }
    }
    if input.rpm.is_some_and(|n| n <= 0) {
        return Err(UserError::Invalid("rpm: must be positive".into()));
    }
    let list = |v: &Option<Vec<String>>| {
        v.as_ref().filter(|l| !l.is_empty()).map(|l| serde_json::to_string(l).unwrap_or_default())
    };
    Ok(KeyLimits {
        spend_limit,
        expires_at: input.expires_at,
        allowed_models: list(&input.models),
        allowed_ips: list(&input.ips),
        rate_limit_rpm: input.rpm,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    /// `active` or `disabled`.
    pub status: String,
}

/// Enables or disables a key; effective at once on this instance (and within the cache TTL on others).
pub async fn set_key_status(state: &AppState, key_id: i64, patch: &KeyPatch) -> Result<(), UserError> {
    if !matches!(patch.status.as_str(), "active" | "disabled") {
        return Err(UserError::Invalid("status: active or disabled".into()));
    }
    if !api_keys::set_status(state.db().writer(), key_id, &patch.status).await? {
        return Err(UserError::NotFound);
    }
    state.gateway().keys.invalidate_all();
    Ok(())
}

pub async fn delete_key(state: &AppState, key_id: i64) -> Result<(), UserError> {
    if !api_keys::delete(state.db().writer(), key_id).await? {
        return Err(UserError::NotFound);
    }
    state.gateway().keys.invalidate_all();
    Ok(())
}
