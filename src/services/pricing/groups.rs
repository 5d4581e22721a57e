//! Groups for the operator: list with members and allowed models, create or edit (multiplier,
//! description, model allowlist), delete (never `default`, never a group with users). Every
//! change reloads the routing snapshot (which carries the allowlists, so the gateway checks
//! them without a database read) and writes an audit row.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::groups::{self as db_groups, GroupListing};
use crate::db::limits::Owner;
use crate::db::prices;
use crate::domain::money::{format_fixed, parse_fixed};
use crate::services::audit::{self, Actor};
use crate::services::changes::{self, Change};
use crate::services::limits::{self, LimitsPatch, LimitsView};
use crate::services::pricing::PricingError;
use crate::state::AppState;

/// A group as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    /// A decimal factor such as "0.8".
    pub multiplier: String,
    /// The models the group may use; `null`: every model its channels serve.
    pub models: Option<Vec<String>>,
    pub users: i64,
    /// The group's billing settings.
    pub billing: GroupBilling,
    /// The budget and rate limits each member gets (a member's own values replace them).
    pub limits: LimitsView,
}

/// A group's billing settings (`billing.<name>`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupBilling {
    /// `billing.cap_output_by_balance`: a request that sets no output cap gets the largest one the
    /// user's available balance can pay for (when that is below the usual default), so its cost
    /// never runs past the balance.
    #[serde(default)]
    pub cap_output_by_balance: bool,
}

impl From<GroupListing> for GroupView {
    fn from(g: GroupListing) -> Self {
        Self {
            models: g.allowed_models.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            multiplier: format_fixed(g.multiplier_ppm, 6, 1),
            name: g.name,
            description: g.description,
            users: g.users,
            billing: GroupBilling { cap_output_by_balance: g.cap_output_by_balance },
            limits: LimitsView {
                models: g.model_limits.as_deref().and_then(|j| serde_json::from_str(j).ok()),
                ..LimitsView::from(&g.limits)
            },
        }
    }
}

/// A group's settings; `models`: `null` or absent keeps every model, a list limits to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSave {
    pub multiplier: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Absent: billing settings stay as they are (off for a new group).
    #[serde(default)]
    pub billing: Option<GroupBilling>,
    /// Changes to the members' default budget and rate limits (absent fields stay).
    #[serde(default)]
    pub limits: Option<LimitsPatch>,
}

pub async fn list(state: &AppState) -> Result<Vec<GroupView>, PricingError> {
    Ok(db_groups::list(state.db().pool()).await?.into_iter().map(GroupView::from).collect())
}

async fn find(state: &AppState, name: &str) -> Result<Option<GroupView>, PricingError> {
    Ok(list(state).await?.into_iter().find(|g| g.name == name))
}

fn valid_name(name: &str) -> Result<(), PricingError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PricingError::Invalid("group names are 1 to 64 letters, digits, - or _".into()));
    }
    Ok(())
}

/// The multiplier in parts per million, from a decimal string.
pub fn multiplier_ppm(text: &str) -> Result<i64, PricingError> {
    let ppm = parse_fixed(text, 6).map_err(|e| PricingError::Invalid(format!("multiplier: {e}")))?;
    if !(0..=1_000_000_000).contains(&ppm) {
        return Err(PricingError::Invalid("multiplier: from 0 to 1000".into()));
    }
    Ok(ppm)
}

fn valid_models(models: &[String]) -> Result<Option<String>, PricingError> {
    let mut kept: Vec<&str> = Vec::new();
    for m in models.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        if m.chars().count() > 200 || m.chars().any(char::is_control) {
            return Err(PricingError::Invalid(format!("models: {m:?} is not a model name")));
        }
        if !kept.contains(&m) {
            kept.push(m);
        }
    }
    if kept.len() > 1000 {
        return Err(PricingError::Invalid("models: at most 1000".into()));
    }
    Ok(serde_json::to_string(&kept).ok())
}

/// Creates or changes a group.
pub async fn save(state: &AppState, actor: &Actor, name: &str, input: &GroupSave) -> Result<GroupView, PricingError> {
    let name = name.trim();
    valid_name(name)?;
    let ppm = multiplier_ppm(&input.multiplier)?;
    let description = input.description.as_deref().map(str::trim);
    if description.is_some_and(|d| d.chars().count() > 500) {
        return Err(PricingError::Invalid("description: at most 500 characters".into()));
    }
    let models = input.models.as_deref().map(valid_models).transpose()?.flatten();
    let before = find(state, name).await?;
    let mut tx = state.db().writer().begin().await?;
    prices::upsert_group(&mut *tx, name, description, ppm).await?;
    db_groups::set_allowed_models(&mut *tx, name, models.as_deref()).await?;
    if let Some(billing) = input.billing {
        db_groups::set_cap_output_by_balance(&mut *tx, name, billing.cap_output_by_balance).await?;
    }
    if let Some(patch) = &input.limits {
        match limits::patch(&mut tx, Owner::Group(name), patch).await? {
            Some(Ok(_)) => {}
            Some(Err(why)) => return Err(PricingError::Invalid(format!("limits.{why}"))),
            None => return Err(PricingError::Internal("saved group vanished".into())),
        }
    }
    tx.commit().await?;
    changes::publish(state, Change::Routing).await;
    let after = find(state, name).await?.ok_or_else(|| PricingError::Internal("saved group vanished".into()))?;
    let shown = |g: &GroupView| {
        json!({ "description": g.description, "multiplier": g.multiplier, "models": g.models,
                "billing.cap_output_by_balance": g.billing.cap_output_by_balance, "limits": g.limits })
    };
    let (action, details) = match &before {
        Some(b) => ("group.update", audit::changes(&shown(b), &shown(&after))),
        None => ("group.create", shown(&after)),
    };
    audit::record(state, actor, action, ("group", name), details).await;
    Ok(after)
}

/// Deletes a group: never `default`, never one that users belong to. `Ok(false)`: no such group.
pub async fn delete(state: &AppState, actor: &Actor, name: &str) -> Result<bool, PricingError> {
    if name == "default" {
        return Err(PricingError::Invalid("the default group cannot be deleted".into()));
    }
    let Some(before) = find(state, name).await? else { return Ok(false) };
    if before.users > 0 {
        return Err(PricingError::Invalid(format!(
            "{} users belong to this group: move them to another group first",
            before.users
        )));
    }
    if !db_groups::delete_unused(state.db().writer(), name).await? {
        return Err(PricingError::Invalid("users joined this group meanwhile: move them first".into()));
    }
    changes::publish(state, Change::Routing).await;
    let details = json!({ "before": { "description": before.description, "multiplier": before.multiplier, "models": before.models } });
    audit::record(state, actor, "group.delete", ("group", name), details).await;
    Ok(true)
}

/// Every group, by name.
pub async fn all(state: &AppState) -> Result<Vec<prices::GroupRow>, sqlx::Error> {
    prices::all_groups(state.db().pool()).await
}
