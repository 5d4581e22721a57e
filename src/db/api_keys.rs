//! Queries on `api_keys`.

use sqlx::{Any, Executor, Row};

use crate::domain::budget::Budget;
use crate::domain::time::now_ms;

/// What the gateway needs to authorise a request, read in one query (key joined with its user).
#[derive(Clone, Debug)]
pub struct KeyGrant {
    pub key_id: i64,
    pub user_id: i64,
    pub key_status: String,
    pub user_status: String,
    pub group: String,
    pub expires_at: Option<i64>,
    pub spend_limit: Option<i64>,
    pub allowed_models: Option<String>,
    pub allowed_ips: Option<String>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_rpd: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    pub max_concurrent: Option<i64>,
    /// The key opts out of its group's fallback models.
    pub no_fallback: bool,
    /// A budget per period: the amount, the period (`domain::budget::Period`) and when it was set.
    pub budget: Option<i64>,
    pub budget_period: Option<String>,
    pub budget_anchor: i64,
    /// The user's own budget and rate limits (their group's apply where these are not set).
    pub user_limits: super::limits::StoredLimits,
}

pub async fn grant_by_hash<'e>(
    db: impl Executor<'e, Database = Any>,
    hash: &str,
) -> Result<Option<KeyGrant>, sqlx::Error> {
    let sql = format!(
        "SELECT k.id, k.user_id, k.status AS key_status, u.status AS user_status, u.group_name, k.expires_at, k.spend_limit, k.allowed_models, \
         k.allowed_ips, k.rate_limit_rpm, k.rate_limit_rpd, k.rate_limit_tpm, k.max_concurrent, k.budget, k.budget_period, k.budget_anchor, \
         k.no_fallback, {} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
        super::limits::columns("u")
    );
    let row = sqlx::query(&sql).bind(hash).fetch_optional(db).await?;
    row.map(|r| {
        Ok(KeyGrant {
            key_id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            key_status: r.try_get("key_status")?,
            user_status: r.try_get("user_status")?,
            group: r.try_get("group_name")?,
            expires_at: r.try_get("expires_at")?,
            spend_limit: r.try_get("spend_limit")?,
            allowed_models: r.try_get("allowed_models")?,
            allowed_ips: r.try_get("allowed_ips")?,
            rate_limit_rpm: r.try_get("rate_limit_rpm")?,
            rate_limit_rpd: r.try_get("rate_limit_rpd")?,
            rate_limit_tpm: r.try_get("rate_limit_tpm")?,
            max_concurrent: r.try_get("max_concurrent")?,
            no_fallback: r.try_get::<i64, _>("no_fallback")? != 0,
            budget: r.try_get("budget")?,
            budget_period: r.try_get("budget_period")?,
            budget_anchor: r.try_get("budget_anchor")?,
            user_limits: super::limits::StoredLimits::from_row(&r, "u_")?,
        })
    })
    .transpose()
}

/// The optional limits of a key.
#[derive(Clone, Debug, Default)]
pub struct KeyLimits {
    pub spend_limit: Option<i64>,
    pub expires_at: Option<i64>,
    /// JSON array of model names.
    pub allowed_models: Option<String>,
    /// JSON array of IPs / CIDRs.
    pub allowed_ips: Option<String>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_rpd: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    /// The key's own cap on requests in flight (`None`: the site's per-key cap).
    pub max_concurrent: Option<i64>,
    /// The key opts out of its group's fallback models.
    pub no_fallback: bool,
    /// The budget per period (nano-units), its period, and when it was set (unix ms: rolling
    /// periods count from it; a new anchor starts the count again).
    pub budget: Option<i64>,
    pub budget_period: Option<String>,
    pub budget_anchor: i64,
}

pub async fn insert<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    name: &str,
    hash: &str,
    prefix: &str,
    limits: &KeyLimits,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, spend_limit, expires_at, allowed_models, allowed_ips, \
         rate_limit_rpm, budget, budget_period, budget_anchor, created_at, updated_at, rate_limit_rpd, rate_limit_tpm, max_concurrent, no_fallback) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(hash)
    .bind(prefix)
    .bind(limits.spend_limit)
    .bind(limits.expires_at)
    .bind(limits.allowed_models.as_deref())
    .bind(limits.allowed_ips.as_deref())
    .bind(limits.rate_limit_rpm)
    .bind(limits.budget)
    .bind(limits.budget_period.as_deref())
    .bind(limits.budget_anchor)
    .bind(now_ms())
    .bind(limits.rate_limit_rpd)
    .bind(limits.rate_limit_tpm)
    .bind(limits.max_concurrent)
    .bind(i64::from(limits.no_fallback))
    .fetch_one(db)
    .await?
    .try_get("id")
}

/// A key whose spending passed its budget's warning share, claimed for one email.
pub struct BudgetWarning {
    pub key_id: i64,
    pub user_id: i64,
    pub name: String,
    pub budget: i64,
    pub budget_spent: i64,
    pub budget_period: Option<String>,
    pub budget_anchor: i64,
    /// The window (its start, unix ms) the spending counts in.
    pub budget_window: i64,
}

/// Marks the keys that have spent at least `percent` of their budget in a window not yet warned
/// about as warned, and returns them: one statement, so two replicas never both claim a key.
pub async fn claim_budget_warnings<'e>(
    db: impl Executor<'e, Database = Any>,
    percent: i64,
) -> Result<Vec<BudgetWarning>, sqlx::Error> {
    // `budget / 100 * percent` rather than `budget_spent * 100`: no overflow for any amount.
    let rows = sqlx::query(&format!(
        "UPDATE api_keys SET budget_warned_window = budget_window \
             WHERE budget IS NOT NULL AND budget > 0 AND budget_window > budget_warned_window \
               AND budget_spent - {leased} >= budget / 100 * $1 \
             RETURNING id, user_id, name, budget, budget_spent, budget_period, budget_anchor, budget_window",
        leased = super::budget_leases::leased_sql("key", "api_keys.id", Some("api_keys.budget_window"))
    ))
    .bind(percent)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(BudgetWarning {
                key_id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                name: r.try_get("name")?,
                budget: r.try_get("budget")?,
                budget_spent: r.try_get("budget_spent")?,
                budget_period: r.try_get("budget_period")?,
                budget_anchor: r.try_get("budget_anchor")?,
                budget_window: r.try_get("budget_window")?,
            })
        })
        .collect()
}

/// The id and owner of the key with this hash, if any.
pub async fn owner_by_hash<'e>(
    db: impl Executor<'e, Database = Any>,
    hash: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query("SELECT id, user_id FROM api_keys WHERE key_hash = $1")
        .bind(hash)
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("id")?, r.try_get("user_id")?)))
        .transpose()
}

pub async fn delete<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

/// A key as its owner sees it in the console and the API (never its secret: only the prefix).
pub struct KeyListing {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub status: String,
    pub spend_limit: Option<i64>,
    pub spent: i64,
    pub expires_at: Option<i64>,
    /// JSON array of model names.
    pub allowed_models: Option<String>,
    /// JSON array of IPs / CIDRs.
    pub allowed_ips: Option<String>,
    pub rate_limit_rpm: Option<i64>,
    pub rate_limit_rpd: Option<i64>,
    pub rate_limit_tpm: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub no_fallback: bool,
    pub budget: Option<i64>,
    pub budget_period: Option<String>,
    pub budget_anchor: i64,
    /// The window (its start, unix ms) `budget_spent` counts; an older one counts nothing now.
    pub budget_window: i64,
    pub budget_spent: i64,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl KeyListing {
    /// The key's budget, if it has one.
    pub fn budget(&self) -> Option<Budget> {
        Budget::from_stored(self.budget, self.budget_period.as_deref(), self.budget_anchor)
    }
}

/// The listing's columns. `spent` and `budget_spent` are what was charged: the counts less what
/// gateway processes reserved on them ahead (budget leases).
static LISTING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let all_windows = super::budget_leases::leased_sql("key", "api_keys.id", None);
    let in_window = super::budget_leases::leased_sql("key", "api_keys.id", Some("api_keys.budget_window"));
    format!(
        "SELECT id, user_id, name, key_prefix, status, spend_limit, \
         CASE WHEN spent > {all_windows} THEN spent - {all_windows} ELSE 0 END AS spent, expires_at, allowed_models, \
         allowed_ips, rate_limit_rpm, rate_limit_rpd, rate_limit_tpm, max_concurrent, no_fallback, budget, budget_period, \
         budget_anchor, budget_window, \
         CASE WHEN budget_spent > {in_window} THEN budget_spent - {in_window} ELSE 0 END AS budget_spent, \
         last_used_at, created_at FROM api_keys"
    )
});

fn listing(r: &sqlx::any::AnyRow) -> Result<KeyListing, sqlx::Error> {
    Ok(KeyListing {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("key_prefix")?,
        status: r.try_get("status")?,
        spend_limit: r.try_get("spend_limit")?,
        spent: r.try_get("spent")?,
        expires_at: r.try_get("expires_at")?,
        allowed_models: r.try_get("allowed_models")?,
        allowed_ips: r.try_get("allowed_ips")?,
        rate_limit_rpm: r.try_get("rate_limit_rpm")?,
        rate_limit_rpd: r.try_get("rate_limit_rpd")?,
        rate_limit_tpm: r.try_get("rate_limit_tpm")?,
        max_concurrent: r.try_get("max_concurrent")?,
        no_fallback: r.try_get::<i64, _>("no_fallback")? != 0,
        budget: r.try_get("budget")?,
        budget_period: r.try_get("budget_period")?,
        budget_anchor: r.try_get("budget_anchor")?,
        budget_window: r.try_get("budget_window")?,
        budget_spent: r.try_get("budget_spent")?,
        last_used_at: r.try_get("last_used_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The user's keys, newest first.
pub async fn list_for_user<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Vec<KeyListing>, sqlx::Error> {
    let rows =
        sqlx::query(&format!("{} WHERE user_id = $1 ORDER BY id DESC", *LISTING)).bind(user_id).fetch_all(db).await?;
    rows.iter().map(listing).collect()
}

/// One key, whoever owns it (callers check the owner).
pub async fn get<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<KeyListing>, sqlx::Error> {
    sqlx::query(&format!("{} WHERE id = $1", *LISTING))
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(listing)
        .transpose()
}

/// A key's budget count as reservations see it (what was charged and what processes reserved
/// ahead): `(window, count)`.
pub async fn budget_count<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query("SELECT budget_window, budget_spent FROM api_keys WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("budget_window")?, r.try_get("budget_spent")?)))
        .transpose()
}

/// Replaces a key's name, status and limits. False when the key is gone, or when it has already
/// spent more than the new spend limit (the limit never goes below what was spent). A new budget
/// anchor (the period changed) starts the budget's count again; a new amount alone keeps it.
pub async fn update<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    name: &str,
    status: &str,
    limits: &KeyLimits,
) -> Result<bool, sqlx::Error> {
    // What was spent is what was charged: the count less what gateway processes reserved ahead.
    let leased = super::budget_leases::leased_sql("key", "api_keys.id", None);
    let sql = format!(
        "UPDATE api_keys SET name = $1, status = $2, spend_limit = $3, expires_at = $4, allowed_models = $5, \
         allowed_ips = $6, rate_limit_rpm = $7, updated_at = $8, budget = $10, budget_period = $11, \
         budget_spent = CASE WHEN budget_anchor = $12 THEN budget_spent ELSE 0 END, \
         budget_window = CASE WHEN budget_anchor = $12 THEN budget_window ELSE 0 END, budget_anchor = $12, \
         rate_limit_rpd = $13, rate_limit_tpm = $14, max_concurrent = $15, no_fallback = $16 \
         WHERE id = $9 AND spent - {leased} <= COALESCE($3, spent)"
    );
    let done = sqlx::query(&sql)
        .bind(name)
        .bind(status)
        .bind(limits.spend_limit)
        .bind(limits.expires_at)
        .bind(limits.allowed_models.as_deref())
        .bind(limits.allowed_ips.as_deref())
        .bind(limits.rate_limit_rpm)
        .bind(now_ms())
        .bind(id)
        .bind(limits.budget)
        .bind(limits.budget_period.as_deref())
        .bind(limits.budget_anchor)
        .bind(limits.rate_limit_rpd)
        .bind(limits.rate_limit_tpm)
        .bind(limits.max_concurrent)
        .bind(i64::from(limits.no_fallback))
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
