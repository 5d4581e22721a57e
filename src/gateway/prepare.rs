//! The request's first steps, before any money moves: the body read under its size limit, the
//! multipart boundary, the peek at a form's fields, and what the API being imitated refuses.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;

use super::endpoints::Endpoint;
use super::error::GatewayError;
use crate::providers::multipart;
use crate::providers::openai::RequestPeek;

/// The multipart boundary of a form endpoint's body (`None` for JSON endpoints).
pub(super) fn form_boundary(endpoint: Endpoint, headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    if !endpoint.multipart() {
        return Ok(None);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multipart::parse_boundary(content_type).map_err(|e| {
        let message = match e {
            multipart::BoundaryError::Missing => format!("{} expects a multipart/form-data body.", endpoint.path()),
            multipart::BoundaryError::TooLong => {
                format!("The multipart boundary is longer than {} characters (RFC 2046).", multipart::MAX_BOUNDARY_LEN)
            }
            multipart::BoundaryError::Invalid => "The multipart boundary has characters RFC 2046 does not allow \
                                                  (letters, digits and '()+_,-./:=? only, not ending in a space)."
                .to_string(),
        };
        GatewayError::BadRequest { message, param: None }
    })?;
    Ok(Some(boundary.to_string()))
}

/// The peek at the request (its model and stream flag taken `from_url` when the URL names them,
/// as Gemini's API does) and the requested model; what the API being imitated refuses is refused.
pub(super) fn peek_request<'a>(
    endpoint: Endpoint,
    body: &'a Bytes,
    form: Option<&str>,
    from_url: Option<(String, bool)>,
) -> Result<(RequestPeek<'a>, String), GatewayError> {
    let mut peek = match form {
        Some(boundary) => multipart_peek(body, boundary),
        None => RequestPeek::parse(body).map_err(|message| GatewayError::BadRequest { message, param: None })?,
    };
    if let Some((model, stream)) = from_url {
        peek.model = Some(std::borrow::Cow::Owned(model));
        peek.stream = Some(stream);
    }
    let model = peek.model.as_deref().filter(|m| !m.is_empty()).ok_or_else(|| GatewayError::BadRequest {
        message: "You must provide a model parameter.".into(),
        param: Some("model"),
    })?;
    let model = model.to_string();
    if form.is_none() {
        check_request(endpoint, &peek)?;
    }
    if peek.is_stream() && !endpoint.streams() {
        return Err(GatewayError::BadRequest {
            message: format!("Streaming is not supported on {}.", endpoint.path()),
            param: Some("stream"),
        });
    }
    Ok((peek, model))
}

/// Refuses, before any hold or upstream call, what the API being imitated refuses: sizes and
/// sampling values out of range, `/v1/messages` without `max_tokens` (Anthropic requires it), and
/// server-side tools the upstream would bill per call, beyond what the gateway can price.
fn check_request(endpoint: Endpoint, peek: &RequestPeek<'_>) -> Result<(), GatewayError> {
    let temperature_max = if endpoint == Endpoint::Messages { 1.0 } else { 2.0 };
    peek.check_ranges(temperature_max)
        .map_err(|(message, param)| GatewayError::BadRequest { message, param: Some(param) })?;
    if endpoint == Endpoint::Messages && peek.max_tokens.is_none() {
        return Err(GatewayError::BadRequest {
            message: "max_tokens: Field required".into(),
            param: Some("max_tokens"),
        });
    }
    if let Some(tool) = peek.server_tool() {
        return Err(GatewayError::BadRequest {
            message: format!(
                "The server-side tool `{tool}` is billed per call by the provider and is not available through this gateway."
            ),
            param: Some("tools"),
        });
    }
    Ok(())
}

/// The fields of a multipart request the gateway needs (the model, `n`, `stream`).
fn multipart_peek<'a>(body: &'a [u8], boundary: &str) -> RequestPeek<'a> {
    let field = |name| multipart::field(body, boundary, name).map(str::trim);
    RequestPeek {
        model: field("model").map(std::borrow::Cow::Borrowed),
        n: field("n").and_then(|n| n.parse().ok()),
        stream: field("stream").map(|s| s == "true"),
        ..RequestPeek::default()
    }
}

/// Reads the client's body up to the limit; 413 as soon as the declared or actual size exceeds it.
pub(super) async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(err) = source {
            too_large |= err.is::<http_body_util::LengthLimitError>();
            source = err.source();
        }
        if super::ingress::is_body_timeout(&e) {
            GatewayError::BodyTimeout
        } else if too_large {
            GatewayError::BodyTooLarge { limit }
        } else {
            GatewayError::BadRequest { message: "The request body could not be read.".into(), param: None }
        }
    })
}
