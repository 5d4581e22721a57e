//! Logging and request ids: the tracing subscriber (pretty or JSON), the `x-request-id` every
//! request carries (the client's when it sent a sane one, else a fresh one), and the per-request
//! span that puts that id on every log line written while the request is handled.

use std::io::IsTerminal;

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Safe to call more than once (later calls are ignored).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The longest client-supplied request id we accept; longer ones are replaced.
const MAX_CLIENT_ID_LEN: usize = 64;

/// Makes a random 16-hex-digit request id.
#[derive(Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// True for a client-supplied id we are willing to log: short, and only `[A-Za-z0-9._-]`.
pub fn is_acceptable_client_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CLIENT_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The span for one HTTP request; `request_id` and the client's address (through trusted
/// proxies only: `crate::client_ip`) are on every event inside it.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let client_ip = request.extensions().get::<crate::client_ip::ClientIp>().and_then(|c| c.0);
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        client_ip = %client_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
    )
}
