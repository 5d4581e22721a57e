//! API keys, for the management API (operators, any key) and for their owners (console and
//! `/api/me`, their own keys only): issue, view, change name / status / limits, delete. Every
//! input is validated here, once, for every caller; every change invalidates the gateway's key
//! cache so it applies at once on this instance. No HTTP here.

pub mod admin;
pub mod cache;
pub mod standing;
pub mod warnings;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::UtcOffset;

use super::users::UserError;
use crate::db::api_keys::{self, KeyLimits, KeyListing};
use crate::db::{self, users};
use crate::domain::api_key;
use crate::domain::budget::{Budget, Period};
use crate::domain::ip_allowlist::IpBlock;
use crate::domain::money::Money;
use crate::domain::time::now_ms;
use crate::services::changes::{self, Change};
use crate::state::AppState;

/// Whose keys a caller may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyScope {
    /// The operator (admin API, bootstrap): any key.
    Any,
    /// A user: only their own keys; any other id looks missing.
    Owner(i64),
}

/// A key name's maximum length, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// At most this many models or IP entries per key.
pub const MAX_LIST_ENTRIES: usize = 100;
const MAX_MODEL_CHARS: usize = 200;

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
    /// Requests per day (UTC days).
    #[serde(default)]
    pub rpd: Option<i64>,
    /// Tokens per minute (prompt and output).
    #[serde(default)]
    pub tpm: Option<i64>,
    /// Requests in flight at once (within the account's cap; absent: the site's per-key cap).
    #[serde(default)]
    pub concurrency: Option<i64>,
    /// Whether the group's fallback models may answer when the requested one fails (absent: yes).
    #[serde(default)]
    pub fallback: Option<bool>,
    /// An amount the key may spend per `budget_period` (a decimal in the site currency).
    #[serde(default)]
    pub budget: Option<String>,
    /// `day`, `week`, `month`, `24h`, `7d` or `30d` (with `budget`).
    #[serde(default)]
    pub budget_period: Option<String>,
    /// A fixed key string (bootstrap files, automation); generated when absent.
    #[serde(default)]
    pub key: Option<String>,
}

/// A change to a key: absent fields stay as they are; `null` (or an empty list) removes a limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    /// `active` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub spend_limit: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub ips: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub rpd: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub tpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub concurrency: Option<Option<i64>>,
    #[serde(default)]
    pub fallback: Option<bool>,
    /// `null` removes the budget (and its period).
    #[serde(default, deserialize_with = "present")]
    pub budget: Option<Option<String>>,
    /// A new period starts the budget's count again.
    #[serde(default)]
    pub budget_period: Option<String>,
}

/// A field that is in the body, possibly `null` (absent fields get `default`: `None`).
pub(crate) fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl KeyPatch {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.name.is_none()
            && self.spend_limit.is_none()
            && self.expires_at.is_none()
            && self.models.is_none()
            && self.ips.is_none()
            && self.rpm.is_none()
            && self.rpd.is_none()
            && self.tpm.is_none()
            && self.concurrency.is_none()
            && self.fallback.is_none()
            && self.budget.is_none()
            && self.budget_period.is_none()
    }
}

/// A key as the management API shows it (never the secret). Money is a decimal string.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub name: String,
    /// The first characters of the key, e.g. `sk-AbCd…`.
    pub prefix: String,
    /// `active` or `disabled` (an expired key stays `active` with `expired: true`).
    pub status: String,
    pub expired: bool,
    #[serde(serialize_with = "money")]
    pub spent: i64,
    #[serde(serialize_with = "optional_money")]
    pub spend_limit: Option<i64>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    /// The models the key may call (`null`: every model of the user's group).
    pub models: Option<Vec<String>>,
    /// The addresses or CIDR blocks the key may be used from (`null`: anywhere).
    pub ips: Option<Vec<String>>,
    /// Requests per minute (`null`: no limit).
    pub rpm: Option<i64>,
    /// Requests per UTC day (`null`: no limit).
    pub rpd: Option<i64>,
    /// Tokens per minute (`null`: no limit).
    pub tpm: Option<i64>,
    /// Requests in flight at once (`null`: the site's per-key cap).
    pub concurrency: Option<i64>,
    /// Whether the group's fallback models may answer when the requested one fails.
    pub fallback: bool,
    /// What the key may spend per `budget_period` (`null`: no budget).
    #[serde(serialize_with = "optional_money")]
    pub budget: Option<i64>,
    pub budget_period: Option<String>,
    /// Spent in the current period (0 without a budget).
    #[serde(serialize_with = "money")]
    pub budget_spent: i64,
    /// When the current period ends and the budget starts again (unix ms; `null` without one).
    pub budget_resets_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

fn money<S: Serializer>(nanos: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Money(*nanos))
}

fn optional_money<S: Serializer>(nanos: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match nanos {
        Some(n) => s.collect_str(&Money(*n)),
        None => s.serialize_none(),
    }
}

impl KeyView {
    /// The key as shown at `now`, its calendar budget cut at `zone` (the site's budget time zone).
    pub fn new(k: KeyListing, now: i64, zone: UtcOffset) -> Self {
        let list = |json: Option<String>| json.and_then(|j| serde_json::from_str::<Vec<String>>(&j).ok());
        let budget = k.budget();
        Self {
            id: k.id,
            user_id: k.user_id,
            expired: k.expires_at.is_some_and(|t| t <= now),
            name: k.name,
            prefix: k.prefix,
            status: k.status,
            spent: k.spent,
            spend_limit: k.spend_limit,
            expires_at: k.expires_at,
            models: list(k.allowed_models),
            ips: list(k.allowed_ips),
            rpm: k.rate_limit_rpm,
            rpd: k.rate_limit_rpd,
            tpm: k.rate_limit_tpm,
            concurrency: k.max_concurrent,
            fallback: !k.no_fallback,
            budget: k.budget,
            budget_period: budget.map(|b| b.period.as_str().to_string()),
            budget_spent: budget.map_or(0, |b| b.spent_now(now, zone, k.budget_window, k.budget_spent)),
            budget_resets_at: budget.map(|b| b.window(now, zone).1),
            last_used_at: k.last_used_at,
            created_at: k.created_at,
        }
    }
}

// ---- validation, shared by creating and changing keys ---------------------------------------

fn invalid(message: String) -> UserError {
    UserError::Invalid(message)
}

/// A trimmed name of at most [`MAX_NAME_CHARS`] characters, without control characters (keys, tokens).
pub(crate) fn valid_name(name: &str) -> Result<String, UserError> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("name: at most {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name: no control characters".into()));
    }
    Ok(name.to_string())
}

fn valid_status(status: &str) -> Result<String, UserError> {
    match status {
        "active" | "disabled" => Ok(status.to_string()),
        _ => Err(invalid("status: active or disabled".into())),
    }
}

/// A non-negative amount (`field`: spend_limit or budget), in nano-units.
pub(crate) fn valid_amount(field: &'static str) -> impl Fn(&str) -> Result<i64, UserError> {
    move |amount| {
        let nanos = Money::parse(amount).map_err(|e| invalid(format!("{field}: {e}")))?.nanos();
        if nanos < 0 {
            return Err(invalid(format!("{field}: must not be negative")));
        }
        Ok(nanos)
    }
}

fn valid_period(period: &str) -> Result<Period, UserError> {
    Period::parse(period).ok_or_else(|| invalid(format!("budget_period: {}", Period::ACCEPTED)))
}

/// A budget as stored: the amount, its period, and its anchor (`now` for a new budget or a new
/// period, which starts the count again; else the current one).
pub(crate) fn valid_key_budget(
    amount: Option<i64>,
    period: Option<&str>,
    current: Option<Budget>,
) -> Result<(Option<i64>, Option<String>, i64), UserError> {
    let Some(amount) = amount else {
        if period.is_some() {
            return Err(invalid("budget: required with budget_period".into()));
        }
        return Ok((None, None, 0));
    };
    let period = match (period, current) {
        (Some(p), _) => valid_period(p)?,
        (None, Some(current)) => current.period,
        (None, None) => return Err(invalid(format!("budget_period: required with budget ({})", Period::ACCEPTED))),
    };
    let anchor = match current {
        Some(current) if current.period == period => current.anchor,
        _ => now_ms(),
    };
    Ok((Some(amount), Some(period.as_str().to_string()), anchor))
}

/// A rate limit (`field`: rpm, rpd or tpm): a positive whole number.
pub(crate) fn valid_rate(field: &'static str) -> impl Fn(i64) -> Result<i64, UserError> {
    move |n| if n <= 0 { Err(invalid(format!("{field}: must be positive"))) } else { Ok(n) }
}

/// A rate limit after a patch: the patched value checked (`null` removes it), else the current.
pub(crate) fn patched_rate(
    patch: Option<Option<i64>>,
    current: Option<i64>,
    field: &'static str,
) -> Result<Option<i64>, UserError> {
    match patch {
        Some(value) => value.map(valid_rate(field)).transpose(),
        None => Ok(current),
    }
}

/// A list as stored (a JSON array of trimmed entries; `None` when empty: no restriction), each
/// entry checked by `check`.
fn valid_list(
    field: &str,
    entries: &[String],
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<String>, UserError> {
    if entries.len() > MAX_LIST_ENTRIES {
        return Err(invalid(format!("{field}: at most {MAX_LIST_ENTRIES} entries")));
    }
    let mut kept: Vec<&str> = Vec::with_capacity(entries.len());
    for entry in entries.iter().map(|e| e.trim()) {
        check(entry).map_err(|e| invalid(format!("{field}: {e}")))?;
        if !kept.contains(&entry) {
            kept.push(entry);
        }
    }
    Ok((!kept.is_empty()).then(|| serde_json::to_string(&kept).unwrap_or_default()))
}

fn valid_models(models: &[String]) -> Result<Option<String>, UserError> {
    valid_list("models", models, |m| {
        if m.is_empty() || m.chars().count() > MAX_MODEL_CHARS || m.chars().any(char::is_control) {
            return Err(format!("{m:?} is not a model name"));
        }
        Ok(())
    })
}

fn valid_ips(ips: &[String]) -> Result<Option<String>, UserError> {
    valid_list("ips", ips, |ip| IpBlock::parse(ip).map(|_| ()))
}

fn new_key_limits(input: &NewKeyInput) -> Result<KeyLimits, UserError> {
    let (budget, budget_period, budget_anchor) = valid_key_budget(
        input.budget.as_deref().map(valid_amount("budget")).transpose()?,
        input.budget_period.as_deref(),
        None,
    )?;
    Ok(KeyLimits {
        budget,
        budget_period,
        budget_anchor,
        spend_limit: input.spend_limit.as_deref().map(valid_amount("spend_limit")).transpose()?,
        expires_at: input.expires_at,
        allowed_models: input.models.as_deref().map(valid_models).transpose()?.flatten(),
        allowed_ips: input.ips.as_deref().map(valid_ips).transpose()?.flatten(),
        rate_limit_rpm: input.rpm.map(valid_rate("rpm")).transpose()?,
        rate_limit_rpd: input.rpd.map(valid_rate("rpd")).transpose()?,
        rate_limit_tpm: input.tpm.map(valid_rate("tpm")).transpose()?,
        max_concurrent: input.concurrency.map(valid_rate("concurrency")).transpose()?,
        no_fallback: input.fallback == Some(false),
    })
}

// ---- operations --------------------------------------------------------------------------------

/// Issues a key for a user; the secret is returned once and only its hash is stored.
pub async fn create_key(state: &AppState, user_id: i64, input: NewKeyInput) -> Result<(i64, String), UserError> {
    users::summary(state.db().pool(), user_id).await?.ok_or(UserError::NotFound)?;
    let new_key = match input.key.as_deref() {
        Some(fixed) => {
            api_key::validate_fixed(fixed).map_err(|e| invalid(format!("key: {e}")))?;
            api_key::from_secret(fixed)
        }
        None => api_key::generate(),
    };
    let limits = new_key_limits(&input)?;
    let name = valid_name(input.name.as_deref().unwrap_or(""))?;
    let id = match api_keys::insert(state.db().writer(), user_id, &name, &new_key.hash, &new_key.prefix, &limits).await
    {
        Ok(id) => id,
        Err(e) if db::is_unique_violation(&e, "api_keys_key_hash_key", "api_keys.key_hash") => {
            return Err(invalid("key: this key already exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    // The hash may be cached as unknown (a fixed key tried before it existed).
    changes::publish(state, Change::KeyHash(new_key.hash.clone())).await;
    Ok((id, new_key.secret))
}

/// The key as stored, if `scope` may reach it (else `NotFound`, as for a missing key).
async fn load(state: &AppState, scope: KeyScope, id: i64) -> Result<KeyListing, UserError> {
    let key = api_keys::get(state.db().pool(), id).await?.ok_or(UserError::NotFound)?;
    match scope {
        KeyScope::Owner(user_id) if key.user_id != user_id => Err(UserError::NotFound),
        _ => Ok(key),
    }
}

pub async fn get_key(state: &AppState, scope: KeyScope, id: i64) -> Result<KeyView, UserError> {
    let zone = state.site().gateway.budget_zone;
    load(state, scope, id).await.map(|k| KeyView::new(k, now_ms(), zone))
}

/// The user's keys, newest first.
pub async fn list_keys(state: &AppState, user_id: i64) -> Result<Vec<KeyView>, UserError> {
    let (now, zone) = (now_ms(), state.site().gateway.budget_zone);
    Ok(api_keys::list_for_user(state.db().pool(), user_id)
        .await?
        .into_iter()
        .map(|k| KeyView::new(k, now, zone))
        .collect())
}

/// Changes a key's status, name or limits (only the fields in `patch`); the key as it is now.
/// Effective at once on this instance, within the cache TTL on others. A spend limit below what
/// the key has already spent is refused.
pub async fn update_key(state: &AppState, scope: KeyScope, id: i64, patch: &KeyPatch) -> Result<KeyView, UserError> {
    if patch.is_empty() {
        return Err(invalid(
            "nothing to change: send status, name, spend_limit, expires_at, models, ips, rpm, rpd, tpm, concurrency, fallback, budget or budget_period"
                .into(),
        ));
    }
    let current = load(state, scope, id).await?;
    let status = patch.status.as_deref().map_or_else(|| Ok(current.status.clone()), valid_status)?;
    let name = patch.name.as_deref().map_or_else(|| Ok(current.name.clone()), valid_name)?;
    let current_budget = current.budget();
    let amount = match &patch.budget {
        Some(budget) => budget.as_deref().map(valid_amount("budget")).transpose()?,
        None => current.budget,
    };
    let (budget, budget_period, budget_anchor) =
        valid_key_budget(amount, patch.budget_period.as_deref(), current_budget)?;
    let limits = KeyLimits {
        budget,
        budget_period,
        budget_anchor,
        spend_limit: match &patch.spend_limit {
            Some(limit) => limit.as_deref().map(valid_amount("spend_limit")).transpose()?,
            None => current.spend_limit,
        },
        expires_at: patch.expires_at.unwrap_or(current.expires_at),
        allowed_models: match &patch.models {
            Some(models) => models.as_deref().map(valid_models).transpose()?.flatten(),
            None => current.allowed_models.clone(),
        },
        allowed_ips: match &patch.ips {
            Some(ips) => ips.as_deref().map(valid_ips).transpose()?.flatten(),
            None => current.allowed_ips.clone(),
        },
        rate_limit_rpm: patched_rate(patch.rpm, current.rate_limit_rpm, "rpm")?,
        rate_limit_rpd: patched_rate(patch.rpd, current.rate_limit_rpd, "rpd")?,
        rate_limit_tpm: patched_rate(patch.tpm, current.rate_limit_tpm, "tpm")?,
        max_concurrent: patched_rate(patch.concurrency, current.max_concurrent, "concurrency")?,
        no_fallback: patch.fallback.map_or(current.no_fallback, |on| !on),
    };
    let below_spent = |spent: i64| invalid(format!("spend_limit: this key has already spent {}", Money(spent)));
    if let Some(limit) = limits.spend_limit
        && limit < current.spent
    {
        return Err(below_spent(current.spent));
    }
    if !api_keys::update(state.db().writer(), id, &name, &status, &limits).await? {
        // Deleted meanwhile, or requests spent past the new limit since it was read.
        let now = load(state, scope, id).await?;
        return Err(below_spent(now.spent));
    }
    changes::publish(state, Change::Key(id)).await;
    get_key(state, scope, id).await
}

pub async fn delete_key(state: &AppState, scope: KeyScope, id: i64) -> Result<(), UserError> {
    load(state, scope, id).await?;
    if !api_keys::delete(state.db().writer(), id).await? {
        return Err(UserError::NotFound);
    }
    changes::publish(state, Change::Key(id)).await;
    Ok(())
}

/// Why a key's hold was refused, when it was its budget: the budget and when it starts again.
#[derive(Clone, Copy, Debug)]
pub struct BudgetRefusal {
    pub budget: Budget,
    /// Unix ms: the end of the current window.
    pub resets_at: i64,
    /// The instant the refusal was judged at (unix ms, the gateway's budget clock).
    pub now: i64,
}

/// Whether a hold of `amount` at `now` fails on the key's budget (rather than on its spend
/// limit): read only when a hold was refused, so the gateway can say which and until when.
pub async fn budget_refusal(
    state: &AppState,
    key_id: i64,
    amount: i64,
    now: i64,
    zone: UtcOffset,
) -> Option<BudgetRefusal> {
    let key = api_keys::get(state.db().pool(), key_id).await.ok()??;
    let budget = key.budget()?;
    // The count as the reservation saw it: other processes' leases on it take room too.
    let (window, counted) = api_keys::budget_count(state.db().pool(), key_id).await.ok()??;
    let spent = budget.spent_now(now, zone, window, counted);
    (spent.saturating_add(amount) > budget.amount).then(|| BudgetRefusal {
        budget,
        resets_at: budget.window(now, zone).1,
        now,
    })
}

/// The user's keys as the logs page's filter lists them (names and ids, any status).
pub async fn listings(state: &AppState, user_id: i64) -> Result<Vec<KeyListing>, sqlx::Error> {
    api_keys::list_for_user(state.db().pool(), user_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_tell_absent_from_null() {
        let patch: KeyPatch = serde_json::from_str(r#"{"spend_limit": null, "rpm": 5}"#).unwrap();
        assert_eq!(patch.spend_limit, Some(None));
        assert_eq!(patch.rpm, Some(Some(5)));
        assert_eq!(patch.models, None);
        assert!(!patch.is_empty());
        assert!(serde_json::from_str::<KeyPatch>("{}").unwrap().is_empty());
        assert!(serde_json::from_str::<KeyPatch>(r#"{"user_id": 2}"#).is_err(), "unknown fields are refused");
    }

    #[test]
    fn lists_are_trimmed_deduplicated_and_checked() {
        let ips = |v: &[&str]| valid_ips(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ips(&[" 10.0.0.0/8", "10.0.0.0/8", "::1"]).unwrap().as_deref(), Some(r#"["10.0.0.0/8","::1"]"#));
        assert_eq!(ips(&[]).unwrap(), None);
        assert!(ips(&["10.0.0.300"]).is_err());
        let models = |v: &[&str]| valid_models(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(models(&["gpt-4o", ""]).is_err());
        assert!(models(&[&"m".repeat(201)]).is_err());
        assert_eq!(models(&["gpt-4o"]).unwrap().as_deref(), Some(r#"["gpt-4o"]"#));
        assert!(valid_models(&vec!["m".to_string(); 101]).is_err());
    }

    #[test]
    fn fields_are_checked() {
        assert!(valid_name(&"n".repeat(100)).is_ok());
        assert!(valid_name(&"名".repeat(101)).is_err());
        assert!(valid_name("tab\there").is_err());
        let spend_limit = valid_amount("spend_limit");
        assert_eq!(spend_limit("2.5").unwrap(), 2_500_000_000);
        assert!(spend_limit("-1").is_err() && spend_limit("lots").is_err());
        assert!(valid_rate("rpm")(0).is_err() && valid_rate("rpm")(1).is_ok());
        assert!(valid_status("paused").is_err());
    }
}
