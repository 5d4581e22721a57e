//! `/api/admin/settings*`: list the site settings (secrets masked), change one, send a test
//! email. Thin: `services::settings` does the work.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, parse_json};
use crate::i18n::Lang;
use crate::services::settings::{self, SettingError, SettingView};
use crate::state::AppState;

impl From<SettingError> for ApiError {
    fn from(e: SettingError) -> Self {
        match e {
            SettingError::Invalid(m) => Self::Invalid(m),
            SettingError::Internal(d) => {
                tracing::error!(error = %d, "changing a setting failed");
                Self::Internal
            }
        }
    }
}

/// `GET /api/admin/settings`.
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> Json<Value> {
    Json(json!({ "data": settings::list(&state) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingInput {
    value: String,
}

/// `PUT /api/admin/settings/{key}`: known settings only — `routing.strategy.<group>.<model>`
/// and the site settings (`services::settings::site::keys`), each validated.
pub async fn set(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<SettingView>, ApiError> {
    let input: SettingInput = parse_json(&body)?;
    Ok(Json(settings::set(&state, &auth.actor, &key, &input.value).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestEmailInput {
    #[serde(default)]
    to: Option<String>,
}

/// `POST /api/admin/settings/smtp/test`: sends a test message to the caller's own address (the
/// root token, which has none, names one in `to`).
pub async fn test_email(State(state): State<AppState>, auth: AdminAuth, body: Bytes) -> Result<Json<Value>, ApiError> {
    let input: TestEmailInput = if body.is_empty() { TestEmailInput::default() } else { parse_json(&body)? };
    let to = match auth.actor.user_id {
        Some(id) => match crate::services::users::summary(&state, id).await {
            Ok(Some(user)) => user.email,
            Ok(None) => return Err(ApiError::NotFound),
            Err(e) => {
                tracing::error!(error = %e, "loading the caller failed");
                return Err(ApiError::Internal);
            }
        },
        None => input.to.filter(|t| t.contains('@')).ok_or_else(|| {
            ApiError::Invalid("to: the root token has no address of its own; name one in \"to\"".into())
        })?,
    };
    settings::send_test_email(&state, &auth.actor, &to, Lang::En).await?;
    Ok(Json(json!({ "sent_to": to })))
}
