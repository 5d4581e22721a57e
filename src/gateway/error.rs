//! Gateway errors in OpenAI's shape: `{"error":{"message","type","param","code"}}` with OpenAI's
//! status codes. Messages are safe to show: upstream error bodies are translated, never passed
//! through raw (they can name the channel's key or base URL).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::billing::BillingError;

/// What a request refused by admission is told to wait: a slot frees when any request of the
/// key's (or user's) ends, which cannot be predicted, so a short, fixed back-off.
pub const CONCURRENCY_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    InvalidApiKey,
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    BodyTooLarge {
        limit: usize,
    },
    ModelNotFound(String),
    ModelNotPriced(String),
    InsufficientQuota(&'static str),
    /// The key's budget for this period is spent: the message names when it starts again.
    BudgetSpent {
        message: String,
        resets_in_ms: i64,
    },
    /// Requests per minute or per day (`per`) are used up: the key's, the account's or the
    /// account's on this model (`scope`).
    RateLimited {
        retry_after_secs: u64,
        limit: u64,
        per: &'static str,
        scope: super::limits::Scope,
    },
    /// Tokens per minute (the key's, the account's or the model's) cannot take this request's
    /// estimate (`needed`).
    TokensLimited {
        retry_after_secs: u64,
        limit: u64,
        needed: u64,
        scope: super::limits::Scope,
    },
    /// Admission refused the request: a concurrency cap stayed full for the whole wait.
    ConcurrencyLimited {
        scope: super::admission::Scope,
        limit: usize,
    },
    /// The client did not send its whole body within the body-read timeout.
    BodyTimeout,
    /// An upstream refused the request itself (a 4xx other than auth/quota/rate): its message,
    /// scrubbed, with its status.
    UpstreamRejected {
        status: u16,
        message: String,
        kind: Option<String>,
        code: Option<String>,
    },
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    NoHealthyChannel(String),
    /// The shutdown grace period ended while the request was still streaming.
    ShuttingDown,
    Internal,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::ConcurrencyLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ModelNotFound(_) => StatusCode::NOT_FOUND,
            Self::ModelNotPriced(_) => StatusCode::FORBIDDEN,
            Self::InsufficientQuota(_)
            | Self::BudgetSpent { .. }
            | Self::RateLimited { .. }
            | Self::TokensLimited { .. }
            | Self::UpstreamRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamRejected { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::NoHealthyChannel(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error class recorded in request logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::InvalidApiKey => "invalid_api_key",
            Self::BadRequest { .. } => "bad_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::ModelNotFound(_) => "model_not_found",
            Self::ModelNotPriced(_) => "model_not_priced",
            Self::InsufficientQuota(_) => "insufficient_quota",
            Self::BudgetSpent { .. } => "budget_spent",
            Self::RateLimited { .. } => "rate_limited",
            Self::TokensLimited { .. } => "tokens_limited",
            Self::ConcurrencyLimited { .. } => "concurrency_limited",
            Self::BodyTimeout => "body_timeout",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamRateLimited => "upstream_rate_limited",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::NoHealthyChannel(_) => "no_channel",
            Self::ShuttingDown => "shutdown",
            Self::Internal => "internal",
        }
    }

    /// `(message, type, param, code)` of the OpenAI error object.
    fn parts(&self) -> (String, String, Option<&'static str>, Option<String>) {
        let s = |v: &str| Some(v.to_string());
        match self {
            Self::InvalidApiKey => (
                "Incorrect API key provided. You can find your API key in the console.".into(),
                "invalid_request_error".into(),
                None,
                s("invalid_api_key"),
            ),
            Self::BadRequest { message, param } => (message.clone(), "invalid_request_error".into(), *param, None),
            Self::BodyTooLarge { limit } => (
                format!("The request body is larger than the limit of {limit} bytes."),
                "invalid_request_error".into(),
                None,
                s("request_too_large"),
            ),
            Self::ModelNotFound(model) => (
                format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error".into(),
                Some("model"),
                s("model_not_found"),
            ),
            Self::ModelNotPriced(model) => (
                format!("The model `{model}` has no price on this site yet, so it cannot be used."),
                "invalid_request_error".into(),
                Some("model"),
                s("model_not_priced"),
            ),
            Self::InsufficientQuota(why) => {
                ((*why).to_string(), "insufficient_quota".into(), None, s("insufficient_quota"))
            }
            Self::BudgetSpent { message, .. } => {
                (message.clone(), "insufficient_quota".into(), None, s("insufficient_quota"))
            }
            Self::TokensLimited { limit, needed, scope, .. } if needed > limit => (
                format!(
                    "This request needs about {needed} tokens, more than {} limit of {limit} tokens per minute. Lower max_tokens or the prompt.",
                    scope.possessive()
                ),
                "tokens".into(),
                None,
                s("rate_limit_exceeded"),
            ),
            Self::TokensLimited { retry_after_secs, limit, needed, scope } => (
                format!(
                    "Rate limit reached for {}: {limit} tokens per minute (this request needs about {needed}). Try again in {retry_after_secs} s.",
                    scope.subject()
                ),
                "tokens".into(),
                None,
                s("rate_limit_exceeded"),
            ),
            Self::RateLimited { retry_after_secs, limit, per, scope } => (
                format!(
                    "Rate limit reached for {}: {limit} requests per {per}. Try again in {retry_after_secs} s.",
                    scope.subject()
                ),
                "requests".into(),
                None,
                s("rate_limit_exceeded"),
            ),
            Self::ConcurrencyLimited { scope, limit } => {
                use super::admission::Scope;
                let what = match scope {
                    Scope::Key => format!("this API key has {limit} requests in flight, its limit"),
                    Scope::User => format!("this account has {limit} requests in flight, its limit"),
                    Scope::Model => format!("this account has {limit} requests in flight on this model, its limit"),
                    Scope::Server => "the server is at its limit of requests in flight".to_string(),
                };
                (
                    format!("Too many concurrent requests: {what}. Retry after {CONCURRENCY_RETRY_AFTER_SECS} s."),
                    "requests".into(),
                    None,
                    s("concurrency_limit_exceeded"),
                )
            }
            Self::BodyTimeout => (
                "The request body was not received in time.".into(),
                "invalid_request_error".into(),
                None,
                s("request_timeout"),
            ),
            Self::UpstreamRejected { message, kind, code, .. } => {
                (message.clone(), kind.clone().unwrap_or_else(|| "invalid_request_error".into()), None, code.clone())
            }
            Self::UpstreamRateLimited => (
                "The upstream provider is rate limiting this model. Please retry shortly.".into(),
                "requests".into(),
                None,
                s("rate_limit_exceeded"),
            ),
            Self::UpstreamTimeout => (
                "The upstream provider did not answer in time.".into(),
                "upstream_error".into(),
                None,
                s("upstream_timeout"),
            ),
            Self::ShuttingDown => (
                "The server is restarting and ended this answer early. Please retry.".into(),
                "server_error".into(),
                None,
                s("server_shutting_down"),
            ),
            Self::UpstreamUnavailable => (
                "The upstream provider failed to answer. Please retry.".into(),
                "upstream_error".into(),
                None,
                s("upstream_error"),
            ),
            Self::NoHealthyChannel(model) => (
                format!("No upstream channel is available for `{model}` right now."),
                "upstream_error".into(),
                Some("model"),
                s("no_available_channel"),
            ),
            Self::Internal => {
                ("The server had an error while processing your request.".into(), "server_error".into(), None, None)
            }
        }
    }

    /// Seconds a client should wait before retrying (the `Retry-After` header), when known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs, .. } | Self::TokensLimited { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            Self::ConcurrencyLimited { .. } => Some(CONCURRENCY_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Adds `Retry-After` when the error has one. A spent quota or budget is not worth retrying
    /// soon: `x-should-retry: false` stops the official SDKs' automatic retries of the 429, and
    /// a budget says when it starts again (`x-ratelimit-reset-budget`, as OpenAI writes waits).
    fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after_secs()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // A refused request never reaches the relay that writes the key's rate-limit headers:
        // its full window is said here.
        if let Self::RateLimited { retry_after_secs, limit, .. } = self {
            let reset = crate::domain::time::reset_text(i64::try_from(*retry_after_secs).unwrap_or(0) * 1000);
            for (name, value) in [
                ("x-ratelimit-limit-requests", limit.to_string()),
                ("x-ratelimit-remaining-requests", "0".to_string()),
                ("x-ratelimit-reset-requests", reset),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        if matches!(self, Self::InsufficientQuota(_) | Self::BudgetSpent { .. }) {
            response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Self::BudgetSpent { resets_in_ms, .. } = self
            && let Ok(v) = HeaderValue::from_str(&crate::domain::time::reset_text(*resets_in_ms))
        {
            response.headers_mut().insert("x-ratelimit-reset-budget", v);
        }
        response
    }

    /// The JSON error object, also used as the final event of a stream that failed mid-way.
    pub fn body(&self) -> serde_json::Value {
        let (message, kind, param, code) = self.parts();
        json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
    }
}

impl GatewayError {
    /// The error in Anthropic's shape (`/v1/messages`): `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_body(&self) -> serde_json::Value {
        let (message, ..) = self.parts();
        let kind = match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        json!({ "type": "error", "error": { "type": kind, "message": message } })
    }

    /// The response for an Anthropic client.
    pub fn into_anthropic_response(self) -> Response {
        let response = (self.status(), axum::Json(self.anthropic_body())).into_response();
        self.with_retry_after(response)
    }
}

impl GatewayError {
    /// The response for a Gemini-native client: Google's `{"error":{"code","message","status"}}`.
    pub fn into_google_response(self) -> Response {
        let status = self.status();
        let (message, ..) = self.parts();
        let google_status = match status.as_u16() {
            400 | 413 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            408 => "DEADLINE_EXCEEDED",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        };
        let body = json!({ "error": { "code": status.as_u16(), "message": message, "status": google_status } });
        let response = (status, axum::Json(body)).into_response();
        self.with_retry_after(response)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let response = (self.status(), axum::Json(self.body())).into_response();
        self.with_retry_after(response)
    }
}

/// What a refused hold tells the client.
pub(super) fn quota_error(e: BillingError) -> GatewayError {
    match e {
        BillingError::InsufficientBalance => GatewayError::InsufficientQuota(
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        BillingError::KeyLimitReached => GatewayError::InsufficientQuota("This API key has reached its spend limit."),
        BillingError::InDebt => GatewayError::InsufficientQuota(
            "Your account has an unpaid balance: a request cost more than your balance. Add credit to pay it and continue.",
        ),
        other => {
            tracing::error!(error = %other, "hold failed");
            GatewayError::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_openai() {
        let body = GatewayError::InvalidApiKey.body();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["param"], serde_json::Value::Null);
        assert_eq!(GatewayError::InvalidApiKey.status(), 401);
        let quota = GatewayError::InsufficientQuota("x");
        assert_eq!(
            (quota.status().as_u16(), quota.body()["error"]["type"].as_str()),
            (429, Some("insufficient_quota"))
        );
        let scope = super::super::limits::Scope::Key(1);
        let response =
            GatewayError::RateLimited { retry_after_secs: 7, limit: 5, per: "minute", scope }.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
