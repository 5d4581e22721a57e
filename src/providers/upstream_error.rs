//! What an upstream's error answer means for the channel, read from the error object's
//! machine-readable fields (OpenAI's `type`/`code`, Anthropic's `error.type`, Gemini's `status` and
//! `details[].reason`, Bedrock's `x-amzn-ErrorType` / `__type`) and the HTTP status — never from
//! the message text, which upstreams fill with the client's own input ("unknown parameter
//! insufficient_quota"). A 400 never disables a channel, whatever it says: it is the status a
//! client provokes at will. Pure: the gateway acts on the [`Verdict`].

use serde_json::Value;

use super::Protocol;

/// The error name an upstream puts in a header (Bedrock, like every AWS service), if any.
pub fn error_type_header(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// How long an upstream's 429 asks the caller to wait, in milliseconds: OpenAI's `retry-after-ms`,
/// else `Retry-After` in seconds (whole or decimal). An HTTP date is not read (no provider sends
/// one); neither is a negative or non-finite number.
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    // Saturating casts: a huge value is capped by the caller.
    number("retry-after-ms").map(|ms| ms as u64).or_else(|| number("retry-after").map(|s| (s * 1000.0) as u64))
}

/// Why a channel is taken out of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The upstream refused the channel's key (revoked, invalid, blocked).
    KeyRefused,
    /// The upstream account behind the key has no credit or quota left.
    NoCredit,
}

/// What the gateway does with an upstream error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Disable the channel for everyone and try another; the code that proved it (one of this
    /// module's constants, never upstream text) goes into the operator's reason.
    Disable(Cause, &'static str),
    /// This channel could not serve this request: try another, change nothing.
    Retry,
    /// The upstream is rate limiting the channel: try another.
    RateLimited,
    /// The request itself was refused: no other channel would do better, tell the client.
    Client,
}

/// OpenAI (and the OpenAI-compatible vendors, Azure): a refused key. `401` is Azure's (and
/// OpenRouter's) code for it. `permission_error` is left out on purpose (see docs/gateway.md).
const OPENAI_KEY_CODES: &[&str] =
    &["invalid_api_key", "invalid_authentication", "authentication_error", "account_deactivated", "401"];
/// OpenAI: an account without credit.
const OPENAI_CREDIT_CODES: &[&str] = &["insufficient_quota", "billing_hard_limit_reached", "billing_not_active"];
/// Anthropic's `error.type` for a refused key. Its `permission_error` can follow from the
/// client's own `anthropic-beta` header (passed through), so it only retries.
const ANTHROPIC_KEY_CODES: &[&str] = &["authentication_error"];
const ANTHROPIC_CREDIT_CODES: &[&str] = &["billing_error"];
/// Gemini: `details[].reason` (google.rpc.ErrorInfo) for a refused key, and `UNAUTHENTICATED`
/// (its `status` on a 401). Not `PERMISSION_DENIED` alone: a client gets it by naming a file it
/// does not own.
const GEMINI_KEY_CODES: &[&str] = &[
    "API_KEY_INVALID",
    "API_KEY_EXPIRED",
    "API_KEY_SERVICE_BLOCKED",
    "SERVICE_DISABLED",
    "CONSUMER_SUSPENDED",
    "UNAUTHENTICATED",
];
const GEMINI_CREDIT_CODES: &[&str] = &["BILLING_DISABLED"];
/// Bedrock (AWS): the error type of a refused signature or credential.
const BEDROCK_KEY_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "AccessDeniedException",
];
const NONE: &[&str] = &[];

fn code_sets(protocol: Protocol) -> (&'static [&'static str], &'static [&'static str]) {
    match protocol {
        Protocol::OpenAi | Protocol::Azure => (OPENAI_KEY_CODES, OPENAI_CREDIT_CODES),
        Protocol::Anthropic => (ANTHROPIC_KEY_CODES, ANTHROPIC_CREDIT_CODES),
        Protocol::Gemini => (GEMINI_KEY_CODES, GEMINI_CREDIT_CODES),
        Protocol::Bedrock => (BEDROCK_KEY_CODES, NONE),
    }
}

/// The machine-readable fields of an error answer, as the protocol places them. Messages, params
/// and unknown fields are not read.
pub fn error_codes(protocol: Protocol, error_type_header: Option<&str>, body: &[u8]) -> Vec<String> {
    let parsed = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    // Gemini's non-SSE stream endpoint answers errors inside an array.
    let root = match &parsed {
        Value::Array(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let error = root.get("error");
    let mut codes = Vec::new();
    match protocol {
        Protocol::OpenAi | Protocol::Azure => {
            codes.extend(text(error.and_then(|e| e.get("type"))));
            codes.extend(text(error.and_then(|e| e.get("code"))));
        }
        Protocol::Anthropic => codes.extend(text(error.and_then(|e| e.get("type")))),
        Protocol::Gemini => {
            codes.extend(text(error.and_then(|e| e.get("status"))));
            let details = error.and_then(|e| e.get("details")).and_then(Value::as_array);
            codes.extend(details.into_iter().flatten().filter_map(|d| text(d.get("reason"))));
        }
        Protocol::Bedrock => {
            // `UnrecognizedClientException:http://internal.amazon.com/…`
            codes.extend(error_type_header.and_then(|h| h.split(':').next()).map(|h| h.trim().to_string()));
            // `com.amazon.coral.service#UnrecognizedClientException`
            let kind = text(root.get("__type"));
            codes.extend(kind.map(|k| k.rsplit('#').next().unwrap_or_default().to_string()));
        }
    }
    codes.retain(|c| !c.is_empty());
    codes
}

/// The verdict on an upstream's error answer: `status`, the Bedrock error-type header if any,
/// and the body (only its code fields are read).
pub fn verdict(protocol: Protocol, status: u16, error_type_header: Option<&str>, body: &[u8]) -> Verdict {
    let codes = error_codes(protocol, error_type_header, body);
    let (key_codes, credit_codes) = code_sets(protocol);
    let find = |set: &'static [&'static str]| set.iter().copied().find(|known| codes.iter().any(|c| c == known));
    match status {
        // A client provokes a 400 at will, and upstreams echo its input in them: never disable.
        // Gemini answers a bad key with 400 `API_KEY_INVALID`: that is not the request's fault,
        // so another channel may serve it, but the channel stays enabled.
        400 if protocol == Protocol::Gemini && (find(key_codes).is_some() || find(credit_codes).is_some()) => {
            Verdict::Retry
        }
        401 | 403 => match (find(key_codes), find(credit_codes)) {
            (Some(code), _) => Verdict::Disable(Cause::KeyRefused, code),
            (None, Some(code)) => Verdict::Disable(Cause::NoCredit, code),
            // The channel was refused for a reason we do not know: not the client's fault.
            (None, None) => Verdict::Retry,
        },
        402 => find(credit_codes).map_or(Verdict::Retry, |code| Verdict::Disable(Cause::NoCredit, code)),
        429 => find(credit_codes).map_or(Verdict::RateLimited, |code| Verdict::Disable(Cause::NoCredit, code)),
        408 | 500..=599 => Verdict::Retry,
        _ => Verdict::Client,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn retry_after_in_milliseconds_or_seconds() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, reqwest::header::HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "20")])), Some(20_000));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "0.5")])), Some(500));
        assert_eq!(retry_after_ms(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])), Some(250));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])), None);
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "NaN")])), None);
        assert_eq!(retry_after_ms(&headers(&[])), None);
    }

    fn openai(status: u16, body: Value) -> Verdict {
        verdict(Protocol::OpenAi, status, None, body.to_string().as_bytes())
    }

    #[test]
    fn openai_codes_decide_not_messages() {
        let bad_key = json!({ "error": { "message": "Incorrect API key", "type": "invalid_request_error",
                                         "param": null, "code": "invalid_api_key" } });
        assert_eq!(openai(401, bad_key.clone()), Verdict::Disable(Cause::KeyRefused, "invalid_api_key"));
        let no_credit = json!({ "error": { "message": "You exceeded your current quota",
                                           "type": "insufficient_quota", "code": "insufficient_quota" } });
        assert_eq!(openai(429, no_credit.clone()), Verdict::Disable(Cause::NoCredit, "insufficient_quota"));
        assert_eq!(openai(402, no_credit.clone()), Verdict::Disable(Cause::NoCredit, "insufficient_quota"));
        // A 400 never disables, even with the very codes.
        assert_eq!(openai(400, bad_key), Verdict::Client);
        assert_eq!(openai(400, no_credit), Verdict::Client);
        // Words in the message, a param or an unknown field count for nothing.
        let echo = json!({ "error": { "message": "insufficient_quota invalid_api_key billing_hard_limit_reached",
                                      "type": "invalid_request_error", "param": "insufficient_quota",
                                      "code": "unknown_parameter" }, "insufficient_quota": 1, "invalid_api_key": true });
        assert_eq!(openai(400, echo.clone()), Verdict::Client);
        assert_eq!(openai(401, echo.clone()), Verdict::Retry, "a refusal without a key code only retries");
        assert_eq!(openai(429, echo.clone()), Verdict::RateLimited);
        assert_eq!(openai(402, echo), Verdict::Retry);
        let rate = json!({ "error": { "type": "requests", "code": "rate_limit_exceeded" } });
        assert_eq!(openai(429, rate), Verdict::RateLimited);
        assert_eq!(openai(401, json!("not an object")), Verdict::Retry);
        assert_eq!(verdict(Protocol::OpenAi, 401, None, b"<html>proxy says no</html>"), Verdict::Retry);
        assert_eq!(openai(503, json!({})), Verdict::Retry);
        assert_eq!(openai(404, json!({ "error": { "code": "model_not_found" } })), Verdict::Client);
        // Azure's `"code": "401"`, OpenRouter's numeric 401.
        let azure = json!({ "error": { "code": "401", "message": "Access denied due to invalid subscription key" } });
        assert_eq!(
            verdict(Protocol::Azure, 401, None, azure.to_string().as_bytes()),
            Verdict::Disable(Cause::KeyRefused, "401")
        );
        assert_eq!(
            openai(401, json!({ "error": { "code": 401, "message": "No auth credentials found" } })),
            Verdict::Disable(Cause::KeyRefused, "401")
        );
        // OpenRouter's moderation refusal is a 403 with code 403: not a key problem.
        assert_eq!(
            openai(403, json!({ "error": { "code": 403, "message": "Your input was flagged" } })),
            Verdict::Retry
        );
    }

    #[test]
    fn anthropic_reads_the_error_type() {
        let v = |status, kind: &str| {
            let body =
                json!({ "type": "error", "error": { "type": kind, "message": "authentication_error billing_error" } });
            verdict(Protocol::Anthropic, status, None, body.to_string().as_bytes())
        };
        assert_eq!(v(401, "authentication_error"), Verdict::Disable(Cause::KeyRefused, "authentication_error"));
        assert_eq!(v(402, "billing_error"), Verdict::Disable(Cause::NoCredit, "billing_error"));
        assert_eq!(v(403, "permission_error"), Verdict::Retry, "may follow from the client's beta header");
        // "Your credit balance is too low" arrives as a 400 invalid_request_error: the client's.
        assert_eq!(v(400, "invalid_request_error"), Verdict::Client);
        assert_eq!(v(429, "rate_limit_error"), Verdict::RateLimited);
        assert_eq!(v(529, "overloaded_error"), Verdict::Retry);
    }

    #[test]
    fn gemini_reads_status_and_reasons_and_never_disables_on_400() {
        let error = |code: u16, status: &str, reason: &str| {
            json!({ "error": { "code": code, "message": "API key not valid. API_KEY_INVALID", "status": status,
                    "details": [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                                  "domain": "googleapis.com" }] } })
            .to_string()
        };
        let v = |status, body: String| verdict(Protocol::Gemini, status, None, body.as_bytes());
        // Google answers a bad key with a 400: retried elsewhere, the channel stays.
        assert_eq!(v(400, error(400, "INVALID_ARGUMENT", "API_KEY_INVALID")), Verdict::Retry);
        assert_eq!(v(400, error(400, "INVALID_ARGUMENT", "SOMETHING_ELSE")), Verdict::Client);
        assert_eq!(
            v(403, error(403, "PERMISSION_DENIED", "API_KEY_SERVICE_BLOCKED")),
            Verdict::Disable(Cause::KeyRefused, "API_KEY_SERVICE_BLOCKED")
        );
        assert_eq!(v(403, error(403, "PERMISSION_DENIED", "")), Verdict::Retry, "a file the client named");
        assert_eq!(
            v(403, error(403, "PERMISSION_DENIED", "BILLING_DISABLED")),
            Verdict::Disable(Cause::NoCredit, "BILLING_DISABLED")
        );
        assert_eq!(v(429, error(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")), Verdict::RateLimited);
        let in_array = format!("[{}]", error(403, "PERMISSION_DENIED", "CONSUMER_SUSPENDED"));
        assert_eq!(v(403, in_array), Verdict::Disable(Cause::KeyRefused, "CONSUMER_SUSPENDED"));
    }

    #[test]
    fn bedrock_reads_the_error_type_header_or_body() {
        let body = br#"{"message":"The security token included in the request is invalid."}"#;
        let header = Some("UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/");
        assert_eq!(
            verdict(Protocol::Bedrock, 403, header, body),
            Verdict::Disable(Cause::KeyRefused, "UnrecognizedClientException")
        );
        let typed = br#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"x"}"#;
        assert_eq!(
            verdict(Protocol::Bedrock, 403, None, typed),
            Verdict::Disable(Cause::KeyRefused, "InvalidSignatureException")
        );
        let echo = br#"{"message":"UnrecognizedClientException AccessDeniedException"}"#;
        assert_eq!(verdict(Protocol::Bedrock, 403, None, echo), Verdict::Retry);
        assert_eq!(verdict(Protocol::Bedrock, 400, Some("ValidationException"), echo), Verdict::Client);
        assert_eq!(verdict(Protocol::Bedrock, 400, Some("AccessDeniedException"), echo), Verdict::Client);
        assert_eq!(verdict(Protocol::Bedrock, 429, Some("ThrottlingException"), echo), Verdict::RateLimited);
    }
}
