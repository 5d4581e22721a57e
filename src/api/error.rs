//! Management API errors: `{"error":{"message","code"}}` with a fitting status. Internal details
//! are logged, never returned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::services::channels::ChannelError;
use crate::services::pricing::PricingError;
use crate::services::users::UserError;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    /// Authenticated, but this role may not do this (a user on an admin endpoint, an admin on
    /// another admin).
    Forbidden(&'static str),
    Invalid(String),
    NotFound,
    Conflict(String),
    /// 422: well-formed, but the request needs something more (`code` names what).
    Unprocessable {
        code: &'static str,
        message: String,
    },
    Internal,
    /// 503: not possible yet; the caller should retry later (a webhook that arrived early).
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.to_string()),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.to_string()),
            Self::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".to_string()),
            Self::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            Self::Unprocessable { code, message } => (StatusCode::UNPROCESSABLE_ENTITY, code, message),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error".to_string()),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "retry_later", m),
        };
        (status, axum::Json(json!({ "error": { "message": message, "code": code } }))).into_response()
    }
}

/// What every `/api` handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A failure the caller cannot act on: logged once, with what was being done, and answered
    /// as a plain 500 (the detail stays in the log).
    pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{what}");
        Self::Internal
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Invalid(m) => Self::Invalid(m),
            ChannelError::NotFound => Self::NotFound,
            ChannelError::KeyRequired(message) => Self::Unprocessable { code: "key_required", message },
            ChannelError::Internal(d) => Self::internal("channel operation failed", &d),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(m) => Self::Invalid(m),
            UserError::NotFound => Self::NotFound,
            UserError::EmailTaken | UserError::InsufficientBalance => Self::Conflict(e.to_string()),
            UserError::Internal(d) => Self::internal("user operation failed", &d),
        }
    }
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        match e {
            PricingError::Invalid(m) => Self::Invalid(m),
            PricingError::Internal(d) => Self::internal("pricing operation failed", &d),
        }
    }
}

/// Parses a JSON body into `T`, with a message naming what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid(format!("invalid JSON body: {e}")))
}

impl crate::routes::NotFound for ApiError {
    fn not_found() -> Self {
        Self::NotFound
    }
}

/// The id in an `/api` route's path; anything but a number is a 404 in the API's shape.
pub type PathId = crate::routes::Id<ApiError>;
